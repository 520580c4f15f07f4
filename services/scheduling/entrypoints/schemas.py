"""Request and response bodies of the scheduling API (bounded, unknown fields rejected)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.scheduling.application.access import NO_OVERLAPS, OVERLAPS_SHOWN, MeetingOverlaps
from services.scheduling.domain.model import CheckInKind, CheckInState, RelationshipPhase
from services.scheduling.domain.rhythm import MeetingState
from shared.events.values import MeetingFormat

# Every list of every service pages alike (shared.paging); re-exported for the routes here.
from shared.paging import Limit as Limit

MAX_MEETING_LENGTH = timedelta(hours=24)  # the MeetingEvent contract's limit

# The instants a request may name: checked where they are parsed, so a year-1 or year-9999 date is a 422 naming its
# field instead of overflowing the arithmetic done on it (a slot horizon, a meeting's length). Wide on purpose: the
# rules of the domain (the future, the program's end) are checked by the use cases.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)
INSTANT_RANGE = "From 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z."
Instant = Annotated[AwareDatetime, Field(ge=EARLIEST_INSTANT, lt=LATEST_INSTANT)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeetingTimes(Request):
    starts_at: Instant = Field(description=f"With a UTC offset. {INSTANT_RANGE}")
    ends_at: Instant = Field(description="With a UTC offset, after starts_at and at most 24 hours later.")

    # On ends_at rather than the whole body, so the 422 names the field (starts_at is validated first).
    @field_validator("ends_at")
    @classmethod
    def _ordered(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and not starts_at < ends_at <= starts_at + MAX_MEETING_LENGTH:
            raise ValueError("ends_at must be after starts_at and at most 24 hours later")
        return ends_at


class ProposeMeeting(MeetingTimes):
    format: MeetingFormat = MeetingFormat.VIRTUAL
    check_in_id: uuid.UUID | None = Field(
        default=None, description="The check-in this meeting is for; default: the earliest open one."
    )


class RescheduleMeeting(MeetingTimes):
    pass


class MeetingConflictOut(BaseModel):
    """An open meeting that overlaps another of the same person."""

    meeting_id: uuid.UUID | None = Field(
        description="Null when the meeting is in a match you are not part of (you see its time only)."
    )
    starts_at: datetime
    ends_at: datetime

    @classmethod
    def of(cls, conflict: Any) -> MeetingConflictOut:
        return cls.model_validate(conflict, from_attributes=True)


class MeetingOut(BaseModel):
    meeting_id: uuid.UUID
    match_id: uuid.UUID
    program_id: uuid.UUID
    check_in_id: uuid.UUID | None
    state: MeetingState
    starts_at: datetime
    ends_at: datetime
    format: MeetingFormat
    sequence: int = Field(description="iCalendar SEQUENCE: rises when calendars must replace the meeting.")
    version: int = Field(description="Rises on every change; also the ETag. Send it as If-Match to write safely.")
    proposed_by: uuid.UUID
    mentee_person_id: uuid.UUID
    mentor_person_id: uuid.UUID
    overlaps_with: list[MeetingConflictOut] = Field(
        description="Other proposed or accepted meetings of either person that overlap this one, earliest first "
        f"(double bookings made before overlaps were refused), the first {OVERLAPS_SHOWN} at most; empty once this "
        "meeting is settled."
    )
    overlaps_total: int = Field(
        description="How many meetings overlap this one in all; more than overlaps_with lists when it is cut short."
    )

    @classmethod
    def of(cls, row: Any, overlaps: MeetingOverlaps = NO_OVERLAPS) -> MeetingOut:
        fields = {name: getattr(row, name) for name in cls.model_fields if name not in _OVERLAP_FIELDS}
        listed = [MeetingConflictOut.of(c) for c in overlaps.first]
        return cls.model_validate({**fields, "overlaps_with": listed, "overlaps_total": overlaps.total})


_OVERLAP_FIELDS = frozenset({"overlaps_with", "overlaps_total"})


class CheckInOut(BaseModel):
    check_in_id: uuid.UUID
    match_id: uuid.UUID
    program_id: uuid.UUID
    occurrence_key: str
    kind: CheckInKind
    phase: RelationshipPhase
    state: CheckInState
    due_at: datetime
    deferred_until: datetime | None
    missed_after: datetime

    @classmethod
    def of(cls, row: Any) -> CheckInOut:
        return cls.model_validate(row, from_attributes=True)


class ReminderOut(BaseModel):
    check_in_id: uuid.UUID
    match_id: uuid.UUID
    due_at: datetime
    remind_at: datetime
    recorded_at: datetime
    check_in_state: CheckInState = Field(
        description="The check-in's state now: a reminder stays listed after its check-in was cancelled (the match"
        " ended, a new plan) or settled, so a client reminds only of a scheduled one."
    )

    @classmethod
    def of(cls, row: Any) -> ReminderOut:
        return cls.model_validate(row, from_attributes=True)


class SlotOut(BaseModel):
    starts_at: datetime
    ends_at: datetime


class SlotSuggestions(BaseModel):
    match_id: uuid.UUID
    slots: list[SlotOut]


class CalendarFeedOut(BaseModel):
    url: str = Field(description="Private feed URL: anyone holding it can read the calendar. Shown once.")
