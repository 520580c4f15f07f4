"""Every service's migrations leave the inbox's received_at index as BRIN, and pruning still finds old rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.db import create_engine
from shared.messaging.consumer import prune_inbox
from shared.migrations import upgrade_to_head

pytestmark = pytest.mark.integration

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize("service", ["profiles", "matching", "scheduling", "feedback"])
async def test_a_migrated_service_database_has_a_brin_inbox_index_that_pruning_uses(
    service: str, database_url: str
) -> None:
    await asyncio.to_thread(upgrade_to_head, SERVICES_DIR / service / "migrations", database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            definition = (
                await conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_inbox_received_at'"))
            ).scalar_one()
            now = datetime.now(UTC)
            await conn.execute(
                text("INSERT INTO inbox (consumer, event_id, received_at) VALUES ('c', :e, :t)"),
                [{"e": f"old-{i}", "t": now - timedelta(days=40)} for i in range(3)]
                + [{"e": f"new-{i}", "t": now} for i in range(2)],
            )
        assert "USING brin (received_at)" in definition
        assert await prune_inbox(engine, now - timedelta(days=35)) == 3
        async with engine.connect() as conn:
            kept = (await conn.execute(text("SELECT event_id FROM inbox ORDER BY event_id"))).scalars().all()
        assert kept == ["new-0", "new-1"]
    finally:
        await engine.dispose()
