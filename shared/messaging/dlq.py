"""Inspect and replay dead letters.

    python -m shared.messaging.dlq list   --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq [--json]
                                          [--limit N] [--offset N] [--all]
    python -m shared.messaging.dlq replay --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq [--at P:O ...]

List shows the first 1,000 unless told otherwise, and says how many there are and which it left out.
Replay republishes the original bytes and headers (without the dlq_* ones) to the original topic.
Replaying is safe to repeat: the consumers' inbox ignores an event id that was already applied.
Both read the topic a chunk at a time, so memory does not grow with it (a listing holds the page it shows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import ValidationError

from shared.events.registry import DEAD_LETTER_SUFFIX
from shared.messaging.kafka import make_producer, read_topic_to_end, stream_topic_to_end
from shared.settings import KafkaSettings, describe_settings_error

CHUNK_SIZE = 500  # dead letters held at a time while listing or replaying
PAGE_SIZE = 1000  # dead letters a listing shows unless told otherwise


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


async def stream_dead_letters(
    bootstrap: str, topic: str, *, chunk_size: int = CHUNK_SIZE, settings: KafkaSettings | None = None
) -> AsyncGenerator[list[DeadLetter], None]:
    """The dead letters of a topic in chunks of at most ``chunk_size`` (stream_topic_to_end), without joining a group
    (inspection changes nothing). Close it (``contextlib.aclosing``) when stopping early."""
    require_dead_letter_topic(topic)
    chunks = stream_topic_to_end(bootstrap, topic, chunk_size=chunk_size, settings=settings)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield [_dead_letter(topic, r) for r in chunk]


async def read_dead_letters(
    bootstrap: str, topic: str, limit: int = PAGE_SIZE, *, settings: KafkaSettings | None = None
) -> list[DeadLetter]:
    """The first ``limit`` dead letters of a topic (list_dead_letters also says how many there are)."""
    require_dead_letter_topic(topic)
    records = await read_topic_to_end(bootstrap, topic, limit=limit, settings=settings)
    return [_dead_letter(topic, r) for r in records]


@dataclass(frozen=True)
class DeadLetterPage:
    """Some of a topic's dead letters, and how many it has."""

    topic: str
    letters: list[DeadLetter]
    total: int
    offset: int

    def heading(self) -> str:
        if len(self.letters) in (0, self.total):
            return f"{self.total} dead letter(s) in {self.topic}"
        return f"dead letters {self.offset + 1}–{self.offset + len(self.letters)} of {self.total} in {self.topic}"

    def note(self) -> str | None:
        return page_note(self.total, self.offset, len(self.letters))


def page_note(total: int, offset: int, shown: int) -> str | None:
    """What a listing that leaves dead letters out says: which of how many it shows and how to see the others; None
    when it shows them all."""
    if shown == total:
        return None
    if shown == 0:
        return f"No dead letters shown: --offset {offset} is past the last of the {total}."
    last = offset + shown
    more = f"; the next with --offset {last}, or every one with --all" if last < total else ""
    return f"Showed dead letters {offset + 1}–{last} of {total}{more}."


async def list_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    offset: int = 0,
    limit: int | None = PAGE_SIZE,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
) -> DeadLetterPage:
    """The dead letters from ``offset`` on (at most ``limit``; None: all), in partition:offset order, and how many the
    topic has: it is read to the end to count them, keeping only the page."""
    if offset < 0 or (limit is not None and limit < 1):
        raise ValueError(f"offset must be at least 0 and limit at least 1, not {offset} and {limit}")
    stop = None if limit is None else offset + limit
    letters: list[DeadLetter] = []
    total = 0
    async for chunk in stream_dead_letters(bootstrap, topic, chunk_size=chunk_size, settings=settings):
        letters.extend(chunk[max(offset - total, 0) : None if stop is None else max(stop - total, 0)])
        total += len(chunk)
    return DeadLetterPage(topic=topic, letters=letters, total=total, offset=offset)


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
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
) -> int:
    """Republish dead letters (all, or those at the given positions) to their original topics; how many.

    All of them are read and sent a chunk at a time (memory does not grow with the topic). Given positions are all
    found first: raises UnknownDeadLetterError, replaying nothing, when one holds no dead letter (a typo must not
    pass for a replay)."""
    letters = stream_dead_letters(bootstrap, topic, chunk_size=chunk_size, settings=settings)  # refuses a non-DLQ
    if positions is None:
        async with contextlib.aclosing(letters):
            return await _republish(bootstrap, letters, settings)
    wanted = set(positions)
    found: list[DeadLetter] = []
    async with contextlib.aclosing(letters):
        async for chunk in letters:
            found.extend(d for d in chunk if Position(d.partition, d.offset) in wanted)
            if len(found) == len(wanted):
                break  # the rest need not be read
    missing = wanted - {Position(d.partition, d.offset) for d in found}
    if missing:
        names = ", ".join(f"{p.partition}:{p.offset}" for p in sorted(missing))
        raise UnknownDeadLetterError(f"no dead letter at {names} in {topic}; nothing replayed")
    return await _republish(bootstrap, _one_chunk(found), settings)


async def _one_chunk(letters: list[DeadLetter]) -> AsyncIterator[list[DeadLetter]]:
    yield letters


async def _republish(bootstrap: str, chunks: AsyncIterator[list[DeadLetter]], settings: KafkaSettings | None) -> int:
    """Send each chunk and wait for its deliveries before reading the next; the producer starts with the first."""
    producer: AIOKafkaProducer | None = None
    sent = 0
    try:
        async for chunk in chunks:
            if producer is None:
                starting = make_producer(bootstrap, client_id="mentorloom-dlq-replay", settings=settings)
                await starting.start()
                producer = starting
            deliveries = [
                await producer.send(
                    d.original_topic,
                    d.value,
                    key=d.key.encode() if d.key else None,
                    headers=[(k, v) for k, v in d.headers if not k.startswith("dlq_")],
                )
                for d in chunk
            ]
            # Each delivery's own outcome: flush() only waits, so a record the broker refused would pass for replayed.
            await asyncio.gather(*deliveries)
            sent += len(chunk)
    finally:
        if producer is not None:
            await producer.stop()
    return sent


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
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (list: a page note goes to stderr)"
    )
    parser.add_argument(
        "--limit",
        type=_count_argument(1),
        help=f"list: show at most this many, in partition:offset order (default {PAGE_SIZE:,})",
    )
    parser.add_argument("--offset", type=_count_argument(0), help="list: skip this many first (the next page)")
    parser.add_argument("--all", action="store_true", help="list: show every one from --offset on (no --limit)")
    args = parser.parse_args(argv)
    if args.command == "replay" and (args.limit is not None or args.offset is not None or args.all):
        parser.error("--limit, --offset and --all are for list; replay sends every dead letter, or those --at")
    try:
        require_dead_letter_topic(args.topic)
    except NotADeadLetterTopicError as error:
        parser.error(str(error))  # exits 2, as for any other bad argument
    try:  # the brokers' TLS/SASL, from the MENTORLOOM_KAFKA_* variables the services read
        settings = KafkaSettings()
    except ValidationError as error:
        parser.error(f"invalid Kafka settings:\n{describe_settings_error(error)}")
    if args.command == "list":
        limit = None if args.all else (args.limit or PAGE_SIZE)
        page = asyncio.run(
            list_dead_letters(args.bootstrap, args.topic, offset=args.offset or 0, limit=limit, settings=settings)
        )
        if args.json:
            json.dump([d.summary() for d in page.letters], sys.stdout, indent=2)
            print()
        else:
            for d in page.letters:
                print(
                    f"{d.partition}:{d.offset}\t{d.reason}\t{d.event_type or '-'}\t{d.event_id or '-'}\t{d.error_type}: {d.error[:120]}"
                )
            print(page.heading())
        note = page.note()
        if note:
            print(note, file=sys.stderr)
        return 0
    try:
        replayed = asyncio.run(replay_dead_letters(args.bootstrap, args.topic, args.at, settings=settings))
    except UnknownDeadLetterError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"replayed {replayed} dead letter(s) from {args.topic}")
    return 0


def _count_argument(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least`` (argparse names the option in its message)."""

    def count(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {least}")
        return int(text)

    return count


if __name__ == "__main__":
    raise SystemExit(main())
