"""Follow the event stream of a running stack: `mentorloom events tail`, the demo's summary and the e2e test use it.

Reads with its own throw-away consumer (no consumer group: partitions are assigned locally, nothing is committed),
so tailing never steals messages from the services' groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from jsonschema import Draft202012Validator

from shared.events.envelope import EventDecodeError, EventEnvelope, decode
from shared.events.models import EventData
from shared.events.registry import TOPICS
from shared.messaging.kafka import client_options, seek_past_the_last_record
from shared.settings import KafkaSettings

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "docs" / "events" / "schemas"


@dataclass(frozen=True)
class StreamRecord:
    """One Kafka record of an event topic, decoded when it is a valid event of the catalogue."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes | None
    envelope: EventEnvelope[EventData] | None
    error: str | None

    @property
    def ce_type(self) -> str:
        return self.envelope.type if self.envelope else self.headers.get("ce_type", "?")

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view: CloudEvents attributes plus the data as published."""
        data: Any = None
        if self.value:
            with contextlib.suppress(ValueError):
                data = json.loads(self.value)
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "id": str(self.envelope.id) if self.envelope else self.headers.get("ce_id"),
            "type": self.ce_type,
            "time": self.envelope.time.isoformat() if self.envelope else self.headers.get("ce_time"),
            "subject": self.envelope.subject if self.envelope else self.headers.get("ce_subject"),
            "tenant": str(self.envelope.tenant_id) if self.envelope else self.headers.get("ce_tenantid"),
            "error": self.error,
            "data": data,
        }


@cache
def schema_validator(ce_type: str) -> Draft202012Validator | None:
    """The validator of the committed JSON Schema `docs/events/schemas/<ce_type>.json` (None if there is none)."""
    path = SCHEMAS_DIR / f"{ce_type}.json"
    if not path.exists():
        return None
    return Draft202012Validator(json.loads(path.read_text()))


def schema_errors(record: StreamRecord) -> list[str]:
    """Why the record's data does not validate against its committed JSON Schema (empty when it does)."""
    validator = schema_validator(record.ce_type)
    if validator is None:
        return [f"no committed schema for type {record.ce_type!r}"]
    try:
        data = json.loads(record.value or b"")
    except ValueError as exc:
        return [f"value is not JSON: {exc}"]
    return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(data)]


def to_record(message: Any) -> StreamRecord:
    headers = [(k, v) for k, v in (message.headers or ())]
    text_headers = {k: v.decode("utf-8", "replace") for k, v in headers if v is not None}
    envelope: EventEnvelope[EventData] | None = None
    error: str | None = None
    try:
        envelope = decode(headers, message.value)
    except EventDecodeError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return StreamRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", "replace") if message.key else None,
        headers=text_headers,
        value=message.value,
        envelope=envelope,
        error=error,
    )


async def follow(
    bootstrap: str,
    topics: Iterable[str] = TOPICS,
    *,
    from_beginning: bool = False,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    poll_ms: int = 500,
    settings: KafkaSettings | None = None,
) -> AsyncIterator[StreamRecord]:
    """Records of `topics` as they arrive (from the start of each partition with `from_beginning`), until `stop`;
    `ready` is set once the consumer is positioned (what is published from then on is shown); `settings`: the
    brokers' TLS/SASL."""
    wanted = list(topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        **client_options(settings),
    )
    try:
        await consumer.start()  # inside: a broker that cannot be reached still leaves a closed consumer
        await consumer.topics()  # loads the cluster metadata, so every partition of the topics is known
        partitions = [
            TopicPartition(topic, p) for topic in wanted for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await seek_past_the_last_record(consumer, partitions)
        if ready is not None:
            ready.set()
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=poll_ms)
            for batch in batches.values():
                for message in batch:
                    yield to_record(message)
    finally:
        await consumer.stop()


def data_highlights(record: StreamRecord, limit: int = 4) -> str:
    """A few telling fields of the data (ids and states), for the one-line view."""
    if record.envelope is None:
        return record.error or ""
    data = record.envelope.data.model_dump(mode="json")
    picked = [
        f"{key}={value}"
        for key, value in data.items()
        if key not in {"tenant_id", "program_id"}
        and isinstance(value, str | int | float | bool)
        and (key.endswith(("_id", "state", "status", "reason", "score", "kind", "role")) or key == "version")
    ]
    return " ".join(picked[:limit])
