"""The expiry sweeper: proposals past their answer window become expired, each with a MatchDeclined (expired), and
what programs past their last day, closed or archived no longer let run closes (`matches.close_finished_programs`,
`rounds.expire_rounds_of_stopped_programs`; the projection does it at once on a ProgramUpdated closing or archiving).

Reads also expire lazily (see `matches.expire_due`); the sweeper makes sure it happens for proposals nobody reads.
No lease is needed: `FOR UPDATE SKIP LOCKED` and the state condition keep each expiry single across replicas.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.matching.application.matches import close_finished_programs, expire_due
from services.matching.application.rounds import expire_rounds_of_stopped_programs
from shared.clock import Clock
from shared.periodic import in_batches, run_periodically

log = structlog.get_logger(__name__)


async def sweep_expired(sessions: async_sessionmaker[AsyncSession], clock: Clock, batch_size: int) -> int:
    """Expire everything due now, one bounded transaction per batch."""
    now = clock.now()
    return await in_batches(sessions, lambda session, limit: expire_due(session, now, limit=limit), batch_size)


async def sweep_finished_programs(sessions: async_sessionmaker[AsyncSession], clock: Clock, batch_size: int) -> int:
    """Close the open matches of every program that stopped (past its last day, closed or archived) and expire
    its rounds awaiting approval, one bounded transaction per batch."""
    now = clock.now()
    async with sessions() as session, session.begin():
        await expire_rounds_of_stopped_programs(session, now)
    return await in_batches(
        sessions, lambda session, limit: close_finished_programs(session, now, limit=limit), batch_size
    )


async def run_expiry_sweeper(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    stop: asyncio.Event,
    *,
    batch_size: int,
    interval_seconds: float,
) -> None:
    async def sweep_and_log() -> None:
        if expired := await sweep_expired(sessions, clock, batch_size):
            log.info("expired proposals", count=expired)
        if closed := await sweep_finished_programs(sessions, clock, batch_size):
            log.info("closed matches of ended programs", count=closed)

    await run_periodically(sweep_and_log, stop, interval_seconds, name="proposal-expiry")
