"""The projection of other services' facts, and what each fact does to check-ins and meetings.

Handlers run inside the consumer's inbox transaction (see shared.messaging.consumer), so every write here and
every event added to the outbox commits together with the inbox row, exactly once per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import matches, meetings, people, programs
from services.scheduling.adapters.repository import load_match, load_program, match_from_row
from services.scheduling.application import meeting_events
from services.scheduling.application.calendars import hold_erasure_of, revoke_feed_token
from services.scheduling.application.checkins import (
    cancel_after_match_end,
    plan_match,
    replan_match,
    retime_open_checkins,
)
from services.scheduling.domain.rhythm import OPEN_MEETING_STATES, MeetingState
from shared.clock import Clock
from shared.events.envelope import EventEnvelope
from shared.events.models import (
    EventData,
    MatchAccepted,
    MatchEnded,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.events.values import ActorRole, MeetingCancelReason
from shared.messaging.outbox import add_events
from shared.projection import ForgetPerson, apply_snapshot, forget_if_erased

ContractEvent = EventEnvelope[EventData]
Handler = Callable[[AsyncSession, ContractEvent], Awaitable[None]]

#: The event types this service consumes (everything else on those topics is ignored).
CONSUMED = (ProfileUpdated, ProfileErased, ProgramUpdated, MatchAccepted, MatchEnded)


async def on_program_updated(session: AsyncSession, event: ProgramUpdated, clock: Clock) -> None:
    values = {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "starts_on": event.starts_on,
        "ends_on": event.ends_on,
        "cadence_days": event.check_in_cadence_days,
        "first_meeting_within_days": event.milestones.first_meeting_within_days,
        "midpoint_review": event.milestones.midpoint_review,
        "closing_conversation": event.milestones.closing_conversation,
        "closing_days_before_end": event.milestones.closing_days_before_end,
        "reminder_lead_hours": event.reminder_lead_hours,
        "missed_grace_days": event.missed_grace_days,
        "status": event.status.value,
    }
    if not await apply_snapshot(session, programs, {"program_id": event.program_id}, values):
        return  # stale or foreign snapshot
    program = await load_program(session, event.tenant_id, event.program_id)
    assert program is not None
    now = clock.now()
    active = (
        await session.execute(
            select(matches)
            .where(
                matches.c.tenant_id == event.tenant_id,
                matches.c.program_id == event.program_id,
                matches.c.ended_at.is_(None),
            )
            .order_by(matches.c.match_id)
            .with_for_update()
        )
    ).all()
    for row in active:
        match = match_from_row(row)
        if match.planned:
            await replan_match(session, match, program, now)
        else:
            await plan_match(session, match, program)
    await retime_open_checkins(session, program)


async def on_match_accepted(session: AsyncSession, event: MatchAccepted) -> None:
    stmt = (
        insert(matches)
        .values(
            match_id=event.match_id,
            tenant_id=event.tenant_id,
            program_id=event.program_id,
            mentee_person_id=event.mentee_person_id,
            mentor_person_id=event.mentor_person_id,
            activated_at=event.activated_at,
        )
        .on_conflict_do_nothing(index_elements=["match_id"])
        .returning(matches.c.match_id)
    )
    if (await session.execute(stmt)).first() is None:
        return  # already known (or already ended): nothing to plan
    match = await load_match(session, event.tenant_id, event.match_id)
    program = await load_program(session, event.tenant_id, event.program_id)
    if match is not None and program is not None:
        await plan_match(session, match, program)
    # Otherwise the match stays unplanned until its program's ProgramUpdated arrives.


async def on_match_ended(session: AsyncSession, event: MatchEnded) -> None:
    stmt = (
        insert(matches)
        .values(
            match_id=event.match_id,
            tenant_id=event.tenant_id,
            program_id=event.program_id,
            mentee_person_id=event.mentee_person_id,
            mentor_person_id=event.mentor_person_id,
            activated_at=event.ended_at,
            ended_at=event.ended_at,
        )
        # An end we never saw start is recorded as ended, so a late MatchAccepted cannot plan it.
        .on_conflict_do_update(
            index_elements=["match_id"],
            set_={"ended_at": event.ended_at},
            where=matches.c.ended_at.is_(None) & (matches.c.tenant_id == event.tenant_id),
        )
        .returning(matches.c.match_id)
    )
    if (await session.execute(stmt)).first() is None:
        return
    await cancel_after_match_end(session, event.match_id, event.ended_at)
    await cancel_open_meetings(
        session, event.tenant_id, meetings.c.match_id == event.match_id, MeetingCancelReason.MATCH_ENDED, event.ended_at
    )


async def cancel_open_meetings(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    which: ColumnElement[bool],
    reason: MeetingCancelReason,
    ended_at: datetime,
) -> None:
    """The platform cancels open meetings (no participant acted); each cancellation is a MeetingCancelled."""
    rows = (
        await session.execute(
            update(meetings)
            .where(
                meetings.c.tenant_id == tenant_id,
                which,
                meetings.c.state.in_([s.value for s in OPEN_MEETING_STATES]),
                # Same rule as the domain's cancel_meetings_on_match_end: only meetings after the end.
                meetings.c.starts_at > ended_at,
            )
            .values(
                state=MeetingState.CANCELLED.value,
                sequence=meetings.c.sequence + 1,
                version=meetings.c.version + 1,  # every change moves the ETag, the platform's own too
                last_changed_by=None,
                updated_at=ended_at,
            )
            .returning(meetings)
        )
    ).all()
    await add_events(session, [meeting_events.cancelled(row, ActorRole.SYSTEM, reason) for row in rows])


async def on_profile_updated(session: AsyncSession, event: ProfileUpdated, now: datetime) -> None:
    """Apply the snapshot; `now` (when it is applied here, not when profiles wrote it) becomes the time the person's
    zone changed if it did: their calendars change then, and a consumer lagging behind must not date the change
    before a copy a calendar client fetched meanwhile."""
    # FOR UPDATE: the zone compared is the one this snapshot replaces, even beside another replica's delivery.
    known = (
        await session.execute(
            select(people.c.time_zone, people.c.time_zone_changed_at)
            .where(people.c.person_id == event.person_id, people.c.tenant_id == event.tenant_id)
            .with_for_update()
        )
    ).first()
    unchanged = known is not None and known.time_zone == event.time_zone
    values = {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "time_zone": event.time_zone,
        "time_zone_changed_at": known.time_zone_changed_at if known is not None and unchanged else now,
        "availability": [w.model_dump(mode="json") for w in event.availability],
        "erased": False,
    }
    await apply_snapshot(session, people, {"person_id": event.person_id}, values)


async def on_profile_erased(session: AsyncSession, event: ProfileErased) -> bool:
    """Forget the person's time zone, availability and calendar feed, and cancel their open meetings.

    What stays is the person id: on the people row with the erasure's version (a late snapshot is older, so it is not
    applied; a redelivered erasure only deletes a feed again), and on their matches' meetings, check-ins and
    reminders, which are the partner's history too and what the program's check-in lists count. Scheduling holds
    nothing else about a person: meetings carry times and a format, no text. Returns whether it was applied (not a
    redelivered or older erasure)."""
    values = {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "time_zone": None,
        "time_zone_changed_at": None,
        "availability": [],
        "erased": True,
    }
    # Taken first, as POST /v1/me/calendar-feed does: a feed made at the same time is either seen and deleted here,
    # or made after this commits, when the POST sees the erasure.
    await hold_erasure_of(session, event.tenant_id, event.person_id)
    applied = await apply_snapshot(session, people, {"person_id": event.person_id}, values)
    # The feed URL would keep publishing the person's meeting times: revoke it with the rest of their data, at every
    # delivery (a delete by key), so that a redelivery also removes a feed an earlier one missed.
    await revoke_feed_token(session, event.tenant_id, event.person_id)
    if not applied:
        return False
    await cancel_open_meetings(
        session,
        event.tenant_id,
        (meetings.c.mentee_person_id == event.person_id) | (meetings.c.mentor_person_id == event.person_id),
        MeetingCancelReason.PARTICIPANT_ERASED,
        event.erased_at,
    )
    return True


def make_handler(clock: Clock, forget_kept: ForgetPerson | None = None) -> Handler:
    """The consumer group's handler: dispatch on the event's data type; other types on the topics are ignored.

    `forget_kept(person_id, tenant_id)` drops the answers the API keeps in Redis for Idempotency-Key retries in the
    tenant that name an erased person (a meeting names both parties); it runs after the consumer's transaction
    commits, for each delivery of an erasure, a redelivery too (forget_if_erased)."""

    async def handle(session: AsyncSession, envelope: ContractEvent) -> None:
        data = envelope.data
        if isinstance(data, ProgramUpdated):
            await on_program_updated(session, data, clock)
        elif isinstance(data, MatchAccepted):
            await on_match_accepted(session, data)
        elif isinstance(data, MatchEnded):
            await on_match_ended(session, data)
        elif isinstance(data, ProfileUpdated):
            await on_profile_updated(session, data, clock.now())
        elif isinstance(data, ProfileErased):
            await on_profile_erased(session, data)
            await forget_if_erased(session, forget_kept, people, data.tenant_id, data.person_id)

    return handle
