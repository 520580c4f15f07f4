"""The projection of profiles, programs and enrolments, and what an erasure or an at-risk signal does to matches.

Handlers run inside the consumer's inbox transaction (shared.messaging.consumer): each event is applied exactly
once, and a snapshot older than the stored one (by `version`) changes nothing. Each snapshot row keeps the time of the
event it came from (`event_time`), which the program pool reports.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import enrolments, matches, people, programs, shortlist_exposure
from services.matching.application.matches import close_finished_programs, close_open
from services.matching.application.rounds import expire_rounds_of_stopped_programs
from services.matching.domain.lifecycle import OPEN_STATES, MatchState
from services.matching.domain.program_term import NO_NEW_MATCHES
from shared.events.envelope import EventEnvelope
from shared.events.models import (
    EnrollmentChanged,
    EventData,
    MatchAtRisk,
    MatchProposed,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.events.values import ActorRole, DeclineReason, EndReasonCategory, EnrollmentStatus
from shared.messaging.outbox import rewrite_waiting
from shared.projection import ForgetPerson, apply_snapshot, forget_if_erased, is_erased

ContractEvent = EventEnvelope[EventData]
Handler = Callable[[AsyncSession, ContractEvent], Awaitable[None]]

#: Matches a closing or archiving closes per query, all in the event's transaction.
CLOSE_BATCH = 1_000

#: The event types this service consumes (everything else on those topics is ignored).
CONSUMED = (ProfileUpdated, ProfileErased, ProgramUpdated, EnrollmentChanged, MatchAtRisk)


def _snapshot_values(event: ProgramUpdated | ProfileUpdated, at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "snapshot": event.model_dump(mode="json"),
        "event_time": at,
    }


async def on_program_updated(session: AsyncSession, event: ProgramUpdated, at: datetime) -> None:
    applied = await apply_snapshot(session, programs, {"program_id": event.program_id}, _snapshot_values(event, at))
    if not applied or event.status not in NO_NEW_MATCHES:
        return
    # Closed or archived: nobody may accept into it from now, so open proposals lapse at once (archived also ends
    # active matches); the rounds first, in the order an approval locks them (round, then its matches).
    await expire_rounds_of_stopped_programs(session, at, program_id=event.program_id)
    while await close_finished_programs(session, at, limit=CLOSE_BATCH, program_id=event.program_id) == CLOSE_BATCH:
        pass


async def on_enrollment_changed(session: AsyncSession, event: EnrollmentChanged, at: datetime) -> None:
    # The erasure ended the person's enrolments and none follows it: one read later (a redelivery, a replay from the
    # beginning) would make the pool count them as waiting for their profile for good.
    if await is_erased(session, people, event.tenant_id, event.person_id):
        return
    values = {
        "tenant_id": event.tenant_id,
        "person_id": event.person_id,
        "program_id": event.program_id,
        "version": event.version,
        "role": event.role.value,
        "capacity": event.capacity,
        "status": event.status.value,
        "event_time": at,
    }
    applied = await apply_snapshot(session, enrolments, {"enrollment_id": event.enrollment_id}, values)
    if not applied or event.status is not EnrollmentStatus.WITHDRAWN:
        return
    # Leaving the program closes the person's open proposals and matches in it (a pause only stops new ones).
    await _close_all_open(
        session,
        event.tenant_id,
        event.person_id,
        at,
        DeclineReason.PARTICIPANT_UNAVAILABLE,
        EndReasonCategory.LEFT_PROGRAM,
        program_id=event.program_id,
    )


async def _close_all_open(
    session: AsyncSession,
    tenant: uuid.UUID,
    person: uuid.UUID,
    at: datetime,
    decline_reason: DeclineReason,
    end_category: EndReasonCategory,
    program_id: uuid.UUID | None = None,
) -> None:
    query = (
        select(matches)
        .where(
            matches.c.tenant_id == tenant,
            or_(matches.c.mentee_person_id == person, matches.c.mentor_person_id == person),
            matches.c.state.in_([s.value for s in OPEN_STATES]),
        )
        .order_by(matches.c.match_id)
        .with_for_update()
    )
    if program_id is not None:
        query = query.where(matches.c.program_id == program_id)
    for row in (await session.execute(query)).all():
        # The mentee of a mentor who left stays in the program and is offered a new match (DOMAIN: exit route).
        rematch = row.mentor_person_id == person
        await close_open(session, row, at, ActorRole.SYSTEM, decline_reason, end_category, rematch_offered=rematch)


async def on_profile_updated(session: AsyncSession, event: ProfileUpdated, at: datetime) -> None:
    values = {**_snapshot_values(event, at), "erased": False}
    await apply_snapshot(session, people, {"person_id": event.person_id}, values)


ERASED_EXPLANATION = "removed: a participant of this match was erased"


def _erased_explanation(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "explanation": ERASED_EXPLANATION}


async def on_profile_erased(session: AsyncSession, event: ProfileErased, at: datetime) -> bool:
    """Forget the person; False when this erasure (or a newer one) was applied before: nothing left to do.

    What stays is the person id: on the people row with the erasure's version (a late snapshot is older, so it is
    not applied), and on their matches, declined and ended ones included, which the rules read so that a pair that
    ended is never proposed again and a mentor's load is counted. An id alone says nothing about the person."""
    values = {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "snapshot": None,
        "erased": True,
        "event_time": at,
    }
    if not await apply_snapshot(session, people, {"person_id": event.person_id}, values):
        return False
    person = event.person_id
    involves = or_(matches.c.mentee_person_id == person, matches.c.mentor_person_id == person)
    # Enrolment rows before match rows, the order in which requests and approvals lock them (no deadlock cycle).
    await session.execute(
        delete(enrolments).where(enrolments.c.tenant_id == event.tenant_id, enrolments.c.person_id == person)
    )
    await _close_all_open(
        session,
        event.tenant_id,
        person,
        event.erased_at,
        DeclineReason.PARTICIPANT_ERASED,
        EndReasonCategory.PARTICIPANT_ERASED,
    )
    # The private end reasons of their matches are the person's (or about the person), and each explanation names
    # the mentee's needs and goals and what the mentor shares: they go with the rest.
    their_matches = await session.scalars(
        update(matches)
        .where(matches.c.tenant_id == event.tenant_id, involves)
        .values(end_reason_private=None, explanation=ERASED_EXPLANATION)
        .returning(matches.c.match_id)
    )
    # Proposals not yet sent carry the explanation just replaced: they still leave (consumers need the match), with
    # the same words as the stored match.
    await rewrite_waiting(session, [str(m) for m in their_matches], MatchProposed, _erased_explanation)
    await session.execute(
        delete(shortlist_exposure).where(
            shortlist_exposure.c.tenant_id == event.tenant_id,
            or_(shortlist_exposure.c.mentee_person_id == person, shortlist_exposure.c.mentor_person_id == person),
        )
    )
    return True


async def on_match_at_risk(session: AsyncSession, event: MatchAtRisk) -> None:
    await session.execute(
        update(matches)
        .where(
            matches.c.tenant_id == event.tenant_id,
            matches.c.match_id == event.match_id,
            # An evaluation sent before the match ended may arrive after it: an ended match stays off the list.
            matches.c.state == MatchState.ACTIVE.value,
            # Evaluations may arrive out of order: the newest one decides.
            or_(matches.c.at_risk_evaluated_at.is_(None), matches.c.at_risk_evaluated_at < event.evaluated_at),
        )
        .values(
            at_risk=event.at_risk,
            at_risk_reasons=[r.value for r in event.reasons],
            at_risk_health=event.health_score,
            at_risk_evaluated_at=event.evaluated_at,
        )
    )


def make_handler(forget_cached: ForgetPerson | None = None) -> Handler:
    """The consumer group's handler: dispatch on the event's data type; other types on the topics are ignored.

    `forget_cached(person_id, tenant_id)` drops what the API keeps outside the database about a person erased in the
    tenant (answers kept for Idempotency-Key retries, which name partners and hold explanations); it runs after the
    consumer's transaction commits (run_after_commit), its failure logged, for each delivery of an erasure, a redelivery
    too (forget_if_erased)."""

    async def handle(session: AsyncSession, envelope: ContractEvent) -> None:
        data = envelope.data
        if isinstance(data, ProfileUpdated):
            await on_profile_updated(session, data, envelope.time)
        elif isinstance(data, ProfileErased):
            await on_profile_erased(session, data, envelope.time)
            await forget_if_erased(session, forget_cached, people, data.tenant_id, data.person_id)
        elif isinstance(data, ProgramUpdated):
            await on_program_updated(session, data, envelope.time)
        elif isinstance(data, EnrollmentChanged):
            await on_enrollment_changed(session, data, envelope.time)
        elif isinstance(data, MatchAtRisk):
            await on_match_at_risk(session, data)

    return handle
