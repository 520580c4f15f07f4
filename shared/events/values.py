"""Value types shared by the event models and by the services that produce or consume them.

Everything here is immutable (frozen pydantic models, tuples instead of lists) and bounded (string lengths,
list sizes), because these shapes travel between services and are validated on the hot path of every consumer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import UTC, datetime, time
from enum import StrEnum
from functools import cache
from typing import Annotated, Self, TypeVar
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

# --- bounded scalars -----------------------------------------------------------------------------------------------

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"

#: Machine key (function key, question key, tag of a closed vocabulary): lowercase, no spaces, ≤ 64 characters.
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
#: A free tag typed by people (interest, skill, goal tag): 1–64 characters.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: A short human label (display name, program name, department): 1–200 characters.
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
#: Free text written by people (goal description): at most 2,000 characters.
LongText = Annotated[str, StringConstraints(max_length=2000)]
#: BCP 47 language tag such as ``en``, ``pt-BR`` or ``zh-Hant``.
LanguageTag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")]
#: Opaque identifier from an external system (HR or student-information system).
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

#: An email address, checked by shape only. Not ``EmailStr``: full RFC/IDNA validation costs ~70 µs per address and
#: would be two thirds of decoding a ProfileUpdated on every consumer; the profiles API validates fully on input.
EmailAddress = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Field(json_schema_extra={"format": "email"}),
]

#: Probability-like score: 0 = worst, 1 = best.
UnitScore = Annotated[float, Field(ge=0.0, le=1.0)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A time-zone-aware instant, normalised to UTC (serialised with a ``Z`` suffix).
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: A wall-clock time of day without an offset, read in a time zone given beside it; published as ``HH:MM:SS``.
#: Its schema carries no ``format``: JSON Schema's ``time`` is RFC 3339's full-time, which requires an offset, so a
#: consumer asserting formats refused every published value (removing a format keeps v1 compatible; a pattern would
#: narrow it).
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Local wall-clock time without an offset, HH:MM:SS (e.g. 17:00:00); read in the "
            "person's time_zone.",
        }
    ),
]


@cache
def _known_time_zones() -> frozenset[str]:
    # Scanning the tz database takes milliseconds: do it once per process, not per event.
    return frozenset(available_timezones())


def _existing_time_zone(name: str) -> str:
    if name not in _known_time_zones():
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


#: IANA time zone name that exists in the tz database, e.g. ``Europe/Berlin``.
TimeZoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$"),
    AfterValidator(_existing_time_zone),
]

ItemT = TypeVar("ItemT", bound=Hashable)


def unique_items(items: tuple[ItemT, ...]) -> tuple[ItemT, ...]:
    """Reject duplicates; order is kept so the JSON stays stable."""
    if len(set(items)) != len(items):
        raise ValueError("items must be unique")
    return items


def unique_by_key(items: Sequence[object], attribute: str) -> None:
    """Raise when two items share the same value of ``attribute``."""
    seen: set[object] = set()
    for item in items:
        value = getattr(item, attribute)
        if value in seen:
            raise ValueError(f"duplicate {attribute} {value!r}")
        seen.add(value)


#: Unique-items marker for the JSON Schema (pydantic does not emit it for tuples).
UNIQUE = {"uniqueItems": True}


class FrozenModel(BaseModel):
    """Base of every contract model: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- closed sets ---------------------------------------------------------------------------------------------------


class MentorshipDomain(StrEnum):
    """The three domains mentorship functions are grouped in."""

    ACADEMIC = "academic"
    PROFESSIONAL = "professional"
    PERSONAL = "personal"


class NeedLevel(StrEnum):
    """How a mentee rates one mentorship function in the needs self-inventory."""

    CRITICAL = "critical"
    IMPORTANT = "important"
    NOT_RELEVANT = "not_relevant"


class CommunicationPreference(StrEnum):
    CHAT = "chat"
    EMAIL = "email"
    VIDEO_CALL = "video_call"
    PHONE = "phone"
    IN_PERSON = "in_person"
    NO_PREFERENCE = "no_preference"


class MeetingFormatPreference(StrEnum):
    IN_PERSON = "in_person"
    VIRTUAL = "virtual"
    EITHER = "either"


class MeetingFormat(StrEnum):
    """How one concrete meeting takes place."""

    IN_PERSON = "in_person"
    VIRTUAL = "virtual"


class CadencePreference(StrEnum):
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"
    FLEXIBLE = "flexible"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def iso_number(self) -> int:
        """ISO 8601 weekday number (Monday = 1), as ``date.isoweekday()`` returns it."""
        return list(Weekday).index(self) + 1


class EnrollmentRole(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"
    BOTH = "both"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    WITHDRAWN = "withdrawn"


class ProgramStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"
    ARCHIVED = "archived"


class CampusRule(StrEnum):
    """Whether mentor and mentee must be on the same campus."""

    SAME = "same"
    ANY = "any"


class ObjectiveMode(StrEnum):
    """What a cohort round optimises."""

    MAX_TOTAL_SCORE = "max_total_score"
    MAX_MATCHED_THEN_SCORE = "max_matched_then_score"


class MatchFactor(StrEnum):
    """The factors of the compatibility score; each has a weight in the matching policy."""

    NEEDS_COVERAGE = "needs_coverage"
    INTERESTS = "interests"
    GOALS = "goals"
    SKILLS = "skills"
    WORKING_STYLE = "working_style"
    AVAILABILITY = "availability"
    BACKGROUND_SIMILARITY = "background_similarity"
    SENIORITY = "seniority"


class MatchOrigin(StrEnum):
    MENTEE_REQUEST = "mentee_request"
    COHORT_ROUND = "cohort_round"
    COORDINATOR = "coordinator"


class ActorRole(StrEnum):
    """Who performed an action on a match or meeting."""

    MENTEE = "mentee"
    MENTOR = "mentor"
    COORDINATOR = "coordinator"
    SYSTEM = "system"


class ParticipantRole(StrEnum):
    """A party of a match."""

    MENTEE = "mentee"
    MENTOR = "mentor"


class DeclineReason(StrEnum):
    """Why a proposal did not become an active match (a category, never free text)."""

    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"
    REJECTED_BY_COORDINATOR = "rejected_by_coordinator"
    PARTICIPANT_UNAVAILABLE = "participant_unavailable"
    PARTICIPANT_ERASED = "participant_erased"


class EndReasonCategory(StrEnum):
    """Why an active match ended. The private explanation stays with the coordinator; only this category travels."""

    PLANNED_END_REACHED = "planned_end_reached"
    GOALS_MET = "goals_met"
    NOT_A_GOOD_FIT = "not_a_good_fit"
    NO_TIME = "no_time"
    LEFT_PROGRAM = "left_program"
    PERSONAL_REASONS = "personal_reasons"
    COORDINATOR_DECISION = "coordinator_decision"
    PARTICIPANT_ERASED = "participant_erased"
    OTHER = "other"


class UnmatchedReason(StrEnum):
    """Why a mentee was left without a proposal in a cohort round."""

    NO_ELIGIBLE_MENTOR = "no_eligible_mentor"
    CAMPUS_RULE = "campus_rule"
    SENIORITY_RULE = "seniority_rule"
    BLOCKED_OR_EXCLUDED = "blocked_or_excluded"
    CAPACITY_EXHAUSTED = "capacity_exhausted"
    NOT_SELECTED_BY_OPTIMUM = "not_selected_by_optimum"


class RelationshipPhase(StrEnum):
    INITIATION = "initiation"
    CULTIVATION = "cultivation"
    SEPARATION = "separation"
    REDEFINITION = "redefinition"


class CheckInKind(StrEnum):
    FIRST_MEETING = "first_meeting"
    REGULAR = "regular"
    MIDPOINT_REVIEW = "midpoint_review"
    CLOSING = "closing"


class MeetingCancelReason(StrEnum):
    CANCELLED_BY_PARTICIPANT = "cancelled_by_participant"
    CANCELLED_BY_COORDINATOR = "cancelled_by_coordinator"
    MATCH_ENDED = "match_ended"
    PARTICIPANT_ERASED = "participant_erased"


class MeetingOutcome(StrEnum):
    HELD = "held"
    MISSED = "missed"


class FeedbackKind(StrEnum):
    PULSE = "pulse"
    BEFORE_SURVEY = "before_survey"
    AFTER_SURVEY = "after_survey"


class PulseQuestionKind(StrEnum):
    """Answer scale of a pulse question; every kind is numeric so scores can travel without text."""

    RATING_1_5 = "rating_1_5"
    YES_NO = "yes_no"  # 1 = yes, 0 = no
    PERCENT = "percent"  # 0–100, e.g. goal progress


class AtRiskReason(StrEnum):
    LOW_RATINGS = "low_ratings"
    FALLING_RATINGS = "falling_ratings"
    MISSED_CHECK_INS = "missed_check_ins"
    PARTNER_SILENT = "partner_silent"
    NO_FIRST_MEETING = "no_first_meeting"
    CONCERN_FLAGGED = "concern_flagged"


# --- profile values ------------------------------------------------------------------------------------------------


class AvailabilityWindow(FrozenModel):
    """A weekly window in the person's own time zone (wall-clock times, no offset). ``end`` is exclusive.

    A window across midnight is two windows, so each stays within one weekday.
    """

    weekday: Weekday
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _starts_before_it_ends(self) -> Self:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("availability times are local wall-clock times without an offset")
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class NeedRating(FrozenModel):
    """One entry of a mentee's needs self-inventory."""

    function_key: Key
    level: NeedLevel


class WorkingStyle(FrozenModel):
    communication: CommunicationPreference = CommunicationPreference.NO_PREFERENCE
    meeting_format: MeetingFormatPreference = MeetingFormatPreference.EITHER
    cadence: CadencePreference = CadencePreference.FLEXIBLE


class GoalStatement(FrozenModel):
    """Goals or desired outcomes: tags for matching plus the person's own words."""

    tags: Annotated[tuple[Tag, ...], Field(max_length=30)] = ()
    text: LongText = ""


class ConsentFlags(FrozenModel):
    """Explicit consents a participant gave; each defaults to not given."""

    affinity_matching: bool = Field(
        default=False, description="Affinity attributes may be stored and used for background-similarity matching."
    )
    share_email_with_partner: bool = Field(default=False, description="A match partner may see the email address.")


class FunctionCatalogueEntry(FrozenModel):
    """A mentorship function of a program's catalogue, e.g. ``writing_publishing``."""

    key: Key
    label: ShortText
    domain: MentorshipDomain
    is_psychosocial: bool = Field(
        description="Psychosocial functions (belonging, emotional support) are what peers serve best."
    )


class PulseQuestion(FrozenModel):
    key: Key
    prompt: ShortText
    kind: PulseQuestionKind


# --- program values ------------------------------------------------------------------------------------------------


class Milestones(FrozenModel):
    first_meeting_within_days: int = Field(default=14, ge=1, le=120)
    midpoint_review: bool = True
    closing_conversation: bool = True
    closing_days_before_end: int = Field(default=7, ge=0, le=120)


class FactorWeights(FrozenModel):
    """Relative weight of each compatibility factor; the score normalises by their sum."""

    needs_coverage: float = Field(default=3.0, ge=0, le=100)
    interests: float = Field(default=1.0, ge=0, le=100)
    goals: float = Field(default=2.0, ge=0, le=100)
    skills: float = Field(default=1.0, ge=0, le=100)
    working_style: float = Field(default=1.0, ge=0, le=100)
    availability: float = Field(default=1.5, ge=0, le=100)
    background_similarity: float = Field(default=1.0, ge=0, le=100)
    seniority: float = Field(default=1.0, ge=0, le=100)

    @model_validator(mode="after")
    def _some_weight_is_positive(self) -> Self:
        if not any(self.weight_of(factor) > 0 for factor in MatchFactor):
            raise ValueError("at least one factor weight must be positive")
        return self

    def weight_of(self, factor: MatchFactor) -> float:
        return float(getattr(self, factor.value))


class SeniorityRule(FrozenModel):
    """How far a mentor must be ahead of the mentee: hard rules of matching, each pair outside them excluded
    (reason ``mentor_not_ahead`` below a minimum, ``mentor_level_too_far_ahead`` or ``mentor_tenure_too_far_ahead``
    above a maximum). Null means no bound on that side. Tenure gaps compare the two ``tenure_start`` dates, a month counted as 30 days."""

    min_level_gap: int | None = Field(
        default=1, ge=-50, le=50, description="The mentor's role level exceeds the mentee's by at least this."
    )
    max_level_gap: int | None = Field(
        default=None, ge=-50, le=50, description="The mentor's role level exceeds the mentee's by at most this."
    )
    min_tenure_gap_months: int | None = Field(
        default=None, ge=-600, le=600, description="The mentor started at least this many months before the mentee."
    )
    max_tenure_gap_months: int | None = Field(
        default=None,
        ge=-600,
        le=600,
        description="The mentor started at most this many months before the mentee (near-peers: e.g. 24).",
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Self:
        if (
            self.min_level_gap is not None
            and self.max_level_gap is not None
            and self.min_level_gap > self.max_level_gap
        ):
            raise ValueError("min_level_gap must not exceed max_level_gap")
        if (
            self.min_tenure_gap_months is not None
            and self.max_tenure_gap_months is not None
            and self.min_tenure_gap_months > self.max_tenure_gap_months
        ):
            raise ValueError("min_tenure_gap_months must not exceed max_tenure_gap_months")
        return self


class HardRules(FrozenModel):
    exclude_same_reporting_line: bool = True
    exclude_same_team: bool = False
    campus_rule: CampusRule = CampusRule.ANY
    seniority: SeniorityRule = SeniorityRule()


class MatchingPolicy(FrozenModel):
    weights: FactorWeights = FactorWeights()
    hard_rules: HardRules = HardRules()
    proposals_per_mentee: int = Field(default=3, ge=3, le=4, description="Length of a mentee's short list.")
    request_window_days: int = Field(default=7, ge=1, le=60, description="Days before an open request expires.")
    max_open_requests_per_mentee: int = Field(default=2, ge=1, le=10)
    allow_mentor_network: bool = Field(default=False, description="A mentee may have several active mentors.")
    max_mentors_per_mentee: int = Field(default=1, ge=1, le=5)
    objective: ObjectiveMode = ObjectiveMode.MAX_MATCHED_THEN_SCORE

    @model_validator(mode="after")
    def _network_allows_several_mentors(self) -> Self:
        if not self.allow_mentor_network and self.max_mentors_per_mentee != 1:
            raise ValueError("max_mentors_per_mentee above 1 needs allow_mentor_network")
        return self


# --- matching values -----------------------------------------------------------------------------------------------


class FactorScore(FrozenModel):
    """One factor's part of a compatibility score."""

    factor: MatchFactor
    score: UnitScore = Field(description="The factor's own score in [0, 1].")
    weight: float = Field(ge=0, le=100)
    contribution: UnitScore = Field(description="weight × score / sum of weights: the factor's share of the total.")


class ScoreBucket(FrozenModel):
    """Histogram bucket [lower, upper) of proposal scores (the last bucket includes 1.0)."""

    lower: UnitScore
    upper: UnitScore
    count: int = Field(ge=0)


class UnmatchedReasonCount(FrozenModel):
    reason: UnmatchedReason
    count: int = Field(ge=0)
