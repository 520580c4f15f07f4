"""The relay and the consumers report how full their batches run, against the real servers."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import session_factory
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay, add_messages
from tests.messaging.support import (
    create_messaging_schema,
    effect_counts,
    eventually,
    probe_message,
    runner,
)

pytestmark = pytest.mark.integration


def histogram(metric: str, labels: dict[str, str]) -> tuple[float, float]:
    """(batches observed, their summed sizes) of one labelled series; zeros before its first observation."""
    count = REGISTRY.get_sample_value(f"{metric}_count", labels) or 0.0
    total = REGISTRY.get_sample_value(f"{metric}_sum", labels) or 0.0
    return count, total


async def test_the_relay_and_the_consumer_observe_each_batch_size(
    engine: AsyncEngine, kafka_bootstrap: str, unique: str
) -> None:
    await create_messaging_schema(engine)
    topic = f"t.batch-metrics.{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=2)
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(topic, f"e-{i}") for i in range(70)])

    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(engine, producer, service=f"svc-{unique}", batch_size=50)
        assert await relay.drain() == 70
    finally:
        await producer.stop()
    # Two batches were sent (50 rows, then 20); the empty claim that ended the drain is not a batch.
    assert histogram("mentorloom_outbox_batch_rows", {"service": f"svc-{unique}"}) == (2.0, 70.0)

    group = f"g-batch-metrics-{unique}"
    consumer = runner(engine, kafka_bootstrap, topic, group, batch_size=500)
    task = asyncio.create_task(consumer.run())
    try:
        assert await eventually(lambda: _all_applied(engine, 70))
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)
    batches, records = histogram("mentorloom_consumer_batch_records", {"consumer": group})
    assert records == 70.0, "every record is counted once, in the batch that applied it"
    assert 1 <= batches <= 70


async def _all_applied(engine: AsyncEngine, expected: int) -> bool:
    return len(await effect_counts(engine)) == expected
