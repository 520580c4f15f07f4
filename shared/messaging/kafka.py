"""Kafka clients configured the one way the project uses them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import KafkaSettings

DEFAULT_PARTITIONS = 6


class UnknownTopicError(LookupError):
    """The broker has no topic of that name (a reader told to require it: an empty read would pass for an empty
    topic)."""

    def __init__(self, topic: str, known: Collection[str]) -> None:
        super().__init__(f"the broker has no topic {topic!r}")
        self.topic = topic
        self.known = frozenset(known)


def client_options(settings: KafkaSettings | None) -> dict[str, Any]:
    """The keyword arguments that make an aiokafka client (producer, consumer, admin, bare client) use the brokers'
    security protocol: TLS context, SASL mechanism and credentials. None (the embedded broker, the benchmarks) and
    PLAINTEXT add nothing: aiokafka's defaults are PLAINTEXT."""
    if settings is None:
        return {}
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol.value}
    if protocol.uses_tls:
        options["ssl_context"] = settings.kafka_ssl_context()
    if protocol.uses_sasl:
        # The settings refuse a SASL protocol without all three; aiokafka calls SCRAM's credentials "plain" too.
        assert settings.kafka_sasl_mechanism is not None
        assert settings.kafka_sasl_password is not None
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism.value
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def make_producer(
    bootstrap: str,
    *,
    enable_idempotence: bool = False,
    client_id: str = "mentorloom",
    settings: KafkaSettings | None = None,
) -> AIOKafkaProducer:
    """acks=all, bounded batching, zstd-compressed batches. Idempotence is off by default because the embedded
    Tansu broker lacks InitProducerId; duplicates from producer retries are absorbed by the consumers' inbox.

    zstd (level 3, Kafka's default) because event JSON compresses many-fold at little CPU. Measured on a 170-event
    batch of MatchProposed: zstd 0.6 µs per event to compress, 0.3 to decompress, 48× smaller; aiokafka's lz4 runs
    at level 9 (LZ4 HC, not tunable through its API): 2.5 µs and 21×; none: the broker's CPU per event was 10–15 µs
    instead of 2–3 (benchmarks/messaging_throughput.py). ``settings``: the brokers' security (client_options)."""
    return AIOKafkaProducer(
        **client_options(settings),
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=enable_idempotence,
        linger_ms=5,
        compression_type="zstd",
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = DEFAULT_PARTITIONS,
    *,
    settings: KafkaSettings | None = None,
) -> None:
    """Create missing topics (idempotent). Production creates them as Strimzi KafkaTopic resources instead."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def broker_reachable(
    bootstrap: str, limit_seconds: float = 2.0, *, settings: KafkaSettings | None = None
) -> None:
    """Raise unless the broker answers a metadata request (used by /readyz)."""
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(limit_seconds * 1000), **client_options(settings)
    )
    try:
        await asyncio.wait_for(client.bootstrap(), limit_seconds)
    finally:
        await client.close()


async def stream_topic_to_end(
    bootstrap: str,
    topic: str,
    *,
    chunk_size: int = 500,
    limit_seconds: float = 60.0,
    settings: KafkaSettings | None = None,
    require_topic: bool = False,
    starts: Mapping[int, int | None] | None = None,
) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
    """Every record a topic held when reading started, in chunks of at most ``chunk_size`` records of one partition,
    by partition and offset, without joining a group (reading changes nothing). Only one chunk is held at a time, so
    memory does not grow with the topic. Close the iterator (``contextlib.aclosing``) when stopping early.

    Each partition's end is fixed first, as the high watermark a fetch reports (seek_past_the_last_record): Tansu
    answers the end-offset request with the last record batch's base offset + 1, not the last offset + 1, and a reader
    that stopped there, taking 500 records at a time, listed 500 of 550 dead letters. Records added while reading
    are left out: a replay whose letters are dead-lettered again must not read them again, and so never end. Raises
    TimeoutError when ``limit_seconds`` pass waiting for the broker (the time the caller spends on a chunk does not
    count). ``require_topic``: raise UnknownTopicError when the broker has no such topic (else it reads as empty).
    ``starts``: where to begin in each partition it names (an offset, or None: not at all), each seeked to, so that
    what lies before is not fetched; the partitions it does not name are read from their beginning.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    first = starts or {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        # A start the broker no longer holds (retention deleted it): from the first it holds, not past them all.
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    try:
        await consumer.start()  # inside: a broker that cannot be reached still leaves a closed consumer
        known = await consumer.topics()  # the cluster's metadata, which partitions_for_topic reads
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        partitions = [TopicPartition(topic, p) for p in numbers if first.get(p, 0) is not None]
        if require_topic and topic not in known:
            raise UnknownTopicError(topic, known)
        if not partitions:
            return
        consumer.assign(partitions)
        await seek_past_the_last_record(consumer, partitions, limit_seconds=limit_seconds)
        ends = {partition: await consumer.position(partition) for partition in partitions}
        from_beginning = [partition for partition in partitions if not first.get(partition.partition)]
        if from_beginning:
            await consumer.seek_to_beginning(*from_beginning)
        for partition in partitions:
            if offset := first.get(partition.partition):
                consumer.seek(partition, offset)
        for partition in partitions:
            deadline = time.monotonic() + limit_seconds
            while await consumer.position(partition) < ends[partition]:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{partition.topic}[{partition.partition}] not read to offset {ends[partition]} in time"
                    )
                batch = await consumer.getmany(partition, timeout_ms=500, max_records=chunk_size)
                chunk = [r for r in batch.get(partition, []) if r.offset < ends[partition]]
                if chunk:
                    yield chunk
                    deadline = time.monotonic() + limit_seconds
    finally:
        await consumer.stop()


async def read_topic_to_end(
    bootstrap: str,
    topic: str,
    *,
    limit: int | None = None,
    limit_seconds: float = 60.0,
    settings: KafkaSettings | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``limit`` (default: all) records of stream_topic_to_end, in one list: for topics known to be small."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    chunks = stream_topic_to_end(bootstrap, topic, limit_seconds=limit_seconds, settings=settings)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            records.extend(chunk)
            if limit is not None and len(records) >= limit:
                break
    return records[:limit]


async def seek_past_the_last_record(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, limit_seconds: float = 30.0
) -> None:
    """Position each partition after its last record, as ``seek_to_end`` does on Apache Kafka.

    On Tansu ``seek_to_end`` alone leaves the consumer inside the last record batch (see stream_topic_to_end), to read
    records that were there before it started. One fetch reports each partition's true end, its high watermark; what
    that fetch returned is dropped, so the consumer starts at the end as of that fetch.
    """
    await consumer.seek_to_end(*partitions)
    # Tansu's wrong end is a batch's base offset + 1, never 0: a partition said to end at 0 is empty and already at
    # its end. Fetching it would wait the broker's whole fetch_max_wait_ms for records that are not there.
    unsure = [partition for partition in partitions if await consumer.position(partition) > 0]
    deadline = time.monotonic() + limit_seconds
    while any(consumer.highwater(p) is None for p in unsure):  # until a fetch has answered for every partition
        if time.monotonic() > deadline:
            raise TimeoutError(f"no fetch answered for {len(unsure)} partition(s) in {limit_seconds} s")
        # A short poll: a fetch that brings no records sets the high watermark without waking getmany.
        await consumer.getmany(*unsure, timeout_ms=20)
    for partition in unsure:
        highwater = consumer.highwater(partition)
        if highwater is not None and highwater > await consumer.position(partition):
            consumer.seek(partition, highwater)
