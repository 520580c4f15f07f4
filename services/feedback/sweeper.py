"""The health sweeper: re-assesses matches when time alone changes their health.

Everything else re-assesses a match when an event or an answer arrives. A match whose partners simply never meet
sends nothing, so its first-meeting deadline would pass unnoticed; this periodic job finds such matches (their
rows claimed with SKIP LOCKED, so replicas share the work without a lease) and marks them at risk, once each.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.feedback import application as app
from shared.clock import Clock
from shared.periodic import in_batches, run_periodically

log = structlog.get_logger(__name__)


async def sweep_health(sessions: async_sessionmaker[AsyncSession], clock: Clock, batch_size: int) -> int:
    """Re-assess every match past its first-meeting deadline now, one bounded transaction per batch."""
    now = clock.now()
    return await in_batches(
        sessions, lambda session, limit: app.sweep_first_meeting_deadlines(session, now, limit), batch_size
    )


async def run_health_sweeper(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    stop: asyncio.Event,
    *,
    batch_size: int,
    interval_seconds: float,
) -> None:
    async def sweep_and_log() -> None:
        if swept := await sweep_health(sessions, clock, batch_size):
            log.info("re-assessed matches past their first-meeting deadline", count=swept)

    await run_periodically(sweep_and_log, stop, interval_seconds, name="health")
