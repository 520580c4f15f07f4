"""Transactional outbox: the event row is written in the caller's transaction; a relay publishes it.

No code path publishes to Kafka after a commit: if the transaction rolls back, the event never existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.db import advisory_lock_key, asyncpg_dsn, driver_connection
from shared.events.envelope import H_SUBJECT, EventEnvelope, TextEncodedEvent, encode_data, encode_text
from shared.events.models import EventData
from shared.events.registry import spec_for
from shared.messaging.partitioning import partitions_for_keys
from shared.messaging.tables import OUTBOX, OUTBOX_NOTIFY_CHANNEL
from shared.observability import OUTBOX_BACKLOG, OUTBOX_BATCH_ROWS, OUTBOX_PUBLISH_ERRORS, OUTBOX_PUBLISHED
from shared.periodic import pause_unless_stopped
from shared.tracing import current_traceparent

log = structlog.get_logger(__name__)


# An encoded Kafka record with text key and headers: the event contract encodes it, the outbox stores it, the relay
# sends it. The contract's own NamedTuple (as immutable as a frozen dataclass, and built in a quarter of the time),
# so message_for hands it over without a copy.
OutgoingMessage = TextEncodedEvent


_INSERT_MESSAGES = """
INSERT INTO outbox (topic, key, headers, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
"""
BACKLOG_REFRESH_SECONDS = 1.0
COPY_THRESHOLD = 64  # below this a multi-row INSERT is as fast; above it COPY is ~1.7× faster (sweeps, imports)


async def add_messages(session: AsyncSession, messages: Sequence[OutgoingMessage]) -> None:
    """Write outgoing messages in the caller's (still open) transaction, on its asyncpg connection."""
    if not messages:
        return
    raw = await driver_connection(session)
    if len(messages) >= COPY_THRESHOLD:
        await raw.copy_records_to_table(
            "outbox",
            records=[(m.topic, m.key, orjson.dumps(m.headers).decode(), m.value) for m in messages],
            columns=["topic", "key", "headers", "value"],
        )
        return
    await raw.execute(
        _INSERT_MESSAGES,
        [m.topic for m in messages],
        [m.key for m in messages],
        [orjson.dumps(m.headers).decode() for m in messages],
        [m.value for m in messages],
    )


def message_for(event: EventEnvelope[EventData] | EventData) -> OutgoingMessage:
    """Encode an event of the contract; bare data is enveloped with the current trace context."""
    if not isinstance(event, EventEnvelope):
        event = EventEnvelope.wrap(event, traceparent=current_traceparent())
    return encode_text(event)


async def add_events(session: AsyncSession, events: Sequence[EventEnvelope[EventData] | EventData]) -> None:
    """Write events of the contract in the caller's transaction: the only way services emit events."""
    await add_messages(session, [message_for(e) for e in events])


def _waiting_of(keys: Sequence[str], event_types: Sequence[type[EventData]]) -> Any:
    ce_types = [spec_for(event_type).ce_type for event_type in event_types]
    return (OUTBOX.c.key.in_(keys)) & (func.cast(OUTBOX.c.headers, JSONB)["ce_type"].astext.in_(ce_types))


async def discard_waiting(session: AsyncSession, keys: Sequence[str], event_types: Sequence[type[EventData]]) -> int:
    """Delete the events of these types and record keys that still wait in the outbox, in the caller's transaction;
    how many went. For an erasure: a snapshot not yet sent must not carry the person's data out afterwards. A row
    the relay has claimed is locked until sent and deleted, so this waits for it and finds nothing."""
    if not keys:
        return 0
    result = await session.execute(delete(OUTBOX).where(_waiting_of(keys, event_types)).returning(OUTBOX.c.id))
    return len(result.all())


async def rewrite_waiting(
    session: AsyncSession,
    keys: Sequence[str],
    event_type: type[EventData],
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Replace the data of the waiting events of this type and these keys with `change(data)`, keeping the envelope
    (headers, ce_id, position): for an erasure, where the event must still leave but without the person's data.
    `change` gets and returns the event data as JSON-ready dict; the result is validated as `event_type`. A change
    of the field the event's subject is taken from changes its ce_subject header too (the key must not change)."""
    if not keys:
        return 0
    spec = spec_for(event_type)
    rows = (
        await session.execute(
            select(OUTBOX.c.id, OUTBOX.c.headers, OUTBOX.c.value)
            .where(_waiting_of(keys, [event_type]))
            .with_for_update()
        )
    ).all()
    for row_id, headers, value in rows:
        data = event_type.model_validate_json(value).model_dump(mode="json")
        event = event_type.model_validate(change(data))
        values: dict[str, Any] = {"value": encode_data(event)}  # the bytes message_for writes
        stored_headers = orjson.loads(headers)
        subject = spec.subject_of(event)
        if stored_headers.get(H_SUBJECT) != subject:
            values["headers"] = orjson.dumps({**stored_headers, H_SUBJECT: subject}).decode()
        await session.execute(update(OUTBOX).where(OUTBOX.c.id == row_id).values(values))
    return len(rows)


async def outbox_backlog(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(OUTBOX))).scalar_one())


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 30)


# `id = ANY(ARRAY(...))`, not `id IN (SELECT ...)`: the locked ids become one array, probed through the primary key,
# where IN planned a semi-join over the table; measured with pg_stat_statements in benchmarks/messaging_throughput.py,
# the claim fell from 9.6 to 3.6 µs of PostgreSQL time per event.
_CLAIM_BATCH = """
DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
RETURNING id, topic, key, headers, value
"""
# The leader's claim: it alone publishes (it holds the advisory lock), so locking every row before deleting it only
# wrote each row twice to the WAL (a lock record, then the delete: 120 instead of 67 bytes per row, and 4.3 against
# 3.6 µs of PostgreSQL time per event, measured with pg_stat_statements). Should anything else be deleting the same
# rows (a `drain()` beside it), the DELETE waits for it and skips what it took: never sent twice, never lost.
_CLAIM_BATCH_AS_LEADER = """
DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM outbox ORDER BY id LIMIT $1))
RETURNING id, topic, key, headers, value
"""


def _leader_lock_key(service: str) -> int:
    return advisory_lock_key(f"outbox-relay:{service}".encode())


@dataclass
class OutboxRelay:
    """Publishes outbox rows to Kafka in id order, then deletes them.

    Several replicas are safe: one holds a PostgreSQL advisory lock and publishes (which keeps each
    aggregate's events in commit order on its partition); the others wait and take over within
    `standby_poll_seconds` if the leader's connection goes away. Rows are claimed by deleting them in a
    transaction that stays open until the broker acknowledged them, so anything else deleting the same rows
    (a `drain()`, which claims with FOR UPDATE SKIP LOCKED) skips them or waits and then skips them: no row is
    sent by two relays. Delivery is at least once: a crash after send but before the commit re-sends the batch,
    and consumers' inboxes make that harmless.
    """

    engine: AsyncEngine
    producer: AIOKafkaProducer
    service: str
    batch_size: int = 500
    poll_interval: float = 0.5
    standby_poll_seconds: float = 1.0
    max_backoff: float = 5.0
    publish_timeout: float = 30.0
    producer_factory: Callable[[], AIOKafkaProducer] | None = None
    _retired: set[asyncio.Task[None]] = field(default_factory=set)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    is_leader: bool = False
    _backlog_counted_at: float = -BACKLOG_REFRESH_SECONDS

    async def publish_batch(self, connection: asyncpg.Connection[Any] | None = None) -> int:
        """Claim up to batch_size rows, send them, delete them; returns how many were published.

        One statement claims and deletes the rows (FOR UPDATE SKIP LOCKED); its transaction stays open until the
        broker has acknowledged every record, so a failed send rolls the delete back and the rows stay. The
        statement goes straight to asyncpg: through SQLAlchemy's row processing it cost a fifth of the relay's CPU.
        The leader passes its own connection (the one holding the advisory lock) and claims without row locks
        (`_CLAIM_BATCH_AS_LEADER`); without one, a pooled connection is checked out for the batch and the rows are
        claimed with FOR UPDATE SKIP LOCKED.
        """
        if connection is not None:
            return await self._publish_on(connection, _CLAIM_BATCH_AS_LEADER)
        async with self.engine.connect() as sa_connection:
            raw = (await sa_connection.get_raw_connection()).driver_connection
            assert raw is not None
            return await self._publish_on(raw, _CLAIM_BATCH)

    async def _publish_on(self, connection: asyncpg.Connection[Any], claim: str) -> int:
        async with connection.transaction():
            rows = await connection.fetch(claim, self.batch_size)
            if not rows:
                return 0
            rows.sort(key=lambda row: row[0])  # RETURNING has no order; send in id (commit) order
            await asyncio.wait_for(self._send_all(rows), self.publish_timeout)
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        OUTBOX_BATCH_ROWS.labels(self.service).observe(len(rows))
        return len(rows)

    async def _send_all(self, rows: Sequence[asyncpg.Record]) -> None:
        """Send rows as whole record batches per partition (in id order within each partition).

        Building batches ourselves costs far less per record than one `send()` each (measured in
        benchmarks/messaging_throughput.py); partitions are those of aiokafka's DefaultPartitioner (the murmur2
        hash Java clients use), computed for the whole batch at once, so keys land where `send()` puts them.
        """
        by_topic: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            by_topic.setdefault(row[1], []).append(index)
        builders: dict[tuple[str, int], Any] = {}
        deliveries: list[asyncio.Future[Any]] = []
        for topic, indexes in by_topic.items():
            keys = [rows[i][2].encode() for i in indexes]
            partitions = partitions_for_keys(keys, sorted(await self.producer.partitions_for(topic)))
            for index, key, partition in zip(indexes, keys, partitions, strict=True):
                _, _, _, headers_json, value = rows[index]
                headers = [(name, text_value.encode()) for name, text_value in orjson.loads(headers_json).items()]
                builder = builders.get((topic, partition))
                if builder is None:
                    builder = builders[(topic, partition)] = self.producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    # The batch is full: submit it and start the next one for this partition.
                    deliveries.append(await self.producer.send_batch(builder, topic, partition=partition))
                    builder = builders[(topic, partition)] = self.producer.create_batch()
                    builder.append(key=key, value=value, timestamp=None, headers=headers)
        for (topic, partition), builder in builders.items():
            deliveries.append(await self.producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*deliveries)

    async def _replace_producer(self) -> None:
        """After a failed batch, start over with a fresh producer: a client stuck on a dead connection
        must not hold the outbox hostage. The old one is stopped in the background (it may hang)."""
        if self.producer_factory is None:
            return
        old, self.producer = self.producer, self.producer_factory()
        self._retired.add(asyncio.create_task(_stop_quietly(old)))
        self._retired = {t for t in self._retired if not t.done()}
        with contextlib.suppress(Exception):  # still down: the next batch fails and we come back here
            await asyncio.wait_for(self.producer.start(), self.publish_timeout)

    async def drain(self) -> int:
        """Publish until the outbox is empty (used by tests and by `run`)."""
        total = 0
        while (n := await self.publish_batch()) > 0:
            total += n
        return total

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Lead when possible, publish while leading, back off while the broker or database is down."""
        dsn = asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))
        backoff = 0.1
        while not self._stopping.is_set():
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(dsn)
                await self._lead(conn)
                backoff = 0.1
            # SQLAlchemyError: the backlog count goes through the engine's pool, where a lost database surfaces as
            # SQLAlchemy's OperationalError rather than asyncpg's or the OS's error.
            except (TimeoutError, OSError, asyncpg.PostgresError, SQLAlchemyError) as exc:
                log.warning("outbox relay lost its database connection", error=str(exc))
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                self.is_leader = False
                # Without its connection this relay cannot count the backlog: its last count, frozen, would outvote
                # the live counts of the others in `max by (service)`. It counts again once it is back as a standby.
                OUTBOX_BACKLOG.remove(self.service)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def _lead(self, conn: asyncpg.Connection[Any]) -> None:
        key = _leader_lock_key(self.service)
        while not self._stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                break
            # A standby counts too, so every replica reports the live backlog: a former leader's last count does not
            # linger beside the leader's, and rows still show (and alert) while no replica can take the lock.
            with contextlib.suppress(SQLAlchemyError, OSError):  # its lock poll meets a lost database next
                await self._refresh_backlog()
            await self._sleep(self.standby_poll_seconds)
        if self._stopping.is_set():
            return
        self.is_leader = True
        log.info("outbox relay leading", service=self.service)
        await conn.add_listener(OUTBOX_NOTIFY_CHANNEL, lambda *_: self._wakeup.set())
        backoff = 0.1
        while not self._stopping.is_set():
            if conn.is_closed():
                raise OSError("relay leader connection closed")
            self._wakeup.clear()
            # Every round, not only when the relay has caught up: the backlog matters most while batches run full or
            # the broker is down, and it is counted at most once a second.
            await self._refresh_backlog()
            try:
                # On the leader's own connection: no pool checkout and liveness ping per batch (8 % of the relay's
                # CPU at 100-row batches, profiled in benchmarks/messaging_throughput.py).
                published = await self.publish_batch(conn)
                backoff = 0.1
            except (OSError, asyncpg.PostgresError):
                raise
            except Exception as exc:  # broker down, timeouts: keep the rows, retry with jittered backoff
                OUTBOX_PUBLISH_ERRORS.labels(self.service).inc()
                log.warning("outbox publish failed; will retry", error=repr(exc), backoff=backoff)
                await self._replace_producer()
                await self._sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if published < self.batch_size:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)

    async def _refresh_backlog(self) -> None:
        # count(*) walks the whole table; once a second is plenty for a gauge scraped every few seconds.
        now = time.monotonic()
        if now - self._backlog_counted_at < BACKLOG_REFRESH_SECONDS:
            return
        self._backlog_counted_at = now
        async with self.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        OUTBOX_BACKLOG.labels(self.service).set(count)

    async def _sleep(self, seconds: float) -> None:
        await pause_unless_stopped(self._stopping, seconds)
