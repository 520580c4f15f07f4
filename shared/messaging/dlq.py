"""Inspect and replay dead letters.

    python -m shared.messaging.dlq list   --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq [--json]
                                          [--limit N] [--offset N] [--all] [--from P:O[,P:O...]] [--at P:O ...]
    python -m shared.messaging.dlq replay --bootstrap HOST:PORT --topic mentorloom.profiles.v1.dlq
                                          [--at P:O ... | --from P:O]

List shows the first 1,000 unless told otherwise, and says how many there are and which it left out; with --at it
shows just the dead letters at those positions. A listing that leaves letters out names the next page by the positions
it begins at (--from 0:17,1:4, one per partition), not by a count: letters that arrive in the meantime, in any
partition, are then neither shown twice nor passed over. --json gives each letter's whole value (as text when it is UTF-8, else
in value_base64; value_encoding says which) and value_size in bytes; the text lines shorten a long error and say by
how much.
Replay republishes the original bytes and headers (without the dlq_* ones) to the original topic: every dead letter,
those --at, or every one from a position on (--from). A replay an error stops says how many it replayed and what to
give it to replay the rest.
Replaying is safe to repeat: the consumers' inbox ignores an event id that was already applied.
Both read the topic a chunk at a time and print as they read, so memory does not grow with it. --from starts each
partition where the position says (a seek): the letters before it are not read again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import sys
import textwrap
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, TextIO

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.events.registry import DEAD_LETTER_SUFFIX
from shared.messaging.kafka import UnknownTopicError, make_producer, read_topic_to_end, stream_topic_to_end
from shared.settings import KafkaSettings, describe_settings_error

CHUNK_SIZE = 500  # dead letters held at a time while listing or replaying
PAGE_SIZE = 1000  # dead letters a listing shows unless told otherwise
BROKER_ERRORS = (KafkaError, TimeoutError, OSError)  # how a broker that is gone, refuses or stalls shows
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
EXIT_STDOUT_CLOSED = 1  # the reader of stdout went away (`| head`): 1, as rich exits from the table it prints


class Position(NamedTuple):
    """Where a dead letter is: offsets count per partition, so an offset alone names one letter per partition."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    original_topic: str
    reason: str
    error_type: str
    error: str
    attempts: int | None  # None: the header is missing or not a number
    consumer: str
    failed_at: str
    event_id: str | None
    event_type: str | None
    value: bytes
    headers: list[tuple[str, bytes]]
    # What replay sends: the record's own key and value, not their text (a key that is not UTF-8, an empty key, a
    # value that is None each come back as they were).
    raw_key: bytes | None
    raw_value: bytes | None

    @property
    def position(self) -> Position:
        return Position(self.partition, self.offset)

    def summary(self) -> dict[str, object]:
        """The letter as --json lists it: the whole value (an operator pipes it to jq), as text when it is UTF-8, else
        in ``value_base64``; ``value_encoding`` says which, ``value_size`` counts its bytes."""
        data = asdict(self)
        data.pop("headers")
        data.pop("raw_key")
        data.pop("raw_value")
        try:
            data["value"], data["value_base64"], data["value_encoding"] = self.value.decode(), None, "utf-8"
        except UnicodeDecodeError:
            encoded = base64.b64encode(self.value).decode()
            data["value"], data["value_base64"], data["value_encoding"] = None, encoded, "base64"
        data["value_size"] = len(self.value)
        return data


def shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters for a table cell, saying how many it left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} characters)"


class NotADeadLetterTopicError(ValueError):
    """The topic named is not a dead-letter topic: replaying it would republish every event on it."""


class NoSuchDeadLetterTopicError(LookupError):
    """The broker has no topic of that name: listing it as '0 dead letters' would pass a typo for an empty topic."""


def require_dead_letter_topic(topic: str) -> None:
    if not topic.endswith(DEAD_LETTER_SUFFIX):
        raise NotADeadLetterTopicError(
            f"{topic!r} is not a dead-letter topic (those end in {DEAD_LETTER_SUFFIX}, e.g. {topic}{DEAD_LETTER_SUFFIX})"
        )


def partition_starts(start: Sequence[Position]) -> dict[int, int | None]:
    """Where reading from ``start`` begins in each partition (stream_topic_to_end's ``starts``): the partitions it
    names from their offsets, those before the last it names and not named not at all, those after from their
    beginning. So one position P:O reads, in partition:offset order, every letter from it on; a cursor naming each
    partition up to the last it reads (as a listing's note gives it) goes on in each where the page left it."""
    named = {p.partition: p.offset for p in start}
    return {partition: named.get(partition) for partition in range(max(named, default=-1) + 1)}


async def stream_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
    start: Sequence[Position] = (),
) -> AsyncGenerator[list[DeadLetter], None]:
    """The dead letters of a topic in chunks of at most ``chunk_size`` (stream_topic_to_end), without joining a group
    (inspection changes nothing); from ``start`` on (partition_starts: the letters before it are not read), else all.
    Close it (``contextlib.aclosing``) when stopping early. Raises NoSuchDeadLetterTopicError when the broker has no
    such topic."""
    require_dead_letter_topic(topic)
    chunks = stream_topic_to_end(
        bootstrap,
        topic,
        chunk_size=chunk_size,
        settings=settings,
        require_topic=True,
        starts=partition_starts(start),
    )
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                yield [_dead_letter(topic, r) for r in chunk]
        except UnknownTopicError as error:
            others = sorted(t for t in error.known if t.endswith(DEAD_LETTER_SUFFIX))
            has = f"its dead-letter topics are {', '.join(others)}" if others else "it has no dead-letter topics"
            raise NoSuchDeadLetterTopicError(f"the broker has no topic {topic!r}; {has}") from error


async def read_dead_letters(
    bootstrap: str, topic: str, limit: int = PAGE_SIZE, *, settings: KafkaSettings | None = None
) -> list[DeadLetter]:
    """The first ``limit`` dead letters of a topic (list_dead_letters also says how many there are)."""
    require_dead_letter_topic(topic)
    records = await read_topic_to_end(bootstrap, topic, limit=limit, settings=settings)
    return [_dead_letter(topic, r) for r in records]


@dataclass(frozen=True)
class Listing:
    """Which of a topic's dead letters a listing showed, and how many the topic has."""

    topic: str
    total: int
    offset: int
    shown: int
    ends: dict[int, int] = field(default_factory=dict)  # partition → the offset after the last letter read
    start: tuple[Position, ...] = ()  # where it read from (--from), else the topic's start
    following: tuple[Position, ...] = ()  # the cursor after the last letter shown: where the next page begins

    def heading(self) -> str:
        since = f" from {cursor_text(self.start)}" if self.start else ""
        if self.shown in (0, self.total):
            return f"{self.total} dead letter(s){since} in {self.topic}"
        return f"dead letters {self.offset + 1}–{self.offset + self.shown} of {self.total}{since} in {self.topic}"

    def note(self) -> str | None:
        return page_note(self.total, self.offset, self.shown, start=self.start, following=self.following)


@dataclass(frozen=True)
class DeadLetterPage(Listing):
    """A listing with the letters it showed, for pages small enough to hold."""

    letters: list[DeadLetter] = field(default_factory=list)


def page_note(
    total: int, offset: int, shown: int, *, start: Sequence[Position] = (), following: Sequence[Position] = ()
) -> str | None:
    """What a listing that leaves dead letters out says: which of how many (from ``start``) it shows and how to see
    the others; None when it shows them all. The next page is named by the positions it begins at (``following``),
    not by a count: letters that arrive meanwhile, in any partition, would shift a count, so that the next page showed
    some letters again and others never."""
    if shown == total:
        return None
    since = f" from {cursor_text(start)}" if start else ""
    if shown == 0:
        return f"No dead letters shown: --offset {offset} is past the last of the {total}{since}."
    last = offset + shown
    more = f"; the next with --from {cursor_text(following)}, or every one with --all" if last < total else ""
    return f"Showed dead letters {offset + 1}–{last} of {total}{since}{more}."


def cursor_text(positions: Sequence[Position]) -> str:
    """Positions as --from takes them: ``0:17,1:4``."""
    return ",".join(map(str, positions))


def next_page(start: Sequence[Position], ends: Mapping[int, int], last: Position) -> tuple[Position, ...]:
    """Where the page after one that ended at ``last`` begins (partition_starts reads it so): in each partition before
    last's, after the letters this reading held (``ends``; those that arrive later come after it), in last's after
    it, in those after last's where this page began them (``start``: a page filled by letters that arrived in an
    earlier partition showed none of theirs), else from their beginning; the partitions ``start`` left out stay out."""
    begins = partition_starts(start)
    following: list[Position] = []
    for p in range(max([last.partition, *begins]) + 1):
        if p == last.partition:
            following.append(Position(p, last.offset + 1))
        elif begins.get(p, 0) is None:
            continue
        elif p < last.partition:
            following.append(Position(p, ends.get(p, begins.get(p) or 0)))
        else:
            following.append(Position(p, begins[p] or 0))
    return tuple(following)


async def show_dead_letters(
    bootstrap: str,
    topic: str,
    show: Callable[[DeadLetter], None],
    *,
    offset: int = 0,
    limit: int | None = PAGE_SIZE,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
    until: Mapping[int, int] | None = None,
    start: Sequence[Position] = (),
) -> Listing:
    """Pass the dead letters from ``offset`` on (at most ``limit``; None: all) to ``show`` as they are read, in
    partition:offset order, and say how many the topic has: it is read to the end to count them, holding a chunk.
    ``until``: read only the letters an earlier listing read (its ``ends``), not those added since. ``start``: only
    those from these positions on (partition_starts; a listing's ``following``), counting those."""
    if offset < 0 or (limit is not None and limit < 1):
        raise ValueError(f"offset must be at least 0 and limit at least 1, not {offset} and {limit}")
    stop = None if limit is None else offset + limit
    total = shown = 0
    ends: dict[int, int] = {}
    last: Position | None = None
    async for chunk in stream_dead_letters(bootstrap, topic, chunk_size=chunk_size, settings=settings, start=start):
        if until is not None:
            chunk = [d for d in chunk if d.offset < until.get(d.partition, 0)]
        for letter in chunk[max(offset - total, 0) : None if stop is None else max(stop - total, 0)]:
            show(letter)
            shown += 1
            last = letter.position
        total += len(chunk)
        if chunk:
            ends[chunk[-1].partition] = chunk[-1].offset + 1
    following = () if last is None else next_page(start, ends, last)
    return Listing(
        topic=topic, total=total, offset=offset, shown=shown, ends=ends, start=tuple(start), following=following
    )


async def list_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    offset: int = 0,
    limit: int | None = PAGE_SIZE,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
    start: Sequence[Position] = (),
) -> DeadLetterPage:
    """show_dead_letters, keeping the page's letters."""
    letters: list[DeadLetter] = []
    listing = await show_dead_letters(
        bootstrap,
        topic,
        letters.append,
        offset=offset,
        limit=limit,
        chunk_size=chunk_size,
        settings=settings,
        start=start,
    )
    return DeadLetterPage(**asdict(listing), letters=letters)


def _dead_letter(topic: str, r: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    h = {k: v.decode(errors="replace") for k, v in r.headers}
    attempts = h.get("dlq_attempts", "").strip()
    return DeadLetter(
        partition=r.partition,
        offset=r.offset,
        key=r.key.decode(errors="replace") if r.key is not None else None,
        original_topic=h.get("dlq_original_topic", topic.removesuffix(".dlq")),
        reason=h.get("dlq_reason", "?"),
        error_type=h.get("dlq_error_type", "?"),
        error=h.get("dlq_error", ""),
        attempts=int(attempts) if attempts.isdigit() else None,  # a damaged header must not hide the listing
        consumer=h.get("dlq_consumer", "?"),
        failed_at=h.get("dlq_failed_at", ""),
        event_id=h.get("ce_id"),
        event_type=h.get("ce_type"),
        value=r.value or b"",
        headers=list(r.headers),
        raw_key=r.key,
        raw_value=r.value,
    )


class UnknownDeadLetterError(LookupError):
    """A position asked for holds no dead letter; nothing was shown or replayed."""


def parse_position(text: str) -> Position:
    """``PARTITION:OFFSET`` as ``dlq list`` prints it; an offset alone names nothing (each partition has its own)."""
    partition, colon, offset = text.partition(":")
    if not colon or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (e.g. 0:17, as `dlq list` shows it)")
    return Position(int(partition), int(offset))


def parse_cursor(text: str) -> tuple[Position, ...]:
    """``P:O[,P:O...]``, one position per partition, as a listing's note names the next page (cursor_text)."""
    positions = tuple(parse_position(part) for part in text.split(","))
    partitions = [p.partition for p in positions]
    if len(set(partitions)) < len(partitions):
        raise ValueError(f"{text!r} names a partition twice; give one PARTITION:OFFSET per partition")
    return positions


async def find_dead_letters(
    bootstrap: str,
    topic: str,
    positions: Collection[Position],
    *,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
) -> list[DeadLetter]:
    """The dead letters at the given positions, in partition:offset order, reading no further than the last. Raises
    UnknownDeadLetterError when a position holds none (a typo must not pass for a letter)."""
    wanted = set(positions)
    found: list[DeadLetter] = []
    letters = stream_dead_letters(bootstrap, topic, chunk_size=chunk_size, settings=settings)
    async with contextlib.aclosing(letters):
        async for chunk in letters:
            found.extend(d for d in chunk if d.position in wanted)
            if len(found) == len(wanted):
                break  # the rest need not be read
    missing = wanted - {d.position for d in found}
    if missing:
        raise UnknownDeadLetterError(f"no dead letter at {', '.join(map(str, sorted(missing)))} in {topic}")
    return found


def broker_failure(error: BaseException) -> str:
    """One line on a broker that failed or stalled (BROKER_ERRORS), as both entry points print it."""
    said = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    if isinstance(error, TimeoutError):
        return f"The Kafka broker did not answer in time: {said}"
    return f"The Kafka broker failed: {said}"


class ReplayStoppedError(Exception):
    """A replay that a broker error (or Ctrl-C) stopped: how many dead letters it had replayed and what to give a
    second replay so that it sends the rest, and none of those again (or says which it will send again)."""

    def __init__(
        self,
        topic: str,
        cause: str,
        *,
        replayed: int,
        resume_from: Position | None,
        replayed_after_resume: int = 0,
        not_replayed: Sequence[Position] | None = None,
    ) -> None:
        self.topic = topic
        self.replayed = replayed
        self.resume_from = resume_from  # a replay of every letter: go on with --from this
        self.replayed_after_resume = replayed_after_resume  # delivered although an earlier one was not
        self.not_replayed = not_replayed  # a replay --at: the positions to give --at again
        super().__init__(f"Replay of {topic} stopped: {cause}; {self._progress()}.")

    def _progress(self) -> str:
        if self.not_replayed is not None:
            if self.replayed == 0:
                return "nothing was replayed"
            others = " ".join(f"--at {p}" for p in self.not_replayed)
            asked = self.replayed + len(self.not_replayed)
            return f"{self.replayed} of the {asked} dead letter(s) asked for were replayed; replay the others with {others}"
        if self.replayed == 0 or self.resume_from is None:
            return "nothing was replayed"
        said = f"{self.replayed} dead letter(s) were replayed; replay the rest with --from {self.resume_from}"
        if self.replayed_after_resume:
            said += (
                f" ({self.replayed_after_resume} of those replayed come after {self.resume_from} and will be sent "
                "again, which the consumers' inbox ignores)"
            )
        return said


@dataclass
class ReplayProgress:
    """What a replay has sent so far, in the order it reads the letters: a caller that gives replay_dead_letters one
    can say how far it got when something other than the broker stops it (Ctrl-C)."""

    wanted: list[Position] | None = None
    start: Position | None = None
    replayed: int = 0
    last_read: Position | None = None
    first_unsent: Position | None = None
    replayed_after_first_unsent: int = 0
    confirmed: set[Position] = field(default_factory=set)  # only for a replay --at (as many as asked for)

    def read(self, chunk: Sequence[DeadLetter]) -> None:
        self.last_read = chunk[-1].position

    def record(self, chunk: Sequence[DeadLetter], outcomes: Sequence[object]) -> None:
        """Each letter's delivery outcome, in order; letters past the outcomes were never sent."""
        for index, letter in enumerate(chunk):
            if index >= len(outcomes) or isinstance(outcomes[index], BaseException):
                self.first_unsent = self.first_unsent or letter.position
                continue
            self.replayed += 1
            if self.first_unsent is not None:
                self.replayed_after_first_unsent += 1
            if self.wanted is not None:
                self.confirmed.add(letter.position)

    def stopped(self, topic: str, cause: str) -> ReplayStoppedError:
        """What stopped the replay (``cause``, a sentence), how far it got and how to go on."""
        if self.wanted is not None:
            unsent = [p for p in self.wanted if p not in self.confirmed]
            return ReplayStoppedError(topic, cause, replayed=self.replayed, resume_from=None, not_replayed=unsent)
        resume = self.first_unsent
        if resume is None and self.last_read is not None:  # every letter read was sent: go on after the last
            resume = Position(self.last_read.partition, self.last_read.offset + 1)
        return ReplayStoppedError(
            topic,
            cause,
            replayed=self.replayed,
            resume_from=resume or self.start,
            replayed_after_resume=self.replayed_after_first_unsent,
        )


async def replay_dead_letters(
    bootstrap: str,
    topic: str,
    positions: Collection[Position] | None = None,
    *,
    start: Position | None = None,
    chunk_size: int = CHUNK_SIZE,
    settings: KafkaSettings | None = None,
    progress: ReplayProgress | None = None,
) -> int:
    """Republish dead letters (all, those at the given positions, or all from ``start`` on in partition:offset order)
    to their original topics; how many.

    All of them are read and sent a chunk at a time (memory does not grow with the topic); from ``start``, each
    partition is read from where it begins (partition_starts), not from the topic's start. Given positions are all
    found first: raises UnknownDeadLetterError, replaying nothing, when one holds no dead letter (a typo must not
    pass for a replay). A broker error part way raises ReplayStoppedError, which says how many were replayed and
    where to go on from; ``progress`` follows it as it goes."""
    if positions is not None and start is not None:
        raise ValueError("replay the letters at given positions, or every one from a start, not both")
    progress = progress or ReplayProgress()
    progress.wanted, progress.start = (None if positions is None else sorted(set(positions))), start
    try:
        if positions is None:
            letters = stream_dead_letters(
                bootstrap, topic, chunk_size=chunk_size, settings=settings, start=() if start is None else [start]
            )
            async with contextlib.aclosing(letters):
                await _republish(bootstrap, letters, settings, progress)
        else:
            try:
                found = await find_dead_letters(bootstrap, topic, positions, chunk_size=chunk_size, settings=settings)
            except UnknownDeadLetterError as error:
                raise UnknownDeadLetterError(f"{error}; nothing replayed") from error
            await _republish(bootstrap, _one_chunk(found), settings, progress)
    except BROKER_ERRORS as error:
        raise progress.stopped(topic, broker_failure(error)) from error
    return progress.replayed


async def _one_chunk(letters: list[DeadLetter]) -> AsyncIterator[list[DeadLetter]]:
    yield letters


async def _republish(
    bootstrap: str, chunks: AsyncIterator[list[DeadLetter]], settings: KafkaSettings | None, progress: ReplayProgress
) -> None:
    """Send each chunk and wait for its deliveries before reading the next; the producer starts with the first.
    Whatever stops it, ``progress`` knows each letter sent so far that the broker took."""
    producer: AIOKafkaProducer | None = None
    try:
        async for chunk in chunks:
            progress.read(chunk)
            deliveries: list[asyncio.Future[Any]] = []
            try:
                if producer is None:
                    starting = make_producer(bootstrap, client_id="mentorloom-dlq-replay", settings=settings)
                    await starting.start()
                    producer = starting
                for d in chunk:
                    deliveries.append(
                        await producer.send(
                            d.original_topic,
                            d.raw_value,
                            key=d.raw_key,
                            headers=[(k, v) for k, v in d.headers if not k.startswith("dlq_")],
                        )
                    )
            finally:
                # Each delivery's own outcome, also when a send stops the chunk: flush() only waits, so a record the
                # broker refused would pass for replayed, and one it took for not.
                together = asyncio.gather(*deliveries, return_exceptions=True)
                try:
                    outcomes = await asyncio.shield(together)
                except asyncio.CancelledError:  # Ctrl-C: these are on their way; the report says if they arrived
                    progress.record(chunk, await together)
                    raise
                progress.record(chunk, outcomes)
            refused = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if refused is not None:
                raise refused
    finally:
        if producer is not None:
            await producer.stop()


@contextlib.contextmanager
def client_logs_quiet() -> Iterator[None]:
    """Keep aiokafka's log off the operator's terminal while the tool runs: it logs every failed connection attempt
    at ERROR (hundreds while a broker is gone, before the tool's one line on what failed, which names the cause)."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def stdout_closed() -> None:
    """The reader of stdout went away (`dlq list | head`): nothing is wrong and nothing more can be said there. Point
    stdout at /dev/null, so that Python's flush at exit does not fail on the closed pipe once more."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class JsonArrayWriter:
    """Writes a JSON array an element at a time, character for character as ``json.dumps(array, indent=2)``."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.written = 0

    def write(self, element: object) -> None:
        self.out.write(("[\n" if self.written == 0 else ",\n") + textwrap.indent(json.dumps(element, indent=2), "  "))
        self.written += 1

    def close(self) -> None:
        self.out.write("[]\n" if self.written == 0 else "\n]\n")


def option_conflict(command: str, *, at: bool, start: bool, page: bool) -> str | None:
    """Why these options do not go together for ``command`` (list or replay), or None; both entry points say it."""
    if command == "replay" and page:
        return "--limit, --offset and --all are for list; replay sends every dead letter, those --at, or from --from"
    if at and start:
        return "give --at (just those dead letters) or --from (every one from there on), not both"
    if command == "list" and at and page:
        return "--at shows just the dead letters at those positions; --limit, --offset and --all page a listing"
    return None


def _position_argument(text: str) -> Position:
    try:
        return parse_position(text)
    except ValueError as error:  # argparse shows an ArgumentTypeError's message, not a ValueError's
        raise argparse.ArgumentTypeError(str(error)) from error


def _cursor_argument(text: str) -> tuple[Position, ...]:
    try:
        return parse_cursor(text)
    except ValueError as error:
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
        help="only the dead letters at these positions, as `list` shows them (repeatable): list shows, replay sends",
    )
    parser.add_argument(
        "--from",
        dest="start",
        type=_cursor_argument,
        metavar="PARTITION:OFFSET",
        help="every dead letter from this position on, in partition:offset order: replay (to go on after a stop) "
        "or list (the next page, as a listing's note names it: one PARTITION:OFFSET per partition, comma-separated)",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (list: a page note goes to stderr)"
    )
    parser.add_argument(
        "--limit",
        type=_count_argument(1),
        help=f"list: show at most this many, in partition:offset order (default {PAGE_SIZE:,})",
    )
    parser.add_argument(
        "--offset",
        type=_count_argument(0),
        help="list: skip this many first (the next page is --from, as the note names it)",
    )
    parser.add_argument("--all", action="store_true", help="list: show every one from --offset on (no --limit)")
    args = parser.parse_args(argv)
    page = args.limit is not None or args.offset is not None or args.all
    conflict = option_conflict(args.command, at=args.at is not None, start=args.start is not None, page=page)
    if conflict:
        parser.error(conflict)  # exits 2, as for any other bad argument
    if args.command == "replay" and args.start is not None and len(args.start) > 1:
        parser.error("argument --from: replay goes on from one PARTITION:OFFSET, as a stopped replay names it")
    try:
        require_dead_letter_topic(args.topic)
    except NotADeadLetterTopicError as error:
        parser.error(str(error))
    try:  # the brokers' TLS/SASL, from the MENTORLOOM_KAFKA_* variables the services read
        settings = KafkaSettings()
    except ValidationError as error:
        parser.error(f"invalid Kafka settings:\n{describe_settings_error(error)}")
    progress = ReplayProgress()
    try:
        with client_logs_quiet():
            if args.command == "list":
                _print_listing(args, settings)
            else:
                replayed = asyncio.run(
                    replay_dead_letters(
                        args.bootstrap,
                        args.topic,
                        args.at,
                        start=None if args.start is None else args.start[0],
                        settings=settings,
                        progress=progress,
                    )
                )
                print(f"replayed {replayed} dead letter(s) from {args.topic}")
    except BrokenPipeError:  # an OSError, but no broker's
        stdout_closed()
        return EXIT_STDOUT_CLOSED
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("interrupted (Ctrl-C)" if args.command == "list" else interrupted(args.topic, progress), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UnknownDeadLetterError, NoSuchDeadLetterTopicError, ReplayStoppedError) as error:
        sys.stdout.flush()  # what was listed before it, then the one line saying why it stopped
        print(error, file=sys.stderr)
        return 1
    except BROKER_ERRORS as error:
        sys.stdout.flush()
        print(broker_failure(error), file=sys.stderr)
        return 1
    return 0


def interrupted(topic: str, progress: ReplayProgress) -> str:
    """What a replay stopped by Ctrl-C says: how far it got and how to go on (the letters sent before it was
    stopped were waited for)."""
    return str(progress.stopped(topic, "interrupted (Ctrl-C)"))


def _print_listing(args: argparse.Namespace, settings: KafkaSettings) -> None:
    """Print each dead letter as it is read (as text lines or one JSON array), then the heading and any page note."""
    writer = JsonArrayWriter(sys.stdout)

    def show(d: DeadLetter) -> None:
        if args.json:
            writer.write(d.summary())
        else:
            fields = (d.reason, d.event_type or "-", d.event_id or "-", f"{d.error_type}: {shortened(d.error, 120)}")
            # One line of tab-separated fields per letter: an error's line breaks and tabs become spaces.
            print("\t".join([str(d.position), *(" ".join(text.split()) for text in fields)]))

    if args.at is not None:
        found = asyncio.run(find_dead_letters(args.bootstrap, args.topic, args.at, settings=settings))
        for d in found:
            show(d)
        heading, note = at_heading(args.topic, found), None
    else:
        limit = None if args.all else (args.limit or PAGE_SIZE)
        listing = asyncio.run(
            show_dead_letters(
                args.bootstrap,
                args.topic,
                show,
                offset=args.offset or 0,
                limit=limit,
                settings=settings,
                start=args.start or (),
            )
        )
        heading, note = listing.heading(), listing.note()
    if args.json:
        writer.close()
    else:
        print(heading)
    if note:
        print(note, file=sys.stderr)


def at_heading(topic: str, letters: Sequence[DeadLetter]) -> str:
    """The heading of a listing of the dead letters at given positions."""
    return f"{len(letters)} dead letter(s) at {', '.join(str(d.position) for d in letters)} in {topic}"


def _count_argument(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least`` (argparse names the option in its message)."""

    def count(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {least}")
        return int(text)

    return count


if __name__ == "__main__":
    raise SystemExit(main())
