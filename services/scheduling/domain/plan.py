"""Check-in plans: what a match's rhythm looks like from the day it becomes active to its closing conversation.

How the plan is laid out
------------------------
* The relationship runs from the match start to its end: the earlier of ``start + duration_days`` and the
  program's ``ends_at`` (a program with a fixed end date shortens late matches instead of running past it).
* Milestones (each optional, each at most once):
  - ``first_meeting`` due ``first_meeting_within_days`` after the start (the deadline for the first meeting);
  - ``midpoint_review`` due halfway through the relationship;
  - ``closing`` due at the end of the relationship.
* Regular check-ins sit on a grid anchored at the match start: ``start + k * cadence`` for k = 1, 2, … while
  before the end. A grid point is left out when a milestone stands in for it: on or before the first-meeting
  deadline, or less than half a cadence from any milestone. So a regular check-in is never closer than half a
  cadence to a milestone, and after the first-meeting deadline consecutive check-ins are never more than two
  cadences apart (one and a half when a single milestone stands in; two when two milestones less than two
  cadences apart each take the grid point beside them, e.g. a 22-day weekly program's midpoint and closing).
  A regular check-in's ``seq`` is its grid index ``k``, so keys are deterministic for a given program.
* A degenerate program (shorter than its own first-meeting window) gets no separate first meeting: the
  closing conversation (or the first regular check-in) is then the first contact. A midpoint review that
  would fall on or before the first-meeting deadline is left out for the same reason.

How milestones map onto relationship phases (Kram's model, compressed to a program's length)
---------------------------------------------------------------------------------------------
* **initiation**: getting to know each other and agreeing expectations. Runs from the start to the later of
  the first-meeting deadline and the first sixth of the relationship. ``first_meeting`` is always initiation.
* **cultivation**: the working middle, where most value is exchanged. The ``midpoint_review`` (taking stock
  of goals halfway) is always cultivation.
* **separation**: the last sixth of the relationship, when the pair winds down and the mentee becomes more
  independent; regular check-ins there are separation.
* **redefinition**: what the relationship becomes after the program (often friendship or colleagues); this
  is the subject of the ``closing`` conversation, which is therefore redefinition.
Regular check-ins take the phase of the time they fall in. The one-sixth shares are a judgement call: in
Kram's multi-year relationships initiation and separation each take a small slice at either end.

Re-planning after a program change touches only future, still-scheduled check-ins; see :func:`replan`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.scheduling.domain.errors import InvalidProgramRhythmError, require_aware
from services.scheduling.domain.model import (
    ONE_OFF_KINDS,
    CheckIn,
    CheckInKind,
    CheckInState,
    RelationshipPhase,
    occurrence_key,
)

#: Share of the relationship at each end that belongs to initiation and to separation.
INITIATION_SHARE = 1 / 6
SEPARATION_SHARE = 1 / 6


@dataclass(frozen=True, slots=True)
class ProgramRhythm:
    """The part of a program that shapes its check-in plan (carried by ProgramUpdated)."""

    cadence_days: int
    duration_days: int | None = None
    ends_at: datetime | None = None
    first_meeting_within_days: int | None = None
    midpoint_review: bool = True
    closing_conversation: bool = True

    def __post_init__(self) -> None:
        if self.cadence_days < 1:
            raise InvalidProgramRhythmError(f"cadence_days must be at least 1, got {self.cadence_days}")
        if self.duration_days is None and self.ends_at is None:
            raise InvalidProgramRhythmError("a program needs a duration_days or an ends_at to plan check-ins")
        if self.duration_days is not None and self.duration_days < 1:
            raise InvalidProgramRhythmError(f"duration_days must be at least 1, got {self.duration_days}")
        if self.first_meeting_within_days is not None and self.first_meeting_within_days < 1:
            raise InvalidProgramRhythmError(
                f"first_meeting_within_days must be at least 1, got {self.first_meeting_within_days}"
            )
        if self.ends_at is not None:
            require_aware(self.ends_at, "ends_at")

    @property
    def cadence(self) -> timedelta:
        return timedelta(days=self.cadence_days)

    def relationship_end(self, match_started_at: datetime) -> datetime:
        """When a match started at ``match_started_at`` ends under this program (UTC)."""
        candidates: list[datetime] = []
        if self.duration_days is not None:
            candidates.append(match_started_at + timedelta(days=self.duration_days))
        if self.ends_at is not None:
            candidates.append(self.ends_at)
        return min(candidates).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ReplanResult:
    """What a re-plan does to a match's check-ins.

    ``keep`` holds every existing check-in left as it is (past, settled and unchanged future ones),
    ``cancel`` the future scheduled ones the new program no longer has, ``add`` the new ones to insert.
    """

    keep: tuple[CheckIn, ...]
    cancel: tuple[CheckIn, ...]
    add: tuple[CheckIn, ...]


@dataclass(frozen=True, slots=True)
class _Slot:
    """A planned occurrence before it gets a key: kind, grid index, due time."""

    kind: CheckInKind
    seq: int
    due_at: datetime


def _milestones(start: datetime, end: datetime, rhythm: ProgramRhythm) -> list[_Slot]:
    slots: list[_Slot] = []
    first_meeting_due: datetime | None = None
    if rhythm.first_meeting_within_days is not None:
        candidate = start + timedelta(days=rhythm.first_meeting_within_days)
        if candidate < end:
            first_meeting_due = candidate
            slots.append(_Slot(CheckInKind.FIRST_MEETING, 1, candidate))
    if rhythm.midpoint_review:
        midpoint = start + (end - start) / 2
        if first_meeting_due is None or midpoint > first_meeting_due:
            slots.append(_Slot(CheckInKind.MIDPOINT_REVIEW, 1, midpoint))
    if rhythm.closing_conversation:
        slots.append(_Slot(CheckInKind.CLOSING, 1, end))
    return slots


def _regulars(start: datetime, end: datetime, rhythm: ProgramRhythm, milestones: Sequence[_Slot]) -> list[_Slot]:
    cadence = rhythm.cadence
    half_cadence = cadence / 2
    first_meeting_due = next((m.due_at for m in milestones if m.kind is CheckInKind.FIRST_MEETING), None)
    stand_ins = [m.due_at for m in milestones]
    regulars: list[_Slot] = []
    k = 1
    while (due := start + k * cadence) < end:
        replaced_by_first_meeting = first_meeting_due is not None and due <= first_meeting_due
        replaced_by_milestone = any(abs(due - m) < half_cadence for m in stand_ins)
        if not (replaced_by_first_meeting or replaced_by_milestone):
            regulars.append(_Slot(CheckInKind.REGULAR, k, due))
        k += 1
    return regulars


def _phase(slot: _Slot, start: datetime, end: datetime, milestones: Sequence[_Slot]) -> RelationshipPhase:
    if slot.kind is CheckInKind.FIRST_MEETING:
        return RelationshipPhase.INITIATION
    if slot.kind is CheckInKind.MIDPOINT_REVIEW:
        return RelationshipPhase.CULTIVATION
    if slot.kind is CheckInKind.CLOSING:
        return RelationshipPhase.REDEFINITION
    span = end - start
    initiation_end = start + span * INITIATION_SHARE
    for milestone in milestones:
        if milestone.kind is CheckInKind.FIRST_MEETING:
            initiation_end = max(initiation_end, milestone.due_at)
    if slot.due_at <= initiation_end:
        return RelationshipPhase.INITIATION
    if slot.due_at >= end - span * SEPARATION_SHARE:
        return RelationshipPhase.SEPARATION
    return RelationshipPhase.CULTIVATION


def plan_checkins(match_id: str, match_started_at: datetime, rhythm: ProgramRhythm) -> tuple[CheckIn, ...]:
    """All check-ins of a match that became active at ``match_started_at``, ordered by due time.

    A match that starts at or after its program's end date gets no check-ins.
    """
    require_aware(match_started_at, "match_started_at")
    start = match_started_at.astimezone(UTC)
    end = rhythm.relationship_end(start)
    if end <= start:
        return ()
    milestones = _milestones(start, end, rhythm)
    slots = sorted([*milestones, *_regulars(start, end, rhythm, milestones)], key=lambda s: (s.due_at, s.kind))
    return tuple(
        CheckIn(
            occurrence_key=occurrence_key(match_id, slot.kind, slot.seq),
            match_id=match_id,
            kind=slot.kind,
            seq=slot.seq,
            due_at=slot.due_at,
            phase=_phase(slot, start, end, milestones),
        )
        for slot in slots
    )


_OPEN_STATES = frozenset({CheckInState.SCHEDULED, CheckInState.DUE})


def _is_open_future(checkin: CheckIn, now: datetime) -> bool:
    return checkin.state is CheckInState.SCHEDULED and checkin.due_at > now


def replan(
    existing: Iterable[CheckIn],
    *,
    match_id: str,
    match_started_at: datetime,
    rhythm: ProgramRhythm,
    now: datetime,
) -> ReplanResult:
    """Re-plan a match after its program changed, touching only check-ins still scheduled in the future.

    * Past check-ins (due at or before ``now``) and settled ones (completed, missed, cancelled) are kept as
      they are, and the new plan's occurrences at or before ``now`` are not added retroactively.
    * A one-off milestone (first meeting, midpoint review, closing) that already came due is not planned again.
    * A future scheduled check-in that the new plan has at the same time, kind and phase is kept with its key;
      the others are cancelled and the new plan's remaining future occurrences are added.
    * Added check-ins never reuse a key an existing row holds (cancelled rows keep their keys in the database),
      so their ``seq`` moves past the highest one used for that kind. Re-planning twice with the same program
      changes nothing the second time.
    """
    require_aware(now, "now")
    now = now.astimezone(UTC)
    existing = list(existing)
    fresh = plan_checkins(match_id, match_started_at, rhythm)

    already_came_due = {
        c.kind
        for c in existing
        if c.kind in ONE_OFF_KINDS and c.state is not CheckInState.CANCELLED and not _is_open_future(c, now)
    }
    wanted = [c for c in fresh if c.due_at > now and c.kind not in already_came_due]

    open_future = {(c.kind, c.due_at, c.phase): c for c in existing if _is_open_future(c, now)}
    unchanged: set[str] = set()
    to_add: list[CheckIn] = []
    for planned in wanted:
        match = open_future.pop((planned.kind, planned.due_at, planned.phase), None)
        if match is not None:
            unchanged.add(match.occurrence_key)
        else:
            to_add.append(planned)
    to_cancel = {c.occurrence_key for c in open_future.values()}

    used_keys = {c.occurrence_key for c in existing}
    highest_seq: dict[CheckInKind, int] = {}
    for c in existing:
        highest_seq[c.kind] = max(highest_seq.get(c.kind, 0), c.seq)
    added: list[CheckIn] = []
    for planned in to_add:
        if planned.occurrence_key in used_keys:
            seq = max(highest_seq.get(planned.kind, 0), planned.seq) + 1
            planned = replace(planned, seq=seq, occurrence_key=occurrence_key(match_id, planned.kind, seq))
        used_keys.add(planned.occurrence_key)
        highest_seq[planned.kind] = max(highest_seq.get(planned.kind, 0), planned.seq)
        added.append(planned)

    return ReplanResult(
        keep=tuple(c for c in existing if c.occurrence_key not in to_cancel),
        cancel=tuple(c for c in existing if c.occurrence_key in to_cancel),
        add=tuple(added),
    )


def cancellations_on_match_end(existing: Iterable[CheckIn]) -> tuple[CheckIn, ...]:
    """The check-ins an ended match must cancel: every one still open, scheduled or due.

    A due check-in can no longer be held, and one whose due time has passed may not have been swept to due yet
    (the sweeper runs on an interval): left open, either would later emit CheckInDue or CheckInMissed for a match
    that no longer exists, and count as missed in the program's figures. Completed, missed and cancelled
    check-ins are history and stay as they are.
    """
    return tuple(c for c in existing if c.state in _OPEN_STATES)
