"""The health sweeper: re-assesses matches when time alone changes their health.

Everything else re-assesses a match when an event or an answer arrives. A match whose partners simply never meet
sends nothing, so its first-meeting deadline would pass unnoticed; this periodic job finds such matches (their
rows claimed with SKIP LOCKED, so replicas share the work without a lease) and marks them at risk, once each.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.feedback import application as app
from shared.clock import Clock

log = structlog.get_logger(__name__)


async def sweep_health(sessions: async_sessionmaker[AsyncSession], clock: Clock, batch_size: int) -> int:
    """Re-assess every match past its first-meeting deadline now, one bounded transaction per batch."""
    total = 0
    now = clock.now()
    while True:
        async with sessions() as session, session.begin():
            count = await app.sweep_first_meeting_deadlines(session, now, batch_size)
        total += count
        if count < batch_size:
            return total


async def run_health_sweeper(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    stop: asyncio.Event,
    *,
    batch_size: int,
    interval_seconds: float,
) -> None:
    while not stop.is_set():
        try:
            swept = await sweep_health(sessions, clock, batch_size)
            if swept:
                log.info("re-assessed matches past their first-meeting deadline", count=swept)
        except Exception as exc:  # database down etc.: log, wait, retry; never crash the role
            log.warning("health sweep failed; will retry", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_seconds)
