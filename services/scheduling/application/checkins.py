"""Writing check-in plans: initial plan, re-plan after a program change, cancellation when a match ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import check_ins, matches
from services.scheduling.adapters.repository import (
    MatchRecord,
    ProgramSettings,
    check_in_id_for,
    checkin_from_row,
    load_match_checkins,
)
from services.scheduling.domain.model import CheckIn, CheckInState
from services.scheduling.domain.plan import cancellations_on_match_end, plan_checkins, replan
from services.scheduling.domain.rhythm import missed_deadline
from shared.db import chunks


def _rows(match: MatchRecord, program: ProgramSettings, planned: Iterable[CheckIn]) -> list[dict[str, object]]:
    return [
        {
            "check_in_id": check_in_id_for(c.occurrence_key),
            "occurrence_key": c.occurrence_key,
            "tenant_id": match.tenant_id,
            "match_id": match.match_id,
            "program_id": match.program_id,
            "mentee_person_id": match.mentee_person_id,
            "mentor_person_id": match.mentor_person_id,
            "kind": c.kind.value,
            "seq": c.seq,
            "phase": c.phase.value,
            "due_at": c.due_at,
            "state": c.state.value,
            "deferred_until": c.deferred_until,
            "remind_at": c.due_at - program.reminder_lead,
            "missed_after": missed_deadline(c, program.grace),
        }
        for c in planned
    ]


async def _insert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    # In chunks: a long program with a daily cadence plans thousands of check-ins for one match, 15 arguments each.
    for chunk in chunks(rows):
        stmt = insert(check_ins).values(list(chunk))
        # The occurrence key is unique: a redelivered plan inserts nothing twice.
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["occurrence_key"]))


async def plan_match(session: AsyncSession, match: MatchRecord, program: ProgramSettings) -> int:
    """Write the full plan of a match that just became active (or whose program just became known)."""
    planned = plan_checkins(str(match.match_id), match.activated_at, program.rhythm())
    await _insert(session, _rows(match, program, planned))
    await session.execute(update(matches).where(matches.c.match_id == match.match_id).values(planned=True))
    return len(planned)


async def replan_match(session: AsyncSession, match: MatchRecord, program: ProgramSettings, now: datetime) -> None:
    """Apply a program change to the match's future, still-scheduled check-ins only (domain ``replan``)."""
    existing = [checkin_from_row(row) for row in await load_match_checkins(session, match.match_id)]
    result = replan(
        existing, match_id=str(match.match_id), match_started_at=match.activated_at, rhythm=program.rhythm(), now=now
    )
    await cancel_checkins(session, [c.occurrence_key for c in result.cancel], now)
    await _insert(session, _rows(match, program, result.add))


async def cancel_checkins(
    session: AsyncSession,
    occurrence_keys: list[str],
    now: datetime,
    states: tuple[CheckInState, ...] = (CheckInState.SCHEDULED,),
) -> None:
    """Cancel the named check-ins that are still in one of `states` (a concurrent sweep may have moved one on)."""
    # In chunks: a long plan (a daily rhythm over decades) names more keys than one statement's arguments can hold.
    for chunk in chunks(occurrence_keys):
        await session.execute(
            update(check_ins)
            .where(
                check_ins.c.occurrence_key.in_(chunk),
                check_ins.c.state.in_([state.value for state in states]),
            )
            .values(state=CheckInState.CANCELLED.value, settled_at=now)
        )


async def cancel_after_match_end(session: AsyncSession, match_id: uuid.UUID, ended_at: datetime) -> None:
    existing = [checkin_from_row(row) for row in await load_match_checkins(session, match_id)]
    to_cancel = [c.occurrence_key for c in cancellations_on_match_end(existing)]
    await cancel_checkins(session, to_cancel, ended_at, states=(CheckInState.SCHEDULED, CheckInState.DUE))


async def retime_open_checkins(session: AsyncSession, program: ProgramSettings) -> None:
    """A changed reminder lead or grace period applies to every check-in of the program not yet settled."""
    await session.execute(
        update(check_ins)
        .where(
            check_ins.c.tenant_id == program.tenant_id,
            check_ins.c.program_id == program.program_id,
            check_ins.c.state.in_([CheckInState.SCHEDULED.value, CheckInState.DUE.value]),
        )
        .values(
            remind_at=check_ins.c.due_at - program.reminder_lead,
            # Same rule as the domain's missed_deadline: grace counts from the later of due time and deferral.
            missed_after=func.greatest(
                check_ins.c.due_at, func.coalesce(check_ins.c.deferred_until, check_ins.c.due_at)
            )
            + program.grace,
        )
    )
