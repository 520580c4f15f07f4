"""What the profiles service accepts: validated, bounded shapes of programs, profiles, enrolments, inventories.

The value types come from the event contract (`shared.events.values`), so whatever is accepted here always fits
the ProfileUpdated / ProgramUpdated / EnrollmentChanged events built from it. Input is stricter than the contract
where it is cheap to be: full email validation, non-overlapping availability windows.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Self
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_local_part
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.profiles.domain.catalogue import DEFAULT_FUNCTION_CATALOGUE
from shared.events.models import IdList, KeyList, TagList
from shared.events.values import (
    UNIQUE,
    AvailabilityWindow,
    ConsentFlags,
    EnrollmentRole,
    EnrollmentStatus,
    ExternalId,
    FunctionCatalogueEntry,
    GoalStatement,
    LanguageTag,
    MatchingPolicy,
    Milestones,
    NeedRating,
    ProgramStatus,
    PulseQuestion,
    ShortText,
    Tag,
    TimeZoneName,
    UnitScore,
    Weekday,
    WorkingStyle,
    unique_by_key,
    unique_items,
)

MAX_CAPACITY = 20
AT_RISK_THRESHOLD = (
    "A match whose health score (0 to 1, from pulse ratings and attendance) falls below this is at risk."
)
#: The dates a program may start and end on: the span scheduling plans in (instants of 2000-2099).
PROGRAM_DATES = (date(2000, 1, 1), date(2099, 12, 31))
#: Longer is a typo (an end year of 2062 for 2026), not a mentoring program: cohorts run for months, a few years at most.
MAX_PROGRAM_DAYS = 3653

#: Validation context flag: the values were validated when written (a stored row, merged with a request body that
#: was validated on arrival): rules that depend on today's date are not applied again, so a row stored before such
#: a rule existed can still be read and corrected.
STORED = "stored"
#: No one in an organisation today started before this; earlier dates are typos (e.g. 0202 for 2020).
EARLIEST_TENURE_START = date(1900, 1, 1)
#: How far ahead of today a start may lie. Onboarding ("buddy") programs match new hires with peers before their
#: first day, and HR registers a hire once the offer is accepted: weeks to months ahead, and up to a year for
#: graduate and academic intakes (offers in autumn for next September). Later is a typo (2062 for 2026) that would
#: make the person junior to everyone in matching's seniority rule. 366 days: the same date next year always fits.
TENURE_START_LEAD = timedelta(days=366)
# "Today" is the latest date anywhere on Earth (UTC+14): an import run at 20:00 UTC for a site east of UTC must not
# refuse a start date that is already today there.
_LATEST_OFFSET = timedelta(hours=14)


def tenure_start_refusal(value: date, stored: date | None = None, now: datetime | None = None) -> str | None:
    """Why a write may not set tenure_start to `value` (1900-01-01 to a year after today), or None.

    Only a value being set is checked (on creation, in every import row, or when it differs from the `stored`
    one): a row stored before this rule must not block a save that sends it back unchanged, which is all a
    participant may do with it. The request shapes accept any date so that this is decided where the stored value
    is known: the API's create and update, and the CSV rows.
    """
    if value == stored:
        return None
    if value < EARLIEST_TENURE_START:
        return f"tenure_start must not be before {EARLIEST_TENURE_START.isoformat()}"
    latest = ((now or datetime.now(UTC)).astimezone(UTC) + _LATEST_OFFSET).date() + TENURE_START_LEAD
    if value > latest:
        return f"tenure_start must not be more than a year ahead: {value.isoformat()} is after {latest.isoformat()}"
    return None


TenureStart = Annotated[
    date,
    Field(
        description="When the person started (or will start) in the organisation or program of study: from "
        "1900-01-01 to a year after today, so upcoming starters can be matched before their first day. Checked "
        "when set: a stored value sent back unchanged is accepted."
    ),
]
RoleLevel = Annotated[int, Field(ge=0, le=100, description="Year of study or job grade, 0-100; higher is more senior.")]


@lru_cache(maxsize=4096)
def _normalised_domain(domain: str) -> str:
    return str(validate_email(f"x@{domain}", check_deliverability=False).domain)


def valid_email(value: str) -> str:
    """Full email-validator checks, with the domain part validated once per domain.

    email-validator spends most of its ~70 µs per address on IDNA checks of the domain; the 100k addresses of an
    import share a handful of domains, so caching the domain's verdict keeps the check complete and cheap.
    """
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("an email address has the form local-part@domain")
    try:
        normalised = _normalised_domain(domain)
        validate_email_local_part(local, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from error
    address = f"{local}@{normalised}"
    if len(address) > 254:
        raise ValueError("an email address has at most 254 characters")
    return address


Email = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254),
    AfterValidator(valid_email),
    Field(json_schema_extra={"format": "email"}),
]
Languages = Annotated[
    tuple[LanguageTag, ...], Field(max_length=20, json_schema_extra=UNIQUE), AfterValidator(unique_items)
]
Availability = Annotated[tuple[AvailabilityWindow, ...], Field(max_length=100)]
Needs = Annotated[tuple[NeedRating, ...], Field(max_length=100)]
Catalogue = Annotated[tuple[FunctionCatalogueEntry, ...], Field(min_length=1, max_length=100)]


# NUL cannot be stored in PostgreSQL text or JSONB, and lone surrogates cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: object) -> bool:
    """True when no string inside `value` (recursively) holds a character PostgreSQL cannot store."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if isinstance(value, BaseModel):
        return all(storable(getattr(value, name)) for name in type(value).model_fields)
    if isinstance(value, list | tuple | set | frozenset):
        return all(storable(item) for item in value)
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    return True


#: Validation context flag: the input's text was already checked for unstorable characters.
TEXT_CHECKED = "text_checked"


class ImportStatus(StrEnum):
    """Where a CSV import stands: its rows are still being read, all were read, or it stopped on an error."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Strict(BaseModel):
    """Request shapes: unknown fields are a 422, never silently dropped; text must be storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable_text(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(TEXT_CHECKED):
            return self  # the caller checked the raw text already (the CSV import does, per cell)
        for name in type(self).model_fields:
            if not storable(getattr(self, name)):
                raise PydanticCustomError(
                    "unstorable_text",
                    "{field}: text must not contain NUL characters or unpaired surrogates",
                    {"field": name},
                )
        return self


# Weekday.iso_number scans the enum on every call; imports sort two windows a row.
_WEEKDAY_ORDER = {weekday: weekday.iso_number for weekday in Weekday}


def non_overlapping(windows: tuple[AvailabilityWindow, ...]) -> tuple[AvailabilityWindow, ...]:
    """Windows of one weekday must not overlap (touching is fine: ``end`` is exclusive)."""
    ordered = sorted(windows, key=lambda w: (_WEEKDAY_ORDER[w.weekday], w.start))
    for before, after in itertools.pairwise(ordered):
        if before.weekday == after.weekday and after.start < before.end:
            raise ValueError(f"availability windows overlap on {after.weekday.value}")
    return windows


class ProfileFields(Strict):
    """Every editable field of a participant's profile (the ProfileUpdated snapshot minus ids and inventories)."""

    external_id: ExternalId | None = None
    display_name: ShortText
    email: Email
    campus_id: UUID | None = None
    department: ShortText | None = None
    team: ShortText | None = None
    manager_person_id: UUID | None = None
    reporting_line_id: ExternalId | None = None
    role_level: RoleLevel = 0
    tenure_start: TenureStart  # its range is checked where a write sets it: tenure_start_refusal
    time_zone: TimeZoneName
    languages: Languages = ()
    interests: TagList = ()
    skills: TagList = ()
    goals: GoalStatement = GoalStatement()
    desired_outcomes: GoalStatement = GoalStatement()
    working_style: WorkingStyle = WorkingStyle()
    # consent precedes affinity_attributes so the latter's validator can see it (and name its own field).
    consent: ConsentFlags = ConsentFlags()
    affinity_attributes: TagList = ()
    blocked_person_ids: IdList = ()
    availability: Availability = ()

    @field_validator("email")
    @classmethod
    def _lowercase_domain(cls, value: str) -> str:
        # One person, one address: the domain part is case-insensitive, so store it in one case.
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"

    @field_validator("affinity_attributes")
    @classmethod
    def _only_with_consent(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        consent = info.data.get("consent")
        if value and not (isinstance(consent, ConsentFlags) and consent.affinity_matching):
            raise ValueError("affinity attributes need consent.affinity_matching")
        return value

    @field_validator("availability")
    @classmethod
    def _sensible_windows(cls, value: tuple[AvailabilityWindow, ...]) -> tuple[AvailabilityWindow, ...]:
        return non_overlapping(value)


class ProfilePatch(Strict):
    """A partial update: only the given fields change, at any depth (a consent or working-style field sent alone
    keeps the others; a list is replaced whole), validated again as a whole after merging."""

    external_id: ExternalId | None = None
    display_name: ShortText | None = None
    email: Email | None = None
    campus_id: UUID | None = None
    department: ShortText | None = None
    team: ShortText | None = None
    manager_person_id: UUID | None = None
    reporting_line_id: ExternalId | None = None
    role_level: RoleLevel | None = None
    tenure_start: TenureStart | None = None
    time_zone: TimeZoneName | None = None
    languages: Languages | None = None
    interests: TagList | None = None
    skills: TagList | None = None
    goals: GoalStatement | None = None
    desired_outcomes: GoalStatement | None = None
    working_style: WorkingStyle | None = None
    consent: ConsentFlags | None = None
    affinity_attributes: TagList | None = None
    blocked_person_ids: IdList | None = None
    availability: Availability | None = None


def merge(current: BaseModel, patch: BaseModel) -> dict[str, Any]:
    """The current fields overlaid with the fields the patch set explicitly, at every depth (as in a JSON merge
    patch, RFC 7396): ``{"consent": {"share_email_with_partner": true}}`` leaves the other consents as they were;
    a list is replaced whole."""
    return _overlay(current.model_dump(), patch.model_dump(exclude_unset=True))


def _overlay(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in given.items():
        below = merged.get(key)
        merged[key] = _overlay(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


class NeedsInventory(Strict):
    """A mentee's self-inventory: each function of the catalogue rated critical / important / not relevant."""

    needs: Needs

    @field_validator("needs")
    @classmethod
    def _one_rating_per_function(cls, value: tuple[NeedRating, ...]) -> tuple[NeedRating, ...]:
        unique_by_key(value, "function_key")
        return value


class OfferInventory(Strict):
    """The functions a mentor can offer."""

    offers: KeyList


class ProgramFields(Strict):
    """A program's configuration: everything ProgramUpdated carries except ids and version."""

    name: ShortText
    campus_ids: IdList = ()
    goals: Annotated[tuple[ShortText, ...], Field(max_length=20)] = ()
    starts_on: date
    ends_on: date
    check_in_cadence_days: int = Field(default=14, ge=1, le=120)
    milestones: Milestones = Milestones()
    matching_policy: MatchingPolicy = MatchingPolicy()
    default_mentor_capacity: int = Field(default=2, ge=1, le=MAX_CAPACITY)
    min_report_group_size: int = Field(default=5, ge=2, le=100)
    function_catalogue: Catalogue = DEFAULT_FUNCTION_CATALOGUE
    pulse_questions: Annotated[tuple[PulseQuestion, ...], Field(max_length=20)] = ()
    at_risk_threshold: UnitScore = Field(default=0.4, description=AT_RISK_THRESHOLD)
    reminder_lead_hours: int = Field(default=24, ge=0, le=336)
    missed_grace_days: int = Field(default=7, ge=1, le=60)
    pulse_window_days: int = Field(default=7, ge=1, le=60)
    status: ProgramStatus = ProgramStatus.DRAFT

    @field_validator("starts_on", "ends_on")
    @classmethod
    def _within_the_calendar_the_platform_plans_in(cls, value: date, info: ValidationInfo) -> date:
        # Scheduling plans check-ins and meetings from these dates (start + cadence, up to the last day) and accepts
        # instants of 2000-2099 only: a program of 9999-12-31 was accepted here and dead-lettered there.
        if isinstance(info.context, dict) and info.context.get(STORED):
            return value
        if not PROGRAM_DATES[0] <= value <= PROGRAM_DATES[1]:
            raise ValueError(
                f"{info.field_name} must be from {PROGRAM_DATES[0].isoformat()} to {PROGRAM_DATES[1].isoformat()}"
            )
        return value

    @field_validator("ends_on")
    @classmethod
    def _after_start(cls, value: date, info: ValidationInfo) -> date:
        starts_on = info.data.get("starts_on")
        if isinstance(starts_on, date) and value <= starts_on:
            raise ValueError("ends_on must be after starts_on")
        stored = isinstance(info.context, dict) and info.context.get(STORED)
        if isinstance(starts_on, date) and not stored and (value - starts_on).days > MAX_PROGRAM_DAYS:
            raise ValueError(f"a program runs at most {MAX_PROGRAM_DAYS} days (ten years); ends_on is {value}")
        return value

    @field_validator("function_catalogue")
    @classmethod
    def _unique_functions(cls, value: tuple[FunctionCatalogueEntry, ...]) -> tuple[FunctionCatalogueEntry, ...]:
        unique_by_key(value, "key")
        return value

    @field_validator("pulse_questions")
    @classmethod
    def _unique_questions(cls, value: tuple[PulseQuestion, ...]) -> tuple[PulseQuestion, ...]:
        unique_by_key(value, "key")
        return value


class ProgramPatch(Strict):
    name: ShortText | None = None
    campus_ids: IdList | None = None
    goals: Annotated[tuple[ShortText, ...], Field(max_length=20)] | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    check_in_cadence_days: int | None = Field(default=None, ge=1, le=120)
    milestones: Milestones | None = None
    matching_policy: MatchingPolicy | None = None
    default_mentor_capacity: int | None = Field(default=None, ge=1, le=MAX_CAPACITY)
    min_report_group_size: int | None = Field(default=None, ge=2, le=100)
    function_catalogue: Catalogue | None = None
    pulse_questions: Annotated[tuple[PulseQuestion, ...], Field(max_length=20)] | None = None
    at_risk_threshold: UnitScore | None = Field(default=None, description=AT_RISK_THRESHOLD)
    reminder_lead_hours: int | None = Field(default=None, ge=0, le=336)
    missed_grace_days: int | None = Field(default=None, ge=1, le=60)
    pulse_window_days: int | None = Field(default=None, ge=1, le=60)
    status: ProgramStatus | None = None


class EnrolmentFields(Strict):
    """One person's enrolment in one program. Capacity is how many mentees a mentor takes at once."""

    role: EnrollmentRole
    capacity: int | None = Field(
        default=None, ge=0, le=MAX_CAPACITY, description="Defaults to the program's mentor capacity (0 for mentees)."
    )
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE
    cohort: Tag | None = None

    @field_validator("capacity")
    @classmethod
    def _mentees_take_no_mentees(cls, value: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("role") is EnrollmentRole.MENTEE and value:
            raise ValueError("a mentee-only enrolment has capacity 0")
        return value


def effective_capacity(role: EnrollmentRole, capacity: int | None, program_default: int) -> int:
    if role is EnrollmentRole.MENTEE:
        return 0
    return program_default if capacity is None else capacity


class EnrolmentPatch(Strict):
    role: EnrollmentRole | None = None
    capacity: int | None = Field(default=None, ge=0, le=MAX_CAPACITY)
    status: EnrollmentStatus | None = None
    cohort: Tag | None = None
