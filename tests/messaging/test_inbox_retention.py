"""The inbox forgets events older than the retention period, and only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.messaging.consumer import prune_inbox
from tests.messaging.support import create_messaging_schema

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def fill_inbox(engine: AsyncEngine, consumer: str, ages_in_days: list[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO inbox (consumer, event_id, received_at) VALUES (:c, :e, :t)"),
            [
                {"c": consumer, "e": f"{consumer}-{i}", "t": NOW - timedelta(days=age)}
                for i, age in enumerate(ages_in_days)
            ],
        )


async def remaining(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT consumer, event_id FROM inbox ORDER BY consumer, event_id"))
        return [(r[0], r[1]) for r in rows]


async def test_rows_older_than_the_cutoff_are_deleted_and_newer_ones_kept(engine: AsyncEngine) -> None:
    await create_messaging_schema(engine)
    await fill_inbox(engine, "matching.profiles", [40, 36, 34, 1])
    await fill_inbox(engine, "matching.scheduling", [90, 0])

    pruned = await prune_inbox(engine, NOW - timedelta(days=35))

    assert pruned == 3
    assert await remaining(engine) == [
        ("matching.profiles", "matching.profiles-2"),
        ("matching.profiles", "matching.profiles-3"),
        ("matching.scheduling", "matching.scheduling-1"),
    ]


async def test_pruning_works_through_a_backlog_larger_than_one_batch(engine: AsyncEngine) -> None:
    await create_messaging_schema(engine)
    await fill_inbox(engine, "feedback.matching", [50] * 23 + [2] * 4)

    pruned = await prune_inbox(engine, NOW - timedelta(days=35), batch_size=5)

    assert pruned == 23
    assert len(await remaining(engine)) == 4


async def test_an_inbox_with_nothing_old_enough_is_left_alone(engine: AsyncEngine) -> None:
    await create_messaging_schema(engine)
    await fill_inbox(engine, "scheduling.matching", [3, 2, 1])

    assert await prune_inbox(engine, NOW - timedelta(days=35)) == 0
    assert len(await remaining(engine)) == 3
