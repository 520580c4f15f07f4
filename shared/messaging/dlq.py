"""Inspect and replay dead letters.

    python -m shared.messaging.dlq list   --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq [--json]
    python -m shared.messaging.dlq replay --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq [--at P:O ...]

Replay republishes the original bytes and headers (without the dlq_* ones) to the original topic.
Replaying is safe to repeat: the consumers' inbox ignores an event id that was already applied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.events.registry import DEAD_LETTER_SUFFIX
from shared.messaging.kafka import make_producer, read_topic_to_end
from shared.settings import KafkaSettings, describe_settings_error


class Position(NamedTuple):
    """Where a dead letter is: offsets count per partition, so an offset alone names one letter per partition."""

    partition: int
    offset: int


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    original_topic: str
    reason: str
    error_type: str
    error: str
    attempts: int
    consumer: str
    failed_at: str
    event_id: str | None
    event_type: str | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("headers")
        data["value"] = self.value[:500].decode(errors="replace")
        return data


class NotADeadLetterTopicError(ValueError):
    """The topic named is not a dead-letter topic: replaying it would republish every event on it."""


def require_dead_letter_topic(topic: str) -> None:
    if not topic.endswith(DEAD_LETTER_SUFFIX):
        raise NotADeadLetterTopicError(
            f"{topic!r} is not a dead-letter topic (those end in {DEAD_LETTER_SUFFIX}, e.g. {topic}{DEAD_LETTER_SUFFIX})"
        )


async def read_dead_letters(
    bootstrap: str, topic: str, limit: int = 1000, *, settings: KafkaSettings | None = None
) -> list[DeadLetter]:
    """Read a dead-letter topic from the start without joining a group (inspection changes nothing)."""
    require_dead_letter_topic(topic)
    records = await read_topic_to_end(bootstrap, topic, limit=limit, settings=settings)
    return [_dead_letter(topic, r) for r in records]


def _dead_letter(topic: str, r: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    h = {k: v.decode(errors="replace") for k, v in r.headers}
    return DeadLetter(
        partition=r.partition,
        offset=r.offset,
        key=r.key.decode(errors="replace") if r.key else None,
        original_topic=h.get("dlq_original_topic", topic.removesuffix(".dlq")),
        reason=h.get("dlq_reason", "?"),
        error_type=h.get("dlq_error_type", "?"),
        error=h.get("dlq_error", ""),
        attempts=int(h.get("dlq_attempts", "0") or 0),
        consumer=h.get("dlq_consumer", "?"),
        failed_at=h.get("dlq_failed_at", ""),
        event_id=h.get("ce_id"),
        event_type=h.get("ce_type"),
        value=r.value or b"",
        headers=list(r.headers),
    )


class UnknownDeadLetterError(LookupError):
    """A position asked for holds no dead letter; nothing was replayed."""


def parse_position(text: str) -> Position:
    """``PARTITION:OFFSET`` as ``dlq list`` prints it; an offset alone names nothing (each partition has its own)."""
    partition, colon, offset = text.partition(":")
    if not colon or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (e.g. 0:17, as `dlq list` shows it)")
    return Position(int(partition), int(offset))


async def replay_dead_letters(
    bootstrap: str,
    topic: str,
    positions: Collection[Position] | None = None,
    *,
    settings: KafkaSettings | None = None,
) -> list[DeadLetter]:
    """Republish dead letters (all, or those at the given positions) to their original topics.

    Raises UnknownDeadLetterError, replaying nothing, when a given position holds no dead letter (a typo must not
    pass for a replay)."""
    letters = await read_dead_letters(bootstrap, topic, limit=1_000_000, settings=settings)  # refuses a non-DLQ
    if positions is not None:
        wanted = set(positions)
        letters = [d for d in letters if Position(d.partition, d.offset) in wanted]
        missing = wanted - {Position(d.partition, d.offset) for d in letters}
        if missing:
            names = ", ".join(f"{p.partition}:{p.offset}" for p in sorted(missing))
            raise UnknownDeadLetterError(f"no dead letter at {names} in {topic}; nothing replayed")
    producer = make_producer(bootstrap, client_id="mentorloom-dlq-replay", settings=settings)
    await producer.start()
    try:
        sent = [
            await producer.send(
                d.original_topic,
                d.value,
                key=d.key.encode() if d.key else None,
                headers=[(k, v) for k, v in d.headers if not k.startswith("dlq_")],
            )
            for d in letters
        ]
        # Each delivery's own outcome: flush() only waits, so a record the broker refused would pass for replayed.
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return letters


def _position_argument(text: str) -> Position:
    try:
        return parse_position(text)
    except ValueError as error:  # argparse shows an ArgumentTypeError's message, not a ValueError's
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.messaging.dlq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="the dead-letter topic, e.g. mentorloom.profiles.v1.dlq")
    parser.add_argument(
        "--at",
        type=_position_argument,
        action="append",
        metavar="PARTITION:OFFSET",
        help="replay only the dead letters at these positions, as `list` shows them (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        require_dead_letter_topic(args.topic)
    except NotADeadLetterTopicError as error:
        parser.error(str(error))  # exits 2, as for any other bad argument
    try:  # the brokers' TLS/SASL, from the MENTORLOOM_KAFKA_* variables the services read
        settings = KafkaSettings()
    except ValidationError as error:
        parser.error(f"invalid Kafka settings:\n{describe_settings_error(error)}")
    if args.command == "list":
        letters = asyncio.run(read_dead_letters(args.bootstrap, args.topic, settings=settings))
        if args.json:
            json.dump([d.summary() for d in letters], sys.stdout, indent=2)
            print()
        else:
            for d in letters:
                print(
                    f"{d.partition}:{d.offset}\t{d.reason}\t{d.event_type or '-'}\t{d.event_id or '-'}\t{d.error_type}: {d.error[:120]}"
                )
            print(f"{len(letters)} dead letter(s) in {args.topic}")
        return 0
    try:
        letters = asyncio.run(replay_dead_letters(args.bootstrap, args.topic, args.at, settings=settings))
    except UnknownDeadLetterError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"replayed {len(letters)} dead letter(s) from {args.topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
