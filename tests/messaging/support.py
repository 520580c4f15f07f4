"""A tiny event shape for testing the messaging mechanism apart from the event contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import shared.messaging.dlq
import shared.messaging.kafka
from shared.db import new_metadata, session_factory
from shared.events.registry import dead_letter_topic
from shared.messaging.consumer import ConsumerRunner, Handler
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end
from shared.messaging.outbox import OutgoingMessage
from shared.messaging.tables import OUTBOX_NOTIFY_DDL, messaging_tables


@dataclass(frozen=True)
class ProbeEvent:
    id: str
    type: str
    payload: dict[str, object]
    traceparent: str | None = None


class UndecodableError(ValueError):
    pass


def decode_probe(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> ProbeEvent:
    h = {k: v.decode() for k, v in headers}
    if "ce_id" not in h or value is None:
        raise UndecodableError("missing ce_id header")
    try:
        payload = json.loads(value)
    except ValueError as exc:
        raise UndecodableError(f"value is not JSON: {exc}") from exc
    return ProbeEvent(
        id=h["ce_id"], type=h.get("ce_type", "probe"), payload=payload, traceparent=h.get("ce_traceparent")
    )


def probe_message(topic: str, event_id: str, **payload: object) -> OutgoingMessage:
    return OutgoingMessage(
        topic=topic,
        key=str(payload.get("key", event_id)),
        value=json.dumps(payload).encode(),
        headers={"ce_id": event_id, "ce_type": "probe"},
    )


async def create_messaging_schema(engine: AsyncEngine) -> None:
    metadata = new_metadata()
    messaging_tables(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for ddl in OUTBOX_NOTIFY_DDL:
            await conn.execute(text(ddl))
        await conn.execute(text("CREATE TABLE effects (event_id text NOT NULL, applied_at timestamptz DEFAULT now())"))


async def record_effect(session: AsyncSession, event: ProbeEvent) -> None:
    """The handler's business effect: one row per application (no unique key, so a double apply shows)."""
    if event.payload.get("explode"):
        raise RuntimeError("handler bug triggered by this event")
    await session.execute(text("INSERT INTO effects (event_id) VALUES (:id)"), {"id": event.id})


async def effect_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT event_id, count(*) FROM effects GROUP BY event_id"))).all()
    return {r[0]: int(r[1]) for r in rows}


async def read_topic(
    bootstrap: str, topic: str, expected: int, limit_seconds: float = 30.0
) -> list[tuple[dict[str, str], bytes]]:
    """Read a topic from the beginning until `expected` distinct ce_ids arrived (or the time limit passes).

    Distinct, because at-least-once delivery may legitimately publish a record twice.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[dict[str, str], bytes]] = []
    deadline = time.monotonic() + limit_seconds
    try:
        while len({h.get("ce_id") for h, _ in out}) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out.extend(({k: v.decode() for k, v in r.headers}, r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return out


async def read_whole_topic(bootstrap: str, topic: str) -> list[tuple[dict[str, str], bytes]]:
    """Every record on the topic now, duplicates included: each partition read to its end, not to a count or a time
    limit, so a slow machine cannot cut it short and a count cannot hide a duplicate."""
    return [({k: v.decode() for k, v in r.headers}, r.value or b"") for r in await read_topic_to_end(bootstrap, topic)]


async def eventually(predicate, limit_seconds: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll an async predicate until it returns a truthy value; returns the last value."""
    deadline = time.monotonic() + limit_seconds
    value = await predicate()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await predicate()
    return value


def runner(
    engine: AsyncEngine,
    bootstrap: str,
    topic: str,
    group: str,
    handler: Handler[ProbeEvent] = record_effect,
    **kw: Any,
) -> ConsumerRunner[ProbeEvent]:
    """A consumer of probe events that records each effect (or runs `handler`), retrying fast."""
    return ConsumerRunner(
        name=group,
        topics=[topic],
        bootstrap=bootstrap,
        sessions=session_factory(engine),
        handler=handler,
        decode=decode_probe,
        backoff_base=0.01,
        **kw,
    )


async def committed_through(consumer: ConsumerRunner, topic: str, end: int) -> bool:  # type: ignore[type-arg]
    """Whether the runner's group has committed partition 0 of `topic` up to `end`: every record before it has been
    applied and its transaction committed (offsets are committed after it), so any double apply would show by now."""
    if consumer.consumer is None:
        return False
    try:
        committed = await consumer.consumer.committed(TopicPartition(topic, 0))
    except KafkaError:
        return False  # not yet a group member: asked again
    return committed is not None and committed >= end


def letter_headers(original_topic: str, event_id: str) -> list[tuple[str, bytes]]:
    """The headers a consumer gives a record it dead-letters."""
    return [
        ("ce_id", event_id.encode()),
        ("ce_type", b"probe.happened"),
        ("dlq_original_topic", original_topic.encode()),
        ("dlq_reason", b"handler_failed"),
        ("dlq_error_type", b"RuntimeError"),
        ("dlq_error", b"downstream rule rejects the event"),
        ("dlq_attempts", b"3"),
        ("dlq_consumer", b"probe.projection"),
    ]


async def send_dead_letters(bootstrap: str, original: str, per_partition: Sequence[int]) -> str:
    """The dead-letter topic of `original` with per_partition[p] letters on partition p, event ids 'p{p}-{i}'."""
    dead = dead_letter_topic(original)
    await ensure_topics(bootstrap, [dead, original], partitions=len(per_partition))
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for partition, count in enumerate(per_partition):
            for i in range(count):
                headers = letter_headers(original, f"p{partition}-{i}")
                await producer.send(dead, b"{}", key=b"k", headers=headers, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    return dead


def chunk_sizes_the_dead_letter_tool_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each chunk the dead-letter tool reads from the broker, filled in as it reads."""
    sizes: list[int] = []
    real = shared.messaging.kafka.stream_topic_to_end

    async def recording(*args: Any, **kwargs: Any) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
        chunks = real(*args, **kwargs)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", recording)
    return sizes
