"""Every service's migrations: the inbox's received_at index is BRIN (pruning still finds old rows), and the outbox's
headers become text without losing the rows waiting in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from alembic import command
from sqlalchemy import text

from shared.db import create_engine
from shared.messaging.consumer import prune_inbox
from shared.migrations import alembic_config, upgrade_to_head

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


HEADERS_TEXT_REVISION = {"profiles": "0003", "matching": "0003", "scheduling": "0004", "feedback": "0004"}


@pytest.mark.parametrize("service", sorted(HEADERS_TEXT_REVISION))
async def test_outbox_rows_written_before_headers_became_text_keep_their_headers(
    service: str, database_url: str
) -> None:
    config = alembic_config(SERVICES_DIR / service / "migrations", database_url)
    before = f"{HEADERS_TEXT_REVISION[service]}-1"  # relative: the revision just before
    await asyncio.to_thread(command.upgrade, config, before)
    headers = {"ce_id": "0192f3a0-0000-7000-8000-000000000001", "ce_type": "com.mentorloom.test", "ce_note": 'é \\ "'}
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO outbox (topic, key, headers, value) VALUES ('t', 'k', CAST(:h AS jsonb), 'v')"),
                {"h": orjson.dumps(headers).decode()},
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with engine.connect() as conn:
            kind = (
                await conn.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns WHERE table_name = 'outbox' AND column_name = 'headers'"
                    )
                )
            ).scalar_one()
            stored = (await conn.execute(text("SELECT headers FROM outbox"))).scalar_one()
        assert kind == "text"
        assert orjson.loads(stored) == headers
    finally:
        await engine.dispose()
