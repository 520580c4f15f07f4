"""The consumer-lag gauge follows the partitions' ends and only the owner of a partition reports it, against the real
servers (the lag alert in deploy/k8s/components/monitoring reads it)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.messaging.kafka import ensure_topics, make_producer
from tests.messaging.support import (
    ProbeEvent,
    create_messaging_schema,
    effect_counts,
    eventually,
    record_effect,
    runner,
)

pytestmark = pytest.mark.integration


def lag(group: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "mentorloom_consumer_lag", {"consumer": group, "topic": topic, "partition": str(partition)}
    )


async def publish(
    producer: AIOKafkaProducer, topic: str, ids: list[str], partition: int = 0, **payload: object
) -> None:
    for event_id in ids:
        await producer.send_and_wait(
            topic, value=json.dumps(payload).encode(), partition=partition, headers=[("ce_id", event_id.encode())]
        )


async def test_the_lag_of_a_consumer_stuck_in_a_batch_grows_with_the_partition_end(
    engine: AsyncEngine, kafka_bootstrap: str, unique: str
) -> None:
    await create_messaging_schema(engine)
    topic = f"t.stuck-lag.{unique}"
    group = f"g-stuck-lag-{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    stalled, release = asyncio.Event(), asyncio.Event()

    async def handler(session: AsyncSession, event: ProbeEvent) -> None:
        if event.payload.get("stall"):  # stands for a handler retrying while its database is down
            stalled.set()
            await release.wait()
        await record_effect(session, event)

    consumer = runner(engine, kafka_bootstrap, topic, group, handler=handler, lag_refresh_seconds=0.1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await publish(producer, topic, [f"early-{i}" for i in range(3)])

        async def caught_up() -> bool:
            return len(await effect_counts(engine)) == 3 and lag(group, topic, 0) == 0

        assert await eventually(caught_up)
        await publish(producer, topic, ["stall"], stall=True)
        await asyncio.wait_for(stalled.wait(), 30)
        await publish(producer, topic, [f"late-{i}" for i in range(20)])

        async def lag_follows_the_end() -> bool:
            # Committed through offset 3; the partition ends at 24: the stuck record and the 20 behind it.
            return lag(group, topic, 0) == 21

        assert await eventually(lag_follows_the_end), f"lag still {lag(group, topic, 0)}"
    finally:
        release.set()
        consumer.stop()
        await asyncio.wait_for(task, 20)
        await producer.stop()


async def test_a_consumer_that_loses_a_partition_in_a_rebalance_stops_reporting_its_lag(
    engine: AsyncEngine, kafka_bootstrap: str, unique: str
) -> None:
    await create_messaging_schema(engine)
    topic = f"t.revoked-lag.{unique}"
    group = f"g-revoked-lag-{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=2)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    first = runner(engine, kafka_bootstrap, topic, group, lag_refresh_seconds=0.1)
    task = asyncio.create_task(first.run())
    # The second member is a plain client of the same group, so the only series of this group are the runner's.
    second = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        await publish(producer, topic, ["p0-a", "p0-b"], partition=0)
        await publish(producer, topic, ["p1-a"], partition=1)

        async def both_partitions_reported() -> bool:
            return lag(group, topic, 0) == 0 and lag(group, topic, 1) == 0

        assert await eventually(both_partitions_reported)
        await second.start()
        second.subscribe([topic])

        async def only_its_own_partition_reported() -> bool:
            await second.getmany(timeout_ms=100)  # keeps the second member in the group
            assert first.consumer is not None
            owned = {tp.partition for tp in first.consumer.assignment()}
            if len(owned) != 1:
                return False
            (kept,) = owned
            return lag(group, topic, kept) is not None and lag(group, topic, 1 - kept) is None

        assert await eventually(only_its_own_partition_reported), "the lost partition's lag is still exported"
    finally:
        await second.stop()
        first.stop()
        await asyncio.wait_for(task, 20)
        await producer.stop()
