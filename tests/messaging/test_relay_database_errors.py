"""The outbox relay survives the database failing under it, against the real servers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import session_factory
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay, add_messages
from tests.messaging.support import create_messaging_schema, eventually, probe_message

pytestmark = pytest.mark.integration


async def test_a_leading_relay_whose_backlog_count_fails_at_the_database_backs_off_and_publishes_afterwards(
    engine: AsyncEngine, kafka_bootstrap: str, unique: str
) -> None:
    # The backlog count goes through SQLAlchemy's pool, so a database going away surfaces there as SQLAlchemy's
    # OperationalError, not as the asyncpg or OS error the relay backed off from: the relay's run() ended with it.
    await create_messaging_schema(engine)
    topic = f"t.relay-db-errors.{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(topic, f"e-{i}") for i in range(5)])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(engine, producer, service=f"svc-{unique}", max_backoff=0.2)
    counts_to_fail = 2
    count_backlog = relay._refresh_backlog

    async def count_failing_while_the_database_restarts() -> None:
        nonlocal counts_to_fail
        if counts_to_fail:
            counts_to_fail -= 1
            raise OperationalError("SELECT count(*) FROM outbox", {}, ConnectionRefusedError("database restarting"))
        await count_backlog()

    relay._refresh_backlog = count_failing_while_the_database_restarts  # type: ignore[method-assign]
    running = asyncio.create_task(relay.run())

    async def outbox_empty() -> bool:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()) == 0

    try:
        assert await eventually(outbox_empty)
        assert counts_to_fail == 0
        assert not running.done(), "the relay keeps running after the database came back"
    finally:
        relay.stop()
        try:
            await asyncio.wait_for(running, 20)
        finally:
            await producer.stop()
