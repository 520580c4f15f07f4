"""The rhythm of a relationship: check-in and meeting state machines, and what a sweep finds due.

Check-in states::

    scheduled ──(due time reached)──> due ──(grace period over)──> missed
        │                              │
        ├──(meeting held early)──> completed <──(meeting held)──┤
        └──(re-plan / match ended)──> cancelled <───────────────┘

Meeting states::

    proposed ──(other party accepts)──> accepted ──> held | missed      (after the start time, either party)
       │  ^                                │
       │  └──────(reschedule, SEQUENCE+1)──┤                            (either party)
       └──────────> cancelled <────────────┘                            (either party, SEQUENCE+1)

Every function is pure: it takes ``now`` and returns new values; illegal moves raise a
:class:`~services.scheduling.domain.errors.SchedulingDomainError`. Emitting CheckInDue exactly once is the
service's job (a unique occurrence key in the outbox); these functions only say what is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum

from services.scheduling.domain.errors import (
    IllegalTransitionError,
    InvalidMeetingTimeError,
    NotAParticipantError,
    NotPermittedError,
    SchedulingDomainError,
    require_aware,
)
from services.scheduling.domain.model import CheckIn, CheckInState

_CHECKIN_TRANSITIONS: dict[CheckInState, frozenset[CheckInState]] = {
    # A meeting held before the due time completes the check-in straight from scheduled.
    CheckInState.SCHEDULED: frozenset({CheckInState.DUE, CheckInState.COMPLETED, CheckInState.CANCELLED}),
    CheckInState.DUE: frozenset({CheckInState.COMPLETED, CheckInState.MISSED, CheckInState.CANCELLED}),
    CheckInState.COMPLETED: frozenset(),
    CheckInState.MISSED: frozenset(),
    CheckInState.CANCELLED: frozenset(),
}


def _utc(value: datetime, name: str) -> datetime:
    require_aware(value, name)
    return value.astimezone(UTC)


def _move_checkin(checkin: CheckIn, target: CheckInState, reason: str = "") -> CheckIn:
    if target not in _CHECKIN_TRANSITIONS[checkin.state]:
        raise IllegalTransitionError(f"check-in {checkin.occurrence_key}", checkin.state.value, target.value, reason)
    return replace(checkin, state=target)


def missed_deadline(checkin: CheckIn, grace: timedelta) -> datetime:
    """When an uncompleted check-in counts as missed: grace after its due time, or after the rescheduled meeting."""
    start = checkin.due_at if checkin.deferred_until is None else max(checkin.due_at, checkin.deferred_until)
    return start + grace


def mark_due(checkin: CheckIn, now: datetime) -> CheckIn:
    if checkin.state is CheckInState.SCHEDULED and checkin.due_at > _utc(now, "now"):
        raise IllegalTransitionError(
            f"check-in {checkin.occurrence_key}", checkin.state.value, CheckInState.DUE.value, "not due yet"
        )
    return _move_checkin(checkin, CheckInState.DUE)


def complete_checkin(checkin: CheckIn) -> CheckIn:
    return _move_checkin(checkin, CheckInState.COMPLETED)


def mark_missed(checkin: CheckIn, now: datetime, grace: timedelta) -> CheckIn:
    if checkin.state is CheckInState.DUE and missed_deadline(checkin, grace) > _utc(now, "now"):
        raise IllegalTransitionError(
            f"check-in {checkin.occurrence_key}", checkin.state.value, CheckInState.MISSED.value, "grace period runs"
        )
    return _move_checkin(checkin, CheckInState.MISSED)


def cancel_checkin(checkin: CheckIn) -> CheckIn:
    return _move_checkin(checkin, CheckInState.CANCELLED)


def defer_checkin(checkin: CheckIn, until: datetime) -> CheckIn:
    """The pair rescheduled the meeting for this check-in to ``until``: the grace period now counts from there."""
    if checkin.settled:
        raise IllegalTransitionError(
            f"check-in {checkin.occurrence_key}", checkin.state.value, "deferred", "it is already settled"
        )
    return replace(checkin, deferred_until=_utc(until, "until"))


def defer_for_meetings(checkin: CheckIn, meeting_starts: Iterable[datetime]) -> CheckIn:
    """The check-in as the open meetings set for it leave it: the latest one after its due time defers its grace
    period (``defer_checkin``); with none (cancelled, or moved before the due time) it counts from the due time."""
    later = [start for start in (_utc(s, "meeting start") for s in meeting_starts) if start > checkin.due_at]
    if later:
        return defer_checkin(checkin, max(later))
    return replace(checkin, deferred_until=None)


def due_now(checkins: Iterable[CheckIn], now: datetime) -> list[CheckIn]:
    """Scheduled check-ins whose due time has come, oldest first (each is one CheckInDue to emit)."""
    now = _utc(now, "now")
    return sorted(
        (c for c in checkins if c.state is CheckInState.SCHEDULED and c.due_at <= now), key=lambda c: c.due_at
    )


def reminder_key(checkin: CheckIn) -> str:
    """Unique key of a check-in's reminder, so the service sends it at most once."""
    return f"{checkin.occurrence_key}:reminder"


def reminders_due(checkins: Iterable[CheckIn], now: datetime, lead: timedelta) -> list[CheckIn]:
    """Scheduled check-ins within ``lead`` of their due time and not yet due.

    A check-in already past its due time gets no reminder: CheckInDue itself supersedes it.
    """
    now = _utc(now, "now")
    return sorted(
        (c for c in checkins if c.state is CheckInState.SCHEDULED and c.due_at - lead <= now < c.due_at),
        key=lambda c: c.due_at,
    )


def missed_now(checkins: Iterable[CheckIn], now: datetime, grace: timedelta) -> list[CheckIn]:
    """Due check-ins neither completed nor rescheduled within the grace period (each is one CheckInMissed).

    Only ``due`` check-ins qualify: a sweep first marks scheduled ones due (and emits CheckInDue), so a
    check-in is never reported missed before it was reported due.
    """
    now = _utc(now, "now")
    return sorted(
        (c for c in checkins if c.state is CheckInState.DUE and missed_deadline(c, grace) <= now),
        key=lambda c: c.due_at,
    )


class MeetingState(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    HELD = "held"
    MISSED = "missed"
    CANCELLED = "cancelled"


#: States a meeting never leaves.
SETTLED_MEETING_STATES = frozenset({MeetingState.HELD, MeetingState.MISSED, MeetingState.CANCELLED})
OPEN_MEETING_STATES = frozenset({MeetingState.PROPOSED, MeetingState.ACCEPTED})


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting between the two people of a match, optionally fulfilling one check-in.

    ``sequence`` is the iCalendar SEQUENCE: it goes up on every significant revision (acceptance, reschedule,
    cancel: a change of time or STATUS) so calendar clients replace the copy they hold.
    """

    meeting_id: str
    match_id: str
    participants: tuple[str, str]
    proposed_by: str
    starts_at: datetime
    ends_at: datetime
    state: MeetingState = MeetingState.PROPOSED
    sequence: int = 0
    checkin_key: str | None = None
    last_changed_by: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts_at", _utc(self.starts_at, "starts_at"))
        object.__setattr__(self, "ends_at", _utc(self.ends_at, "ends_at"))
        if self.ends_at <= self.starts_at:
            raise InvalidMeetingTimeError("a meeting must end after it starts", self.ends_at, field="ends_at")
        if self.participants[0] == self.participants[1]:
            raise SchedulingDomainError("a meeting needs two different participants")
        if self.proposed_by not in self.participants:
            raise NotAParticipantError(f"{self.proposed_by} is not a participant of meeting {self.meeting_id}")

    def other_party(self, person_id: str) -> str:
        first, second = self.participants
        return second if person_id == first else first


def _require_participant(meeting: Meeting, actor: str) -> None:
    if actor not in meeting.participants:
        raise NotAParticipantError(f"{actor} is not a participant of meeting {meeting.meeting_id}")


def _require_state(meeting: Meeting, allowed: frozenset[MeetingState], target: MeetingState, reason: str = "") -> None:
    if meeting.state not in allowed:
        raise IllegalTransitionError(f"meeting {meeting.meeting_id}", meeting.state.value, target.value, reason)


def propose_meeting(
    *,
    meeting_id: str,
    match_id: str,
    participants: tuple[str, str],
    proposed_by: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    checkin_key: str | None = None,
) -> Meeting:
    """Either participant proposes a meeting in the future; the other has to accept it."""
    meeting = Meeting(
        meeting_id=meeting_id,
        match_id=match_id,
        participants=participants,
        proposed_by=proposed_by,
        starts_at=starts_at,
        ends_at=ends_at,
        checkin_key=checkin_key,
        last_changed_by=proposed_by,
    )
    if meeting.starts_at <= _utc(now, "now"):
        raise InvalidMeetingTimeError("a meeting can only be proposed for a time in the future", starts_at)
    return meeting


def accept_meeting(meeting: Meeting, actor: str, now: datetime) -> Meeting:
    """The party who did not propose (or last reschedule) the meeting accepts it, before it starts."""
    _require_participant(meeting, actor)
    _require_state(meeting, frozenset({MeetingState.PROPOSED}), MeetingState.ACCEPTED)
    if actor == meeting.proposed_by:
        raise NotPermittedError(f"{actor} proposed meeting {meeting.meeting_id}; only the other participant can accept")
    if meeting.starts_at <= _utc(now, "now"):
        raise IllegalTransitionError(
            f"meeting {meeting.meeting_id}", meeting.state.value, MeetingState.ACCEPTED.value, "its start has passed"
        )
    # STATUS goes TENTATIVE -> CONFIRMED, a significant change (RFC 5546 2.1.4): Google and Outlook compare SEQUENCE
    # before DTSTAMP, so without the raise they may keep the tentative copy they imported.
    return replace(meeting, state=MeetingState.ACCEPTED, sequence=meeting.sequence + 1, last_changed_by=actor)


def reschedule_meeting(
    meeting: Meeting, actor: str, *, starts_at: datetime, ends_at: datetime, now: datetime
) -> Meeting:
    """Either party moves an open meeting: it becomes a new proposal by ``actor`` with the next SEQUENCE."""
    _require_participant(meeting, actor)
    _require_state(meeting, OPEN_MEETING_STATES, MeetingState.PROPOSED, "only open meetings can be rescheduled")
    moved = replace(
        meeting,
        starts_at=starts_at,
        ends_at=ends_at,
        state=MeetingState.PROPOSED,
        proposed_by=actor,
        sequence=meeting.sequence + 1,
        last_changed_by=actor,
    )
    if moved.starts_at <= _utc(now, "now"):
        raise InvalidMeetingTimeError("a meeting can only be rescheduled to a time in the future", starts_at)
    return moved


#: How far ahead a meeting may be set while scheduling does not know the match's program (so not its end):
#: MatchAccepted can overtake ProgramUpdated, and a bound is still needed against typos like 2090.
MAX_LEAD_WITHOUT_PROGRAM = timedelta(days=365)
# A program's last day ends at midnight in the last time zone on Earth (UTC-12): a meeting on the evening of that
# day is in the program wherever its participants live.
_LAST_ZONE = timezone(timedelta(hours=-12))


def require_within_program(starts_at: datetime, *, now: datetime, program_last_day: date | None) -> None:
    """A meeting (proposed or moved) must start before the program's last day is over, or, when the program is
    not known yet, at most :data:`MAX_LEAD_WITHOUT_PROGRAM` ahead of ``now``."""
    start = _utc(starts_at, "starts_at")
    if program_last_day is not None:
        program_over = datetime.combine(program_last_day + timedelta(days=1), time(0), tzinfo=_LAST_ZONE)
        if start >= program_over:
            raise InvalidMeetingTimeError(
                f"starts_at {start.isoformat()} is after the program ends (its last day is "
                f"{program_last_day.isoformat()})",
                starts_at,
            )
    elif start > _utc(now, "now") + MAX_LEAD_WITHOUT_PROGRAM:
        raise InvalidMeetingTimeError(
            f"starts_at {start.isoformat()} is more than {MAX_LEAD_WITHOUT_PROGRAM.days} days ahead: until the "
            f"match's program is known here, meetings can be set at most {MAX_LEAD_WITHOUT_PROGRAM.days} days ahead",
            starts_at,
        )


def cancel_meeting(meeting: Meeting, actor: str) -> Meeting:
    """Either party cancels an open meeting (SEQUENCE goes up so calendars drop it)."""
    _require_participant(meeting, actor)
    _require_state(meeting, OPEN_MEETING_STATES, MeetingState.CANCELLED)
    return replace(meeting, state=MeetingState.CANCELLED, sequence=meeting.sequence + 1, last_changed_by=actor)


def mark_meeting_held(
    meeting: Meeting, actor: str, now: datetime, checkin: CheckIn | None = None
) -> tuple[Meeting, CheckIn | None]:
    """Either party records that an accepted meeting took place; it completes the check-in it was for.

    The check-in comes back completed if it was still open; a check-in already settled (e.g. reported missed
    before the pair finally met) is returned unchanged, since its events have already gone out.
    """
    _require_participant(meeting, actor)
    _require_state(meeting, frozenset({MeetingState.ACCEPTED}), MeetingState.HELD)
    if meeting.starts_at > _utc(now, "now"):
        raise IllegalTransitionError(
            f"meeting {meeting.meeting_id}", meeting.state.value, MeetingState.HELD.value, "it has not started yet"
        )
    if checkin is not None and checkin.occurrence_key != meeting.checkin_key:
        raise SchedulingDomainError(
            f"check-in {checkin.occurrence_key} is not the one meeting {meeting.meeting_id} is for"
        )
    held = replace(meeting, state=MeetingState.HELD, last_changed_by=actor)
    if checkin is None or checkin.settled:
        return held, checkin
    return held, complete_checkin(checkin)


def mark_meeting_missed(meeting: Meeting, actor: str, now: datetime) -> Meeting:
    """Either party records that an accepted meeting did not take place."""
    _require_participant(meeting, actor)
    _require_state(meeting, frozenset({MeetingState.ACCEPTED}), MeetingState.MISSED)
    if meeting.starts_at > _utc(now, "now"):
        raise IllegalTransitionError(
            f"meeting {meeting.meeting_id}", meeting.state.value, MeetingState.MISSED.value, "it has not started yet"
        )
    return replace(meeting, state=MeetingState.MISSED, last_changed_by=actor)


def cancel_meetings_on_match_end(meetings: Iterable[Meeting], ended_at: datetime) -> tuple[Meeting, ...]:
    """The open meetings after a match's end, cancelled by the platform (no participant acted)."""
    ended_at = _utc(ended_at, "ended_at")
    return tuple(
        replace(m, state=MeetingState.CANCELLED, sequence=m.sequence + 1, last_changed_by=None)
        for m in meetings
        if m.state in OPEN_MEETING_STATES and m.starts_at > ended_at
    )
