"""Idempotent consumers: inbox row + effect in one transaction, offsets committed after it.

Guarantees (each proven by a test in tests/messaging/ against the real servers):
- a redelivered event has exactly one effect: the inbox primary key (consumer, event_id) is inserted in
  the same transaction as the handler's writes, so a duplicate finds the row and is skipped;
- offsets are committed only after that transaction commits, so a crash in between redelivers the
  batch and the inbox absorbs it;
- an event whose handler keeps failing is retried with backoff a bounded number of times, then goes
  to `<topic>.dlq` with the error in its headers, and the consumer moves on; undecodable or
  schema-invalid messages go there at once;
- database or broker outages are not the event's fault: they are retried without limit and never
  dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import driver_connection
from shared.events.registry import dead_letter_topic
from shared.ids import id_text
from shared.messaging.kafka import client_options, make_producer
from shared.observability import (
    CONSUMER_BATCH_RECORDS,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_DUPLICATE,
    EVENTS_HANDLED,
    HANDLER_ERRORS,
)
from shared.periodic import pause_unless_stopped
from shared.settings import KafkaSettings
from shared.tracing import child_traceparent, reset_traceparent, set_traceparent

log = structlog.get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


class Envelope(Protocol):
    @property
    def id(self) -> object: ...  # a UUID for contract events; compared by its string form
    @property
    def type(self) -> str: ...
    @property
    def traceparent(self) -> str | None: ...


E = TypeVar("E", bound=Envelope)
Decoder = Callable[[Headers, bytes | None], E]
Handler = Callable[[AsyncSession, E], Awaitable[None]]
# A batch handler gets the new events of a fetched batch a slice (APPLY_SLICE) at a time, every call in the batch's
# one transaction, so it can write with one statement per slice instead of one per event: the high-throughput path.
BatchHandler = Callable[[AsyncSession, Sequence[E]], Awaitable[None]]


# Events decoded and applied at a time within a batch's single transaction. A decoded MatchProposed is ~7 KB of
# Python objects: decoding a whole 1,000-event batch while the previous one is still held misses the core's cache,
# 20 µs per event against 16-18 in slices of 250 (benchmarks/consumer_decode.py). Slices keep that working set small
# while the batch keeps one transaction and one offset commit; each slice costs one inbox statement and one handler
# call more (smaller slices decode faster still, and lose it again there).
APPLY_SLICE = 250
# Records decoded between two yields to the slice being applied (~1 ms of CPU).
DECODE_STEP = 50
# How often the lag gauge is recomputed from the broker, apart from batches: a consumer stuck in a batch commits
# nothing, so only this keeps its lag following the partitions' ends (and the lag alert honest).
LAG_REFRESH_SECONDS = 5.0


# Where a handler's after-commit actions wait, in the session's `info` dict: the runner looks once per transaction,
# so a batch registering none costs one dict lookup and a record nothing.
_AFTER_COMMIT = "consumer_after_commit"
AfterCommitAction = Callable[[], Awaitable[object]]


def run_after_commit(session: AsyncSession, action: AfterCommitAction) -> None:
    """Run `action` once the consumer transaction `session` belongs to has committed; never if it rolls back.

    For work outside the database that must not run while the batch holds its row locks (a Redis scan) or must not
    happen for a rolled-back batch. An action failing is logged, not raised: the batch stands and is not redelivered,
    so the action must be one that may be lost (a cache clean-up, not a state change)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def run_after_commit_actions(session: AsyncSession, consumer: str = "") -> None:
    """The actions registered on `session` (with :func:`run_after_commit`), in order, each failure logged; call it
    once the session's transaction has committed (the runner does; a test driving a handler by hand may)."""
    actions: list[AfterCommitAction] | None = session.info.pop(_AFTER_COMMIT, None)
    for action in actions or ():
        try:
            await action()
        except Exception as exc:  # the committed batch stands: an action may be lost, never redeliver it
            log.warning("after-commit action failed", consumer=consumer, error=repr(exc))


class InfrastructureUnavailableError(Exception):
    """The database or broker is down: retry forever, never blame the event."""


def _is_infrastructure_error(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | OSError | asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, InfrastructureUnavailableError)


_INBOX_INSERT_NEW = "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[])"
_INBOX_INSERT_SKIPPING_SEEN = (
    "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING event_id"
)


class _SeenBeforeError(Exception):
    """The plain inbox insert met an id already there: the batch is redone with ON CONFLICT."""


async def _insert_inbox(
    raw: asyncpg.Connection[Any], consumer: str, event_ids: list[str], *, expect_seen: bool
) -> set[str]:
    """Insert inbox rows in the open transaction; returns the ids not seen before.

    Batches are almost always all new, so the first try is a plain INSERT: ON CONFLICT's speculative insertion costs
    nearly twice as much per row (4.5 against 2.6 µs of PostgreSQL and client time per row, measured on 1,000-row
    batches). An id seen before (a redelivery) or repeated within the batch fails it on the primary key, which
    aborts the transaction: `_SeenBeforeError` makes the caller roll back and redo the batch with `expect_seen`, where
    ON CONFLICT DO NOTHING inserts what is new and says which ids those are. No savepoint guards the fast path:
    its two extra round trips were paid by every batch for the rare redelivered one. PostgreSQL's log shows each
    fallback as a duplicate-key ERROR (without the ids): expected after a redelivery, not a fault.
    Straight on the asyncpg connection: SQLAlchemy's statement and row handling for a thousand-id array cost more
    than the insert itself.
    """
    if expect_seen:
        return {row[0] for row in await raw.fetch(_INBOX_INSERT_SKIPPING_SEEN, consumer, event_ids)}
    try:
        await raw.execute(_INBOX_INSERT_NEW, consumer, event_ids)
    except asyncpg.UniqueViolationError as error:
        raise _SeenBeforeError from error
    return set(event_ids)


_PRUNE_INBOX_BATCH = """
DELETE FROM inbox WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM inbox WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED
))
"""


async def prune_inbox(engine: AsyncEngine, older_than: datetime, batch_size: int = 5_000) -> int:
    """Delete inbox rows received before `older_than`, in short transactions; returns how many went.

    The inbox only has to remember an event as long as the broker can redeliver it, so rows older than the
    topics' retention are dead weight. Bounded batches keep locks and WAL bursts small, and SKIP LOCKED lets
    several consumer replicas prune at once without waiting on each other.
    """
    total = 0
    while True:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            status = await raw.execute(_PRUNE_INBOX_BATCH, older_than, batch_size)
        deleted = int(status.rsplit(" ", 1)[-1])
        total += deleted
        if deleted < batch_size:
            return total


@dataclass
class ConsumerRunner(Generic[E]):
    """Runs one consumer group: fetch a bounded batch, apply it in one transaction, commit offsets."""

    name: str  # consumer group id and inbox consumer name
    topics: Sequence[str]
    bootstrap: str
    sessions: async_sessionmaker[AsyncSession]
    handler: Handler[E] | None
    decode: Decoder[E]
    batch_handler: BatchHandler[E] | None = None
    batch_size: int = 500
    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    session_timeout_ms: int = 10_000
    fetch_max_wait_ms: int = 100  # how long the broker may hold a fetch for data: bounds idle latency
    kafka_settings: KafkaSettings | None = None  # the brokers' TLS/SASL (None: PLAINTEXT)
    lag_refresh_seconds: float = LAG_REFRESH_SECONDS
    consumer: AIOKafkaConsumer | None = None
    _producer: AIOKafkaProducer | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    assigned: asyncio.Event = field(default_factory=asyncio.Event)  # set once this member owns partitions
    # Between a revoke and the next assignment, assignment() still names the old partitions: a lag refresh finishing
    # then (or begun before the revoke) must not bring their series back.
    _rebalancing: bool = False
    _rebalances: int = 0

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")

    def stop(self) -> None:
        """Graceful stop: the batch in flight finishes and its offsets are committed."""
        self._stopping.set()

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.name,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=min(3000, self.session_timeout_ms // 3),
            **client_options(self.kafka_settings),
        )
        self._producer = make_producer(self.bootstrap, client_id=f"{self.name}-dlq", settings=self.kafka_settings)
        await self._producer.start()
        await self.consumer.start()
        self.consumer.subscribe(
            list(self.topics),
            listener=_FinishBatchBeforeRevoke(self._batch_lock, self.assigned, self._partitions_moving),
        )
        self.started.set()
        refreshing = asyncio.create_task(self._refresh_lag_periodically())
        try:
            while not self._stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                records = [r for part in batches.values() for r in part]
                if records:
                    await self._apply_and_commit(records)
        finally:
            refreshing.cancel()
            with contextlib.suppress(BaseException):
                await refreshing
            self._forget_lag(self.consumer.assignment())  # a stopped member reports no partition
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()

    def _decode_all(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[tuple[ConsumerRecord[bytes, bytes], E]], list[tuple[ConsumerRecord[bytes, bytes], Exception]]]:
        """Every record with its decoded event, and the undecodable ones (the one-by-one fallback's input)."""
        decoded: list[tuple[ConsumerRecord[bytes, bytes], E]] = []
        undecodable: list[tuple[ConsumerRecord[bytes, bytes], Exception]] = []
        for record in records:
            try:
                decoded.append((record, self.decode(record.headers, record.value)))
            except Exception as exc:  # undecodable or schema-invalid: no retry can fix the bytes
                undecodable.append((record, exc))
        return decoded, undecodable

    async def _apply_and_commit(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        async with self._batch_lock:
            await self.process(records)
            offsets = await self._commit(records)
        self._update_lag(offsets)
        CONSUMER_BATCH_RECORDS.labels(self.name).observe(len(records))

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply a batch and dead-letter what cannot be decoded, without committing offsets (the runner commits
        them after this; tools and tests drive a consumer by hand with it)."""
        for record, exc in await self._apply_batch(records):
            await self._dead_letter(record, exc, attempts=0, reason="undecodable")

    async def _apply_batch(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> list[tuple[ConsumerRecord[bytes, bytes], Exception]]:
        """One transaction for the whole batch; on a handler failure, one by one to isolate the culprit.

        Returns the records that could not be decoded: they go to the dead-letter topic after the transaction.
        """
        undecodable: list[tuple[ConsumerRecord[bytes, bytes], Exception]] = []

        async def attempt(expect_seen: bool) -> None:
            undecodable.clear()  # an attempt rolled back decodes the batch again
            await self._decode_and_apply(records, undecodable, expect_seen)

        try:
            try:
                await self._with_infrastructure_retry(lambda: attempt(False))
            except _SeenBeforeError:
                await self._with_infrastructure_retry(lambda: attempt(True))
        except InfrastructureUnavailableError:
            raise  # stopping while the database is down: the batch is redelivered, never blamed
        except Exception:
            decoded, undecodable = self._decode_all(records)
            for record, event in decoded:
                await self._apply_one_with_retries(record, event)
        return undecodable

    async def _decode_and_apply(
        self,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        undecodable: list[tuple[ConsumerRecord[bytes, bytes], Exception]],
        expect_seen: bool,
    ) -> None:
        """Decode the batch slice by slice in its one transaction, each slice's statements beside the next's decoding.

        While slice k is decoded (CPU), slice k-1's inbox insert and handler run in a task (waiting on PostgreSQL);
        the decoding yields to that task every DECODE_STEP records so each reply is answered at once. Without
        this the consumer sat idle for every statement of the batch (a fifth of its time, measured).
        """
        handled: Counter[str] = Counter()
        async with self.sessions() as session, session.begin():
            raw = await driver_connection(session)
            previous: asyncio.Task[None] | None = None
            try:
                for start in range(0, len(records), APPLY_SLICE):
                    events: list[E] = []
                    for step in range(start, min(start + APPLY_SLICE, len(records)), DECODE_STEP):
                        self._decode_into(records[step : step + DECODE_STEP], events, undecodable)
                        if previous is not None and not previous.done():
                            await asyncio.sleep(0)
                    if previous is not None:
                        await previous
                        previous = None
                    if events:
                        previous = asyncio.create_task(self._apply_slice(session, raw, events, expect_seen, handled))
                    del events  # the task holds the slice; it goes once applied
                if previous is not None:
                    await previous
            finally:
                if previous is not None and not previous.done():
                    previous.cancel()
                    with contextlib.suppress(BaseException):
                        await previous
        if _AFTER_COMMIT in session.info:
            await run_after_commit_actions(session, self.name)
        self._count_handled(handled)

    def _decode_into(
        self,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        events: list[E],
        undecodable: list[tuple[ConsumerRecord[bytes, bytes], Exception]],
    ) -> None:
        decode = self.decode
        for record in records:
            try:
                events.append(decode(record.headers, record.value))
            except Exception as exc:  # undecodable or schema-invalid: no retry can fix the bytes
                undecodable.append((record, exc))

    async def _apply_one(self, event: E) -> None:
        """One event in a transaction of its own, to isolate a failing handler; it may be a redelivery."""
        handled: Counter[str] = Counter()
        async with self.sessions() as session, session.begin():
            await self._apply_slice(session, await driver_connection(session), [event], True, handled)
        if _AFTER_COMMIT in session.info:
            await run_after_commit_actions(session, self.name)
        self._count_handled(handled)

    def _count_handled(self, handled: Counter[str]) -> None:
        # One metric update per event type, not per event: label lookups cost microseconds each.
        for event_type, count in handled.items():
            EVENTS_HANDLED.labels(self.name, event_type).inc(count)

    async def _apply_slice(
        self,
        session: AsyncSession,
        raw: asyncpg.Connection[Any],
        events: Sequence[E],
        expect_seen: bool,
        handled: Counter[str],
    ) -> None:
        ids = [id_text(event.id) for event in events]
        fresh = await _insert_inbox(raw, self.name, ids, expect_seen=expect_seen)
        if len(fresh) < len(ids):
            EVENTS_DUPLICATE.labels(self.name).inc(len(ids) - len(fresh))
        new_events: list[E] = []
        for event_id, event in zip(ids, events, strict=True):
            if event_id in fresh:
                fresh.discard(event_id)  # the same id twice in one batch is applied once
                new_events.append(event)
        if not new_events:
            return
        if self.batch_handler is not None:
            await self.batch_handler(session, new_events)
        else:
            assert self.handler is not None
            for event in new_events:
                token = set_traceparent(child_traceparent(event.traceparent))
                try:
                    await self.handler(session, event)
                finally:
                    reset_traceparent(token)
        handled.update(event.type for event in new_events)

    async def _apply_one_with_retries(self, record: ConsumerRecord[bytes, bytes], event: E) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._with_infrastructure_retry(lambda: self._apply_one(event))
                return
            except Exception as exc:
                HANDLER_ERRORS.labels(self.name, event.type).inc()
                log.warning(
                    "handler failed", consumer=self.name, event_id=str(event.id), attempt=attempt, error=repr(exc)
                )
                if attempt == self.max_attempts:
                    await self._dead_letter(record, exc, attempts=attempt, reason="handler_failed")
                    return
                await self._sleep(min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max))

    async def _with_infrastructure_retry(self, action: Callable[[], Awaitable[None]]) -> None:
        backoff = self.backoff_base
        while True:
            try:
                await action()
                return
            except Exception as exc:
                if not _is_infrastructure_error(exc):
                    raise
                if self._stopping.is_set():
                    raise InfrastructureUnavailableError("stopping while the database is unavailable") from exc
                log.warning("database unavailable; retrying", consumer=self.name, error=repr(exc))
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], exc: BaseException, attempts: int, reason: str
    ) -> None:
        assert self._producer is not None
        headers = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
        headers += [
            ("dlq_reason", reason.encode()),
            ("dlq_error_type", type(exc).__name__.encode()),
            ("dlq_error", str(exc)[:2000].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_consumer", self.name.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        backoff = self.backoff_base
        while True:  # the dead letter must be on the broker before the offset moves past it
            try:
                await self._producer.send_and_wait(
                    dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
                )
                break
            except KafkaError as send_error:
                log.warning("dead-letter publish failed; retrying", error=repr(send_error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        DEAD_LETTERS.labels(self.name, reason).inc()
        log.error("event dead-lettered", consumer=self.name, reason=reason, offset=record.offset, error=str(exc)[:300])

    async def _commit(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
        assert self.consumer is not None
        # The highest offset per partition, keyed by plain tuples: a TopicPartition per record cost 0.3 µs.
        last: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            if record.offset > last.get(key, -1):
                last[key] = record.offset
        offsets = {TopicPartition(topic, partition): offset + 1 for (topic, partition), offset in last.items()}
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The partitions moved to another member mid-batch; it will redeliver and the inbox absorbs it.
            log.info("offset commit skipped after rebalance", consumer=self.name, error=str(exc))
        return offsets

    def _update_lag(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        for tp, next_offset in offsets.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(highwater - next_offset, 0))

    async def _refresh_lag_periodically(self) -> None:
        while not self._stopping.is_set():
            await self._sleep(self.lag_refresh_seconds)
            try:
                await self._refresh_lag()
            except Exception as exc:  # a broker hiccup must not end the refresh: the next round tries again
                log.info("consumer lag refresh failed", consumer=self.name, error=repr(exc))

    async def _refresh_lag(self) -> None:
        """Lag of every owned partition from the broker: its end now against the group's committed offset.

        Asked of the broker, not read from `highwater()`: that is updated only by fetch responses, and aiokafka does
        not fetch a partition whose records still wait in its buffer, which is the case while a batch is stuck.
        On the local stack's Tansu the end is its ListOffsets answer, the last record batch's base offset + 1 (see
        read_topic_to_end), so the lag there can read up to a producer batch low; Apache Kafka answers exactly.
        """
        assert self.consumer is not None
        partitions = list(self.consumer.assignment())
        if not partitions or self._rebalancing:
            return
        rebalances = self._rebalances
        ends = await self.consumer.end_offsets(partitions)
        committed = {tp: await self.consumer.committed(tp) for tp in partitions}
        if any(offset is None for offset in committed.values()):  # nothing committed yet: it starts at the earliest
            starts = await self.consumer.beginning_offsets(partitions)
            committed = {tp: starts[tp] if offset is None else offset for tp, offset in committed.items()}
        if self._rebalancing or rebalances != self._rebalances:
            return  # the partitions moved meanwhile: their series stay removed
        for tp in partitions:
            CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(ends[tp] - committed[tp], 0))

    def _partitions_moving(self, revoked: Iterable[TopicPartition] | None) -> None:
        """Told by the rebalance listener: partitions revoked (their series go), or None once assigned again."""
        self._rebalances += 1
        self._rebalancing = revoked is not None
        if revoked is not None:
            self._forget_lag(revoked)

    def _forget_lag(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this member no longer owns leave the gauge: their new owner reports them."""
        for tp in partitions:
            CONSUMER_LAG.remove(self.name, tp.topic, str(tp.partition))

    async def _sleep(self, seconds: float) -> None:
        await pause_unless_stopped(self._stopping, seconds)


class _FinishBatchBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the batch in flight (and its offset commit) before partitions move to another member, then drops
    their lag series (two members exporting one partition would double it in a sum)."""

    def __init__(
        self,
        lock: asyncio.Lock,
        assigned: asyncio.Event,
        moving: Callable[[Iterable[TopicPartition] | None], None],
    ) -> None:
        self._lock = lock
        self._assigned = assigned
        self._moving = moving

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            pass
        self._moving(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._moving(None)
        if assigned:
            self._assigned.set()
