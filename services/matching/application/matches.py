"""Match use cases: propose, accept, decline, expire, end, withdraw. Each writes its events to the outbox in the
caller's transaction, built with the contract models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, Row, Table, delete, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import matches, programs, shortlist_exposure
from services.matching.application.errors import ConflictError
from services.matching.application.translate import contract_breakdown
from services.matching.domain import lifecycle
from services.matching.domain.lifecycle import Lifecycle, MatchState, Party
from services.matching.domain.program_term import ENDS_RUNNING_MATCHES, NO_NEW_MATCHES
from services.matching.domain.scoring import PairScore
from shared.events.models import EventData, MatchAccepted, MatchDeclined, MatchEnded, MatchProposed
from shared.events.values import (
    ActorRole,
    DeclineReason,
    EndReasonCategory,
    FactorScore,
    MatchOrigin,
)
from shared.ids import new_id
from shared.messaging.outbox import add_events

MAX_EXPLANATION = 1000


def lifecycle_of(row: Row[Any]) -> Lifecycle:
    return Lifecycle(MatchState(row.state), row.mentee_accepted, row.mentor_accepted, row.expires_at)


def _pair(row: Row[Any]) -> dict[str, Any]:
    return {
        "tenant_id": row.tenant_id,
        "match_id": row.match_id,
        "program_id": row.program_id,
        "mentee_person_id": row.mentee_person_id,
        "mentor_person_id": row.mentor_person_id,
    }


def proposed_event(row: Row[Any]) -> MatchProposed:
    return MatchProposed(
        **_pair(row),
        score=row.score,
        breakdown=tuple(FactorScore.model_validate(f) for f in row.breakdown),
        explanation=row.explanation[:MAX_EXPLANATION],
        origin=MatchOrigin(row.origin),
        round_id=row.round_id if row.origin == MatchOrigin.COHORT_ROUND.value else None,
        expires_at=row.expires_at,
    )


@dataclass(frozen=True)
class NewProposal:
    program_id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    score: PairScore
    origin: MatchOrigin
    round_id: uuid.UUID | None = None


async def insert_proposal(
    session: AsyncSession,
    tenant: uuid.UUID,
    proposal: NewProposal,
    now: datetime,
    *,
    state: MatchState,
    window: timedelta | None,
    mentee_accepted: bool = False,
) -> Row[Any]:
    """Store a proposal (sent at once unless pending approval); 409 when the pair already has an open match."""
    breakdown = [f.model_dump(mode="json") for f in contract_breakdown(proposal.score)]
    sent = state is MatchState.PROPOSED
    values = {
        "match_id": new_id(),
        "tenant_id": tenant,
        "program_id": proposal.program_id,
        "mentee_person_id": proposal.mentee_id,
        "mentor_person_id": proposal.mentor_id,
        "state": state.value,
        "origin": proposal.origin.value,
        "round_id": proposal.round_id,
        "score": round(proposal.score.total, 6),
        "breakdown": breakdown,
        "explanation": proposal.score.explanation[:MAX_EXPLANATION],
        "mentee_accepted": mentee_accepted,
        "mentor_accepted": False,
        "created_at": now,
        "proposed_at": now if sent else None,
        "expires_at": now + window if sent and window is not None else None,
    }
    stmt = (
        pg_insert(matches)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["program_id", "mentee_person_id", "mentor_person_id"],
            index_where=text("state IN ('pending_approval', 'proposed', 'active')"),
        )
        .returning(matches)
    )
    row: Row[Any] | None = (await session.execute(stmt)).first()
    if row is None:
        raise ConflictError("this mentee and mentor already have an open proposal or match")
    if sent:
        await add_events(session, [proposed_event(row)])
    return row


async def insert_pending(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(matches), list(rows))


async def _store(session: AsyncSession, row: Row[Any], new: Lifecycle, **values: Any) -> Row[Any]:
    updated: Row[Any] | None = (
        await session.execute(
            update(matches)
            .where(matches.c.match_id == row.match_id, matches.c.state == row.state)
            .values(
                state=new.state.value,
                mentee_accepted=new.mentee_accepted,
                mentor_accepted=new.mentor_accepted,
                expires_at=new.expires_at,
                **values,
            )
            .returning(matches)
        )
    ).first()
    if updated is None:  # the row is locked FOR UPDATE by the caller, so this is a programming error
        raise ConflictError("the match changed concurrently; try again")
    return updated


async def _close(
    session: AsyncSession, row: Row[Any], new: Lifecycle, now: datetime, actor: ActorRole, reason: DeclineReason
) -> Row[Any]:
    """Store a proposal that did not become a match (no event: the caller sends one when it was announced)."""
    return await _store(session, row, new, closed_at=now, closed_by=actor.value, decline_reason=reason.value)


async def approve(session: AsyncSession, row: Row[Any], now: datetime, window: timedelta) -> Row[Any]:
    updated = await _store(session, row, lifecycle.approve(lifecycle_of(row), now + window), proposed_at=now)
    await add_events(session, [proposed_event(updated)])
    return updated


async def reject(session: AsyncSession, row: Row[Any], now: datetime) -> Row[Any]:
    # Never sent, so nobody downstream knows it: no event.
    new = lifecycle.reject(lifecycle_of(row))
    return await _close(session, row, new, now, ActorRole.COORDINATOR, DeclineReason.REJECTED_BY_COORDINATOR)


async def skip(session: AsyncSession, row: Row[Any], now: datetime) -> Row[Any]:
    """The approval's re-check drops a round proposal that no longer passes: unsent, so no event."""
    new = lifecycle.withdraw(lifecycle_of(row))
    return await _close(session, row, new, now, ActorRole.SYSTEM, DeclineReason.PARTICIPANT_UNAVAILABLE)


async def accept(
    session: AsyncSession, row: Row[Any], party: Party, now: datetime, mentors_per_mentee: int
) -> Row[Any]:
    new = lifecycle.accept(lifecycle_of(row), party, now)
    if new.state is not MatchState.ACTIVE:
        return await _store(session, row, new)
    updated = await _store(session, row, new, activated_at=now)
    await add_events(
        session,
        [MatchAccepted(**_pair(updated), activated_at=now, origin=MatchOrigin(updated.origin))],
    )
    await _after_activation(session, updated, now, mentors_per_mentee)
    return updated


async def _after_activation(session: AsyncSession, row: Row[Any], now: datetime, mentors_per_mentee: int) -> None:
    active = (
        await session.execute(
            select(matches.c.match_id).where(
                matches.c.tenant_id == row.tenant_id,
                matches.c.program_id == row.program_id,
                matches.c.mentee_person_id == row.mentee_person_id,
                matches.c.state == MatchState.ACTIVE.value,
            )
        )
    ).all()
    if len(active) < mentors_per_mentee:
        return
    # The mentee holds all the mentors the program allows: their short list closes and other proposals lapse.
    await session.execute(
        delete(shortlist_exposure).where(
            shortlist_exposure.c.program_id == row.program_id,
            shortlist_exposure.c.mentee_person_id == row.mentee_person_id,
        )
    )
    others = (
        await session.execute(
            select(matches)
            .where(
                matches.c.tenant_id == row.tenant_id,
                matches.c.program_id == row.program_id,
                matches.c.mentee_person_id == row.mentee_person_id,
                matches.c.state.in_([MatchState.PROPOSED.value, MatchState.PENDING_APPROVAL.value]),
            )
            .with_for_update()
        )
    ).all()
    for other in others:
        await close_open(session, other, now, ActorRole.SYSTEM, DeclineReason.SUPERSEDED, EndReasonCategory.OTHER)


async def decline(session: AsyncSession, row: Row[Any], actor: ActorRole, now: datetime) -> Row[Any]:
    """A party turns a sent proposal down; a coordinator may also reject a round proposal before its approval."""
    if actor is ActorRole.COORDINATOR and row.state == MatchState.PENDING_APPROVAL.value:
        return await reject(session, row, now)
    new = lifecycle.decline(lifecycle_of(row), now)
    if actor is ActorRole.COORDINATOR:
        reason = DeclineReason.REJECTED_BY_COORDINATOR
    elif actor is ActorRole.MENTEE and row.origin == MatchOrigin.MENTEE_REQUEST.value:
        reason = DeclineReason.WITHDRAWN
    else:
        reason = DeclineReason.DECLINED
    updated = await _close(session, row, new, now, actor, reason)
    await add_events(session, [MatchDeclined(**_pair(updated), declined_by=actor, reason=reason)])
    return updated


async def end(
    session: AsyncSession,
    row: Row[Any],
    actor: ActorRole,
    category: EndReasonCategory,
    private_reason: str | None,
    now: datetime,
) -> Row[Any]:
    new = lifecycle.end(lifecycle_of(row))
    updated = await _store(
        session,
        row,
        new,
        at_risk=False,  # see close_open
        closed_at=now,
        closed_by=actor.value,
        end_reason_category=category.value,
        end_reason_private=private_reason,
        rematch_offered=True,
    )
    await add_events(
        session,
        [MatchEnded(**_pair(updated), ended_at=now, ended_by=actor, reason_category=category, rematch_offered=True)],
    )
    return updated


async def close_open(
    session: AsyncSession,
    row: Row[Any],
    now: datetime,
    actor: ActorRole,
    decline_reason: DeclineReason,
    end_category: EndReasonCategory,
    *,
    rematch_offered: bool = False,
) -> None:
    """The system closes an open match: an active one ends, a proposal is declined (an unsent one silently).

    `rematch_offered`: the mentee stays and is offered new mentors (their mentor left), as MatchEnded says."""
    was = MatchState(row.state)
    new = lifecycle.withdraw(lifecycle_of(row))
    if new.state is MatchState.ENDED:
        # An ended match leaves the coordinator's at-risk list (it is for relationships that can still be saved);
        # its last reasons and health stay readable.
        values = {
            "closed_at": now,
            "closed_by": actor.value,
            "end_reason_category": end_category.value,
            "rematch_offered": rematch_offered,
        }
        await _store(session, row, new, at_risk=False, **values)
        event: EventData = MatchEnded(
            **_pair(row), ended_at=now, ended_by=actor, reason_category=end_category, rematch_offered=rematch_offered
        )
        await add_events(session, [event])
        return
    await _close(session, row, new, now, actor, decline_reason)
    if was is MatchState.PROPOSED:
        await add_events(session, [MatchDeclined(**_pair(row), declined_by=actor, reason=decline_reason)])


async def expire_due(
    session: AsyncSession,
    now: datetime,
    *,
    limit: int = 1_000,
    tenant: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    match_id: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
) -> int:
    """proposed → expired for proposals past their window, each with a MatchDeclined (reason expired).

    `FOR UPDATE SKIP LOCKED` plus the state condition make each expiry happen once, whether the sweeper or a
    reader gets there first.
    """
    picked = (
        select(matches.c.match_id)
        .where(matches.c.state == MatchState.PROPOSED.value, matches.c.expires_at <= now)
        .order_by(matches.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if tenant is not None:
        picked = picked.where(matches.c.tenant_id == tenant)
    if program_id is not None:
        picked = picked.where(matches.c.program_id == program_id)
    if match_id is not None:
        picked = picked.where(matches.c.match_id == match_id)
    if person_id is not None:
        picked = picked.where(or_(matches.c.mentee_person_id == person_id, matches.c.mentor_person_id == person_id))
    rows = (
        await session.execute(
            update(matches)
            .where(matches.c.match_id.in_(picked.scalar_subquery()), matches.c.state == MatchState.PROPOSED.value)
            .values(
                state=MatchState.EXPIRED.value,
                closed_at=now,
                closed_by=ActorRole.SYSTEM.value,
                decline_reason=DeclineReason.EXPIRED.value,
            )
            .returning(matches)
        )
    ).all()
    await add_events(
        session,
        [MatchDeclined(**_pair(r), declined_by=ActorRole.SYSTEM, reason=DeclineReason.EXPIRED) for r in rows],
    )
    return len(rows)


def program_closes_its_proposals(now: datetime) -> ColumnElement[bool]:
    """The program (a `programs` row) takes no new match: closed, archived or past its last day (`ends_on`, UTC)."""
    status = programs.c.snapshot["status"].astext
    return or_(status.in_([s.value for s in NO_NEW_MATCHES]), _program_ended(now))


def _program_ended(now: datetime) -> ColumnElement[bool]:
    """Past its last day (`ends_on`, a UTC date), or archived: nothing of the program runs on."""
    last_day = programs.c.snapshot["ends_on"].astext.cast(Date)
    status = programs.c.snapshot["status"].astext
    return or_(last_day < now.astimezone(UTC).date(), status.in_([s.value for s in ENDS_RUNNING_MATCHES]))


def of_its_program(table: Table) -> ColumnElement[bool]:
    """Join condition of a row carrying `tenant_id` and `program_id` (a match, a round) with its program."""
    return (programs.c.program_id == table.c.program_id) & (programs.c.tenant_id == table.c.tenant_id)


async def close_finished_programs(
    session: AsyncSession, now: datetime, *, limit: int = 1_000, program_id: uuid.UUID | None = None
) -> int:
    """Close what a program that stopped no longer lets run: the sweep's batch over all programs, or all of the
    one `program_id` (then waiting for rows another transaction holds: none may stay open).

    Past its last day (`ends_on`, a UTC date) or archived, nothing runs on: an active match reached its planned end,
    MatchEnded (`planned_end_reached`, by `system`, no re-match: the program is over). Closed, or either of those,
    a proposal lapses: `expired`, with a MatchDeclined (`expired`) when it was sent; a closed program's active
    matches run to its last day. `FOR UPDATE SKIP LOCKED` plus the state condition make each close happen once
    across replicas.
    """
    proposals = matches.c.state.in_([MatchState.PENDING_APPROVAL.value, MatchState.PROPOSED.value])
    query = (
        select(matches)
        .join(programs, of_its_program(matches))
        .where(
            or_(
                proposals & program_closes_its_proposals(now),
                (matches.c.state == MatchState.ACTIVE.value) & _program_ended(now),
            )
        )
        .order_by(matches.c.match_id)
        .limit(limit)
        .with_for_update(of=matches, skip_locked=program_id is None)
    )
    if program_id is not None:
        query = query.where(matches.c.program_id == program_id)
    found = (await session.execute(query)).all()
    for row in found:
        if row.state == MatchState.ACTIVE.value:
            await close_open(
                session, row, now, ActorRole.SYSTEM, DeclineReason.EXPIRED, EndReasonCategory.PLANNED_END_REACHED
            )
            continue
        await _close(session, row, lifecycle.lapse(lifecycle_of(row)), now, ActorRole.SYSTEM, DeclineReason.EXPIRED)
        if row.state == MatchState.PROPOSED.value:  # an unsent round proposal was never announced
            await add_events(
                session, [MatchDeclined(**_pair(row), declined_by=ActorRole.SYSTEM, reason=DeclineReason.EXPIRED)]
            )
    return len(found)
