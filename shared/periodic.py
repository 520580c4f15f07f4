"""Periodic background work of a service role: the sweepers, inbox pruning.

Each job runs until its role's stop event is set, survives its own failures (the database or Redis may be away for
a while: log, wait, try again; a crashed role would stop the work for good) and stops at once when asked, not at
the end of its pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = structlog.get_logger(__name__)


async def pause_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_periodically(
    job: Callable[[], Awaitable[object]], stop: asyncio.Event, interval_seconds: float, *, name: str
) -> None:
    """Run ``job``, pause ``interval_seconds``, repeat until ``stop`` is set; a failed run is logged and retried."""
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:  # database or Redis down etc.: the next run tries again; never crash the role
            log.warning("periodic job failed; will retry", job=name, error=repr(exc))
        await pause_unless_stopped(stop, interval_seconds)


async def in_batches(
    sessions: async_sessionmaker[AsyncSession],
    batch: Callable[[AsyncSession, int], Awaitable[int]],
    batch_size: int,
) -> int:
    """Repeat ``batch(session, batch_size)``, one transaction each, until it handles fewer than ``batch_size`` rows.

    Bounded transactions keep locks short and let a replica beside this one (claiming with SKIP LOCKED) share the
    work; returns how many rows all batches handled.
    """
    total = 0
    while True:
        async with sessions() as session, session.begin():
            count = await batch(session, batch_size)
        total += count
        if count < batch_size:
            return total
