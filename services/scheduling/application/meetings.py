"""Meeting use cases: propose, accept, reschedule, cancel, mark held or missed; events go through the outbox.

Each use case loads and locks the rows, lets the pure domain (``domain.rhythm``) decide, writes the result and
its contract event in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Row, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import check_ins, meetings
from services.scheduling.adapters.repository import (
    MatchRecord,
    checkin_from_row,
    load_program,
    meeting_from_row,
)
from services.scheduling.application import meeting_events
from services.scheduling.application.access import (
    OVERLAPS_SHOWN,
    ConflictError,
    InvalidReferenceError,
    MeetingConflict,
    MeetingOverlaps,
    NotFoundError,
    OverlappingMeetingError,
    StaleVersionError,
    acting_participant,
    may_see,
    visible_match,
)
from services.scheduling.domain import rhythm
from services.scheduling.domain.model import CheckInState
from services.scheduling.domain.rhythm import Meeting, MeetingState
from shared.auth import Principal
from shared.db import advisory_lock_key
from shared.events.values import MeetingCancelReason, MeetingFormat, MeetingOutcome
from shared.ids import new_id
from shared.messaging.outbox import add_events
from shared.preconditions import contradicts

_OPEN_CHECKIN_STATES = (CheckInState.SCHEDULED.value, CheckInState.DUE.value)
_OPEN_MEETING_STATES = tuple(s.value for s in rhythm.OPEN_MEETING_STATES)


def _is_open(state: ColumnElement[Any]) -> ColumnElement[bool]:
    """The meeting is proposed or accepted, with the states written into the SQL rather than sent as parameters:
    only then can a cached generic plan use the partial indexes on open meetings (a parameter cannot prove their
    WHERE clause)."""
    states: BindParameter[list[str]] = bindparam(
        "open_states", list(_OPEN_MEETING_STATES), expanding=True, literal_execute=True, unique=True
    )
    return state.in_(states)


async def _checkin_for_new_meeting(
    session: AsyncSession, match: MatchRecord, check_in_id: uuid.UUID | None
) -> Row[Any] | None:
    """The check-in a new meeting fulfils: the one named, else the earliest open one no open meeting is for."""
    query = select(check_ins).where(check_ins.c.match_id == match.match_id, check_ins.c.state.in_(_OPEN_CHECKIN_STATES))
    if check_in_id is not None:
        row = (await session.execute(query.where(check_ins.c.check_in_id == check_in_id).with_for_update())).first()
        if row is None:
            raise InvalidReferenceError(
                f"check-in {check_in_id} is not an open check-in of this match", "check_in_id", check_in_id
            )
        return row
    taken = select(meetings.c.check_in_id).where(
        meetings.c.match_id == match.match_id,
        _is_open(meetings.c.state),
        meetings.c.check_in_id.is_not(None),
    )
    query = query.where(check_ins.c.check_in_id.not_in(taken)).order_by(check_ins.c.due_at).limit(1)
    return (await session.execute(query.with_for_update())).first()


async def _defer_checkin(session: AsyncSession, match: MatchRecord, check_in_id: uuid.UUID | None) -> None:
    """Set the check-in's grace period from the open meetings for it after a meeting was proposed, moved or
    cancelled (domain ``defer_for_meetings``): a cancelled or earlier meeting no longer holds off 'missed'."""
    if check_in_id is None:
        return
    row = (
        await session.execute(select(check_ins).where(check_ins.c.check_in_id == check_in_id).with_for_update())
    ).first()
    if row is None or row.state not in _OPEN_CHECKIN_STATES:
        return
    starts = await session.execute(
        select(meetings.c.starts_at).where(meetings.c.check_in_id == check_in_id, _is_open(meetings.c.state))
    )
    deferred = rhythm.defer_for_meetings(checkin_from_row(row), starts.scalars())
    if deferred.deferred_until == row.deferred_until:
        return
    program = await load_program(session, match.tenant_id, match.program_id)
    values: dict[str, Any] = {"deferred_until": deferred.deferred_until}
    if program is not None:
        values["missed_after"] = rhythm.missed_deadline(deferred, program.grace)
    await session.execute(update(check_ins).where(check_ins.c.check_in_id == check_in_id).values(**values))


async def _lock_people(session: AsyncSession, match: MatchRecord) -> None:
    """Serialise bookings per person until the transaction ends, so two concurrent proposals or moves (in this
    match or another of either person) cannot both pass the overlap check. Taken in a fixed order, and before any
    check-in row lock, so two bookings never wait on each other in a cycle."""
    for person in sorted(match.participants):
        await session.execute(select(func.pg_advisory_xact_lock(advisory_lock_key(b"meetings-of:" + person.bytes))))


def _overlaps_either_person(one: Any, other: Any) -> ColumnElement[bool]:
    """``other`` is another open meeting of either person of ``one`` that overlaps it (both aliases of meetings)."""
    people = (one.c.mentee_person_id, one.c.mentor_person_id)
    return and_(
        other.c.tenant_id == one.c.tenant_id,
        other.c.meeting_id != one.c.meeting_id,
        or_(other.c.mentee_person_id.in_(people), other.c.mentor_person_id.in_(people)),
        _is_open(other.c.state),
        other.c.starts_at < one.c.ends_at,
        other.c.ends_at > one.c.starts_at,
    )


def _open_meetings_between(
    tenant_id: uuid.UUID, people: tuple[uuid.UUID, ...], start: datetime, end: datetime
) -> list[ColumnElement[bool]]:
    """Open (proposed or accepted) meetings of any of ``people``, in any of their matches, overlapping [start, end)."""
    return [
        meetings.c.tenant_id == tenant_id,
        or_(meetings.c.mentee_person_id.in_(people), meetings.c.mentor_person_id.in_(people)),
        _is_open(meetings.c.state),
        meetings.c.starts_at < end,
        meetings.c.ends_at > start,
    ]


async def _refuse_overlap(
    session: AsyncSession,
    match: MatchRecord,
    actor: uuid.UUID,
    meeting: Meeting,
    moving: uuid.UUID | None = None,
    *,
    accepting: bool = False,
) -> None:
    """409 when either person already has an open meeting overlapping ``meeting`` (back to back is fine; a
    cancelled meeting holds no time); when ``accepting``, only an accepted one counts, so of two overlapping
    proposals (stored before this check existed) the first accepted wins. The answer names the meeting; one in a
    match the caller is not part of is named by its time only (slot suggestions leave that time out anyway)."""
    query = select(meetings).where(
        *_open_meetings_between(match.tenant_id, match.participants, meeting.starts_at, meeting.ends_at)
    )
    if moving is not None:
        query = query.where(meetings.c.meeting_id != moving)
    if accepting:
        query = query.where(meetings.c.state == MeetingState.ACCEPTED.value)
    clash = (await session.execute(query.order_by(meetings.c.starts_at, meetings.c.meeting_id).limit(1))).first()
    if clash is None:
        return
    when = f"from {clash.starts_at.isoformat()} to {clash.ends_at.isoformat()}"
    # The caller is a participant of this match, so sees its meetings and their own in other matches, no others.
    visible = clash.match_id == match.match_id or actor in (clash.mentee_person_id, clash.mentor_person_id)
    conflict = MeetingConflict(clash.meeting_id if visible else None, clash.starts_at, clash.ends_at)
    if clash.match_id == match.match_id:
        held = f"meeting {clash.meeting_id} of this match is already {clash.state} {when}"
    elif visible:
        held = f"your meeting {clash.meeting_id} in another match is already {clash.state} {when}"
    else:
        held = f"the other participant already has a meeting {when}"
    if accepting:
        message = f"this meeting overlaps an accepted one: {held}; move or cancel one of them"
    else:
        message = f"this time overlaps an open meeting: {held}; pick another time"
    raise OverlappingMeetingError(message, conflict)


async def _require_within_program(
    session: AsyncSession, match: MatchRecord, starts_at: datetime, now: datetime
) -> None:
    program = await load_program(session, match.tenant_id, match.program_id)
    rhythm.require_within_program(starts_at, now=now, program_last_day=None if program is None else program.ends_on)


async def propose(
    session: AsyncSession,
    principal: Principal,
    match_id: uuid.UUID,
    *,
    starts_at: datetime,
    ends_at: datetime,
    meeting_format: MeetingFormat,
    check_in_id: uuid.UUID | None,
    now: datetime,
) -> Row[Any]:
    match = await visible_match(session, principal, match_id, for_update=True)
    actor = acting_participant(principal, match)
    if not match.active:
        raise ConflictError("the match has ended")
    await _require_within_program(session, match, starts_at, now)
    await _lock_people(session, match)
    checkin = await _checkin_for_new_meeting(session, match, check_in_id)
    meeting_id = new_id()
    meeting = rhythm.propose_meeting(
        meeting_id=str(meeting_id),
        match_id=str(match.match_id),
        participants=(str(match.mentee_person_id), str(match.mentor_person_id)),
        proposed_by=str(actor),
        starts_at=starts_at,
        ends_at=ends_at,
        now=now,
        checkin_key=None if checkin is None else checkin.occurrence_key,
    )
    await _refuse_overlap(session, match, actor, meeting)
    row: Row[Any] = (
        await session.execute(
            meetings.insert()
            .values(
                meeting_id=meeting_id,
                tenant_id=match.tenant_id,
                match_id=match.match_id,
                program_id=match.program_id,
                mentee_person_id=match.mentee_person_id,
                mentor_person_id=match.mentor_person_id,
                proposed_by=actor,
                last_changed_by=actor,
                starts_at=meeting.starts_at,
                ends_at=meeting.ends_at,
                format=meeting_format.value,
                state=meeting.state.value,
                sequence=meeting.sequence,
                check_in_id=None if checkin is None else checkin.check_in_id,
                created_at=now,
                updated_at=now,
            )
            .returning(meetings)
        )
    ).one()
    await _defer_checkin(session, match, row.check_in_id)
    return row


async def visible_meeting(
    session: AsyncSession,
    principal: Principal,
    meeting_id: uuid.UUID,
    *,
    for_update: bool = False,
    if_match: str | None = None,
) -> tuple[Row[Any], MatchRecord, Meeting]:
    """The meeting if the caller may see it; with `if_match`, checked against its version once the row is locked
    (412 when stale), so of two participants editing from the same read only the first write lands."""
    query = select(meetings).where(meetings.c.meeting_id == meeting_id, meetings.c.tenant_id == principal.tenant)
    if for_update:
        query = query.with_for_update(of=meetings)
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFoundError(f"meeting {meeting_id} not found")
    try:
        match = await visible_match(session, principal, row.match_id)
    except NotFoundError as exc:
        raise NotFoundError(f"meeting {meeting_id} not found") from exc
    if contradicts(if_match, row.version):
        raise StaleVersionError(f"meeting {meeting_id} changed since you read it (now version {row.version})")
    key = None
    if row.check_in_id is not None:
        key = (
            await session.execute(select(check_ins.c.occurrence_key).where(check_ins.c.check_in_id == row.check_in_id))
        ).scalar_one_or_none()
    return row, match, meeting_from_row(row, key)


async def _save(session: AsyncSession, meeting: Meeting, now: datetime, **extra: Any) -> Row[Any]:
    saved: Row[Any] = (
        await session.execute(
            update(meetings)
            .where(meetings.c.meeting_id == uuid.UUID(meeting.meeting_id))
            .values(
                state=meeting.state.value,
                sequence=meeting.sequence,
                starts_at=meeting.starts_at,
                ends_at=meeting.ends_at,
                proposed_by=uuid.UUID(meeting.proposed_by),
                last_changed_by=None if meeting.last_changed_by is None else uuid.UUID(meeting.last_changed_by),
                version=meetings.c.version + 1,
                updated_at=now,
                **extra,
            )
            .returning(meetings)
        )
    ).one()
    return saved


async def accept(
    session: AsyncSession, principal: Principal, meeting_id: uuid.UUID, now: datetime, if_match: str | None = None
) -> Row[Any]:
    _row, match, meeting = await visible_meeting(session, principal, meeting_id, for_update=True, if_match=if_match)
    actor = acting_participant(principal, match)
    accepted = rhythm.accept_meeting(meeting, str(actor), now)
    # Re-checked under the same per-person locks as a booking: two overlapping proposals (from before the overlap
    # check, or accepted concurrently across the person's matches) must not both become accepted.
    await _lock_people(session, match)
    await _refuse_overlap(session, match, actor, accepted, moving=meeting_id, accepting=True)
    saved = await _save(session, accepted, now)
    await add_events(session, [meeting_events.scheduled(saved)])
    return saved


async def reschedule(
    session: AsyncSession,
    principal: Principal,
    meeting_id: uuid.UUID,
    *,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    if_match: str | None = None,
) -> Row[Any]:
    _row, match, meeting = await visible_meeting(session, principal, meeting_id, for_update=True, if_match=if_match)
    actor = acting_participant(principal, match)
    was_accepted = meeting.state is MeetingState.ACCEPTED
    await _require_within_program(session, match, starts_at, now)
    await _lock_people(session, match)
    moved = rhythm.reschedule_meeting(meeting, str(actor), starts_at=starts_at, ends_at=ends_at, now=now)
    await _refuse_overlap(session, match, actor, moved, moving=meeting_id)
    saved = await _save(session, moved, now)
    if was_accepted:
        # Calendars and other services already hold the old time: tell them (higher sequence replaces it).
        await add_events(session, [meeting_events.scheduled(saved)])
    await _defer_checkin(session, match, saved.check_in_id)
    return saved


async def cancel(
    session: AsyncSession, principal: Principal, meeting_id: uuid.UUID, now: datetime, if_match: str | None = None
) -> Row[Any]:
    _row, match, meeting = await visible_meeting(session, principal, meeting_id, for_update=True, if_match=if_match)
    actor = acting_participant(principal, match)
    saved = await _save(session, rhythm.cancel_meeting(meeting, str(actor)), now)
    await _defer_checkin(session, match, saved.check_in_id)
    event = meeting_events.cancelled(
        saved, meeting_events.role_of(saved, actor), MeetingCancelReason.CANCELLED_BY_PARTICIPANT
    )
    await add_events(session, [event])
    return saved


async def mark(
    session: AsyncSession,
    principal: Principal,
    meeting_id: uuid.UUID,
    outcome: MeetingOutcome,
    now: datetime,
    if_match: str | None = None,
) -> Row[Any]:
    row, match, meeting = await visible_meeting(session, principal, meeting_id, for_update=True, if_match=if_match)
    actor = acting_participant(principal, match)
    if outcome is MeetingOutcome.HELD:
        checkin_row = None
        if row.check_in_id is not None:
            checkin_row = (
                await session.execute(
                    select(check_ins).where(check_ins.c.check_in_id == row.check_in_id).with_for_update()
                )
            ).first()
        checkin = None if checkin_row is None else checkin_from_row(checkin_row)
        held, completed = rhythm.mark_meeting_held(meeting, str(actor), now, checkin)
        saved = await _save(session, held, now)
        if checkin is not None and completed is not None and completed.state is not checkin.state:
            await session.execute(
                update(check_ins)
                .where(check_ins.c.check_in_id == row.check_in_id)
                .values(state=completed.state.value, settled_at=now)
            )
    else:
        saved = await _save(session, rhythm.mark_meeting_missed(meeting, str(actor), now), now)
    await add_events(session, [meeting_events.completed(saved, outcome, meeting_events.role_of(saved, actor))])
    return saved


async def meetings_of_person(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, limit: int, offset: int = 0
) -> list[Row[Any]]:
    query = (
        select(meetings)
        .where(
            meetings.c.tenant_id == tenant_id,
            (meetings.c.mentee_person_id == person_id) | (meetings.c.mentor_person_id == person_id),
        )
        .order_by(meetings.c.starts_at.desc(), meetings.c.meeting_id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).all())


async def busy_times(
    session: AsyncSession, tenant_id: uuid.UUID, people: tuple[uuid.UUID, ...], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """When any of ``people`` has an open (proposed or accepted) meeting within [start, end), in any of their
    matches: times a slot suggestion must not offer again."""
    found = await session.execute(
        select(meetings.c.starts_at, meetings.c.ends_at).where(*_open_meetings_between(tenant_id, people, start, end))
    )
    return [(r.starts_at, r.ends_at) for r in found]


async def overlaps_of(
    session: AsyncSession, principal: Principal, listed: Sequence[Row[Any]]
) -> dict[uuid.UUID, MeetingOverlaps]:
    """For each open meeting of ``listed``, the first OVERLAPS_SHOWN other open meetings of either of its people
    overlapping it, earliest first, and how many there are in all: double bookings stored before the overlap check,
    which nothing else would show. An overlapping meeting the caller may not see (another match, another program) is
    given by its time only. One query for the page, through the per-person indexes; window functions rank and count
    each meeting's overlaps so only the shown ones leave the database."""
    open_ids = [row.meeting_id for row in listed if row.state in _OPEN_MEETING_STATES]
    if not open_ids:
        return {}
    one, other = meetings.alias("listed"), meetings.alias("other")
    ranked = (
        select(
            one.c.meeting_id.label("overlapped"),
            other.c.meeting_id,
            other.c.starts_at,
            other.c.ends_at,
            other.c.tenant_id,
            other.c.program_id,
            other.c.mentee_person_id,
            other.c.mentor_person_id,
            func.row_number()
            .over(partition_by=one.c.meeting_id, order_by=(other.c.starts_at, other.c.meeting_id))
            .label("rank"),
            func.count().over(partition_by=one.c.meeting_id).label("total"),
        )
        .select_from(one.join(other, _overlaps_either_person(one, other)))
        .where(one.c.meeting_id.in_(open_ids))
        .subquery()
    )
    found = await session.execute(
        select(ranked).where(ranked.c.rank <= OVERLAPS_SHOWN).order_by(ranked.c.overlapped, ranked.c.rank)
    )
    shown: dict[uuid.UUID, list[MeetingConflict]] = {}
    totals: dict[uuid.UUID, int] = {}
    for row in found:
        visible = may_see(principal, row.tenant_id, (row.mentee_person_id, row.mentor_person_id), row.program_id)
        shown.setdefault(row.overlapped, []).append(
            MeetingConflict(row.meeting_id if visible else None, row.starts_at, row.ends_at)
        )
        totals[row.overlapped] = row.total
    return {meeting_id: MeetingOverlaps(tuple(first), totals[meeting_id]) for meeting_id, first in shown.items()}


async def double_booked_in_program(
    session: AsyncSession, tenant_id: uuid.UUID, program_id: uuid.UUID, limit: int, offset: int = 0
) -> list[Row[Any]]:
    """The program's open meetings that overlap another open meeting of either person (in any match), earliest
    first: the program's open meetings by start (ix_meetings_program_open), each probed through the per-person
    indexes."""
    one, other = meetings, meetings.alias("other")
    query = (
        select(one)
        .where(
            one.c.tenant_id == tenant_id,
            one.c.program_id == program_id,
            _is_open(one.c.state),
            select(other.c.meeting_id).where(_overlaps_either_person(one, other)).exists(),
        )
        .order_by(one.c.starts_at, one.c.meeting_id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).all())


async def occurrence_keys(session: AsyncSession, check_in_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not check_in_ids:
        return {}
    rows = await session.execute(
        select(check_ins.c.check_in_id, check_ins.c.occurrence_key).where(check_ins.c.check_in_id.in_(check_in_ids))
    )
    return {r.check_in_id: r.occurrence_key for r in rows}
