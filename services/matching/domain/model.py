"""What matching sees of people and programs: plain, immutable values.

Nothing here knows about databases or events; the service builds these from its projection and hands them to
`scoring`, `rules`, `shortlist` and `rounds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum


class NeedLevel(StrEnum):
    """A mentee's self-rating of one mentorship function."""

    CRITICAL = "critical"
    IMPORTANT = "important"
    NOT_RELEVANT = "not_relevant"


class MeetingFormat(StrEnum):
    IN_PERSON = "in_person"
    VIRTUAL = "virtual"
    EITHER = "either"


class CampusRule(StrEnum):
    """`same`: mentor and mentee must share a campus; `any`: campus does not matter (unless the mentee asks)."""

    SAME = "same"
    ANY = "any"


class Objective(StrEnum):
    """What a cohort round maximises.

    `max_total_score`: the sum of compatibility scores (only positive-score pairs are worth matching).
    `max_matched_then_score`: as many matched mentees as possible, then the highest total score among those.
    """

    MAX_TOTAL_SCORE = "max_total_score"
    MAX_MATCHED_THEN_SCORE = "max_matched_then_score"


@dataclass(frozen=True, slots=True)
class AvailabilityWindow:
    """A weekly window in the person's own time zone. `end` of 00:00 means midnight at the end of the day."""

    weekday: int  # 0 = Monday … 6 = Sunday (as `date.weekday()`)
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0..6, got {self.weekday}")
        if self.end != time(0) and self.end <= self.start:
            raise ValueError("an availability window must end after it starts")


@dataclass(frozen=True, slots=True)
class WorkingStyle:
    """Stated working style; `None` means not stated (the aspect then does not count either way)."""

    communication: str | None = None  # e.g. "chat", "calls", "email"
    meeting_format: MeetingFormat | None = None
    cadence_days: int | None = None  # preferred days between meetings, e.g. 7, 14, 30

    def __post_init__(self) -> None:
        if self.cadence_days is not None and self.cadence_days <= 0:
            raise ValueError("cadence_days must be positive")


@dataclass(frozen=True, slots=True)
class Participant:
    """A person enrolled in a program, as matching sees them (mentor or mentee side; a person may be both).

    `affinity` holds only the background attributes the person consented to use for matching (attribute -> value);
    an attribute without consent is simply absent. `needs` is the mentee's self-inventory (function -> level) and
    `offers` the functions a mentor can offer; both use the program's function catalogue keys.
    `manager_chain` is the reporting line upwards: direct manager first, then their manager, and so on.
    """

    person_id: str
    organisation_id: str
    program_id: str
    role_level: int
    tenure_start: date
    time_zone: str
    campus_id: str | None = None
    team_id: str | None = None
    manager_chain: tuple[str, ...] = ()
    availability: tuple[AvailabilityWindow, ...] = ()
    interests: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    skills_wanted: frozenset[str] = frozenset()
    goal_tags: frozenset[str] = frozenset()
    desired_outcomes: frozenset[str] = frozenset()
    goals_text: str = ""
    working_style: WorkingStyle = WorkingStyle()
    affinity: Mapping[str, str] = field(default_factory=dict, hash=False)
    blocked_ids: frozenset[str] = frozenset()
    needs: Mapping[str, NeedLevel] = field(default_factory=dict, hash=False)
    offers: frozenset[str] = frozenset()
    same_campus_only: bool = False  # the mentee's own wish, on top of the program's campus rule
    # In a mentor network: the mentee's needs their current mentors already offer. A further mentor is scored on the
    # rest (different purposes: one for research, one for personal support), not on what is already covered.
    needs_met_by_current_mentors: frozenset[str] = frozenset()

    @property
    def manager_id(self) -> str | None:
        return self.manager_chain[0] if self.manager_chain else None

    @property
    def critical_needs(self) -> frozenset[str]:
        """Critical needs still open: those no current mentor offers."""
        return self._open_needs(NeedLevel.CRITICAL)

    @property
    def important_needs(self) -> frozenset[str]:
        return self._open_needs(NeedLevel.IMPORTANT)

    def _open_needs(self, wanted: NeedLevel) -> frozenset[str]:
        met = self.needs_met_by_current_mentors
        return frozenset(f for f, level in self.needs.items() if level is wanted and f not in met)

    @property
    def goals(self) -> frozenset[str]:
        """Goal tags and desired outcomes together (namespaced so a goal and an outcome of one name stay apart)."""
        return frozenset({f"goal:{g}" for g in self.goal_tags} | {f"outcome:{o}" for o in self.desired_outcomes})


@dataclass(frozen=True, slots=True)
class MentorCapacity:
    """How many mentees a mentor takes at once, and how many they already have."""

    person_id: str
    capacity: int
    active_matches: int = 0

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.active_matches)


@dataclass(frozen=True, slots=True)
class FactorWeights:
    """Relative weights of the score factors (normalised over the factors that apply to a pair)."""

    needs: float = 3.0
    interests: float = 1.0
    goals: float = 1.5
    skills: float = 1.5
    working_style: float = 0.5
    availability: float = 1.0
    background: float = 0.5
    seniority: float = 1.0
    semantic_goals: float = 1.0  # only counts when a sentence-embedding model is installed

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 0:
                raise ValueError(f"weight {name} must not be negative")


@dataclass(frozen=True, slots=True)
class SeniorityRule:
    """The mentor must be ahead of the mentee by `min_level_gap` role levels (hard), never more than
    `max_level_gap` when set (hard); beyond `comfortable_level_gap` the score falls by `penalty_per_level`
    per extra level. `min_tenure_lead_days`, when set, also requires the mentor to have started that many days
    before the mentee (hard); `max_tenure_lead_days`, when set, no more than that many days before (hard: peer
    mentoring pairs near-peers)."""

    min_level_gap: int = 1
    max_level_gap: int | None = None
    comfortable_level_gap: int = 2
    penalty_per_level: float = 0.25
    min_tenure_lead_days: int | None = None
    max_tenure_lead_days: int | None = None


@dataclass(frozen=True, slots=True)
class ProgramPolicy:
    organisation_id: str
    program_id: str
    weights: FactorWeights = FactorWeights()
    seniority: SeniorityRule = SeniorityRule()
    exclude_same_reporting_line: bool = True
    exclude_same_team: bool = False
    campus_rule: CampusRule = CampusRule.ANY
    proposals_per_mentee: int = 3  # short-list length (programs use 3-4)
    allow_mentor_network: bool = False
    max_mentors_per_mentee: int = 1  # active mentors a mentee may hold at once when the network is allowed
    objective: Objective = Objective.MAX_TOTAL_SCORE
    critical_need_weight: float = 2.0  # how much more a Critical need counts than an Important one
    availability_target_hours: float = 4.0  # shared hours per week at which the availability factor is full
    exposure_margin: float = 0.5  # a mentor is shown to at most free_slots * (1 + margin) mentees
    reference_week: date = date(2026, 1, 5)  # the Monday whose UTC offsets convert weekly windows (DST-correct)
    # the program's function catalogue: key -> label, so explanations name functions as the program does
    function_labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.reference_week.weekday() != 0:
            raise ValueError("reference_week must be a Monday")
        if self.proposals_per_mentee < 1:
            raise ValueError("proposals_per_mentee must be at least 1")
        if self.max_mentors_per_mentee < 1:
            raise ValueError("max_mentors_per_mentee must be at least 1")

    @property
    def mentors_per_mentee(self) -> int:
        """How many mentors one mentee may hold at once."""
        return self.max_mentors_per_mentee if self.allow_mentor_network else 1


def pair_key(mentee_id: str, mentor_id: str) -> tuple[str, str]:
    return (mentee_id, mentor_id)


@dataclass(frozen=True, slots=True)
class MatchHistory:
    """Pairs matching must respect: ended or declined pairs are never proposed again (in either direction);
    active pairs are not proposed twice. Pairs are (mentee_id, mentor_id)."""

    ended_or_declined: frozenset[tuple[str, str]] = frozenset()
    active: frozenset[tuple[str, str]] = frozenset()

    def never_again(self, mentee_id: str, mentor_id: str) -> bool:
        return (mentee_id, mentor_id) in self.ended_or_declined or (mentor_id, mentee_id) in self.ended_or_declined

    def is_active(self, mentee_id: str, mentor_id: str) -> bool:
        return (mentee_id, mentor_id) in self.active

    def active_mentor_count(self, mentee_id: str) -> int:
        return sum(1 for mentee, _ in self.active if mentee == mentee_id)
