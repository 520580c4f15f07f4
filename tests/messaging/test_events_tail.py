"""`mentorloom events tail` (deploy.local.events_tail.follow) against the real broker."""

from __future__ import annotations

import asyncio

import pytest

from deploy.local.events_tail import follow
from shared.messaging.kafka import ensure_topics, make_producer
from tests.messaging.support import eventually

pytestmark = pytest.mark.integration


async def test_a_tail_started_after_some_events_shows_only_those_published_after_it(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"t.tail.{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        # Three record batches in partitions 0 and 1, none in 2: Tansu reports the end of a partition inside its
        # last batch, where a tail that trusted it showed 9 old records of each.
        for _ in range(3):
            sent = [await producer.send(topic, b"old", key=b"k", partition=i % 2) for i in range(20)]
            await asyncio.gather(*sent)
        ready, stop = asyncio.Event(), asyncio.Event()
        seen: list[tuple[int, bytes | None]] = []

        async def tail() -> None:
            async for record in follow(kafka_bootstrap, [topic], stop=stop, ready=ready, poll_ms=100):
                seen.append((record.partition, record.value))

        task = asyncio.create_task(tail())
        try:
            await asyncio.wait_for(ready.wait(), 30)
            for partition in range(3):
                await producer.send_and_wait(topic, b"new", key=b"n", partition=partition)

            async def all_new_seen() -> bool:
                return sum(value == b"new" for _, value in seen) == 3

            assert await eventually(all_new_seen)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    finally:
        await producer.stop()
    assert sorted(seen) == [(0, b"new"), (1, b"new"), (2, b"new")]
