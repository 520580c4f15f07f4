"""Periodic work (sweepers, inbox pruning) survives failures, stops when asked and works in bounded transactions."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.periodic import in_batches, pause_unless_stopped, run_periodically

# Generous bounds so that a loop which ignores its stop event fails the test instead of hanging the suite; they do
# not measure speed.
HOUR = 3600.0
NO_HANG = 30.0


async def test_a_failed_run_is_logged_and_the_job_runs_again_at_the_next_period() -> None:
    stop = asyncio.Event()
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("database unavailable")
        if len(runs) == 3:
            stop.set()

    await asyncio.wait_for(run_periodically(job, stop, 0.01, name="test"), NO_HANG)

    assert runs == [0, 1, 2]


async def test_setting_stop_ends_the_pause_at_once_rather_than_at_the_end_of_the_interval() -> None:
    stop, ran = asyncio.Event(), asyncio.Event()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        ran.set()

    loop = asyncio.create_task(run_periodically(job, stop, HOUR, name="test"))
    await asyncio.wait_for(ran.wait(), NO_HANG)  # the first run is done; the hour-long pause begins
    stop.set()
    await asyncio.wait_for(loop, NO_HANG)

    assert runs == 1


async def test_a_pause_without_stop_lasts_its_interval() -> None:
    stop = asyncio.Event()
    pause = asyncio.create_task(pause_unless_stopped(stop, HOUR))
    await asyncio.sleep(0.05)

    assert not pause.done()
    stop.set()
    await asyncio.wait_for(pause, NO_HANG)


@pytest.fixture
async def sessions_over_seven_rows(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE due (id int PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO due SELECT generate_series(1, 7)"))
    return async_sessionmaker(engine, expire_on_commit=False)


async def delete_some(session: AsyncSession, limit: int) -> int:
    deleted = await session.execute(
        text("DELETE FROM due WHERE id IN (SELECT id FROM due ORDER BY id LIMIT :limit) RETURNING id"),
        {"limit": limit},
    )
    return len(deleted.all())


async def test_batches_repeat_until_one_comes_back_short_and_their_counts_add_up(
    sessions_over_seven_rows: async_sessionmaker[AsyncSession],
) -> None:
    assert await in_batches(sessions_over_seven_rows, delete_some, 3) == 7  # 3 + 3 + 1
    assert await in_batches(sessions_over_seven_rows, delete_some, 3) == 0


async def test_each_batch_commits_on_its_own_so_a_failing_batch_keeps_the_earlier_ones(
    sessions_over_seven_rows: async_sessionmaker[AsyncSession],
) -> None:
    batches = 0

    async def delete_then_fail_on_the_second(session: AsyncSession, limit: int) -> int:
        nonlocal batches
        batches += 1
        count = await delete_some(session, limit)
        if batches == 2:
            raise ConnectionError("connection lost mid-sweep")
        return count

    with pytest.raises(ConnectionError):
        await in_batches(sessions_over_seven_rows, delete_then_fail_on_the_second, 3)

    async with sessions_over_seven_rows() as session:
        left = (await session.execute(text("SELECT count(*) FROM due"))).scalar_one()
    assert left == 4  # the first batch of 3 stayed deleted; the second rolled back
