"""The dead-letter inspect/replay tool (`mentorloom dlq`, `python -m shared.messaging.dlq`) against the real broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import io
import json
import os
import re
import signal
import subprocess
import sys
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError
from rich.text import Text
from typer.testing import CliRunner

import deploy.local.dead_letter_table
import shared.messaging.dlq
import shared.messaging.kafka
from deploy.local.cli import app as mentorloom
from deploy.local.servers import free_port
from shared.events.registry import dead_letter_topic
from shared.messaging.dlq import (
    DeadLetter,
    NotADeadLetterTopicError,
    Position,
    ReplayStoppedError,
    UnknownDeadLetterError,
    list_dead_letters,
    main,
    parse_cursor,
    parse_position,
    read_dead_letters,
    replay_dead_letters,
)
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end, stream_topic_to_end
from tests.messaging.support import chunk_sizes_the_dead_letter_tool_reads, letter_headers, send_dead_letters

pytestmark = pytest.mark.integration


async def test_every_dead_letter_is_listed_up_to_the_end_of_the_last_batch(kafka_bootstrap: str, unique: str) -> None:
    # 450 letters, then 100 more in one record batch that straddles the 500 records a read returns at a time. Tansu
    # reports the end of the partition as that batch's first offset + 1 (451); a reader that trusted it stopped at 500.
    original = f"t.tail.{unique}"
    dead = dead_letter_topic(original)
    await ensure_topics(kafka_bootstrap, [dead], partitions=1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for i in range(450):
            await producer.send(dead, b"{}", key=b"k", headers=letter_headers(original, f"e{i}"), partition=0)
        await producer.flush()
        batch = producer.create_batch()
        for i in range(450, 550):
            assert batch.append(key=b"k", value=b"{}", timestamp=None, headers=letter_headers(original, f"e{i}"))
        batch.close()
        await (await producer.send_batch(batch, dead, partition=0))
    finally:
        await producer.stop()

    letters = await read_dead_letters(kafka_bootstrap, dead)

    assert [d.offset for d in letters] == list(range(550))
    assert [d.event_id for d in letters] == [f"e{i}" for i in range(550)]
    assert {(d.reason, d.original_topic, d.attempts) for d in letters} == {("handler_failed", original, 3)}
    assert len(await read_dead_letters(kafka_bootstrap, dead, limit=120)) == 120


async def dead_letters_in_two_partitions(kafka_bootstrap: str, original: str) -> str:
    """One dead letter at offset 0 of partition 0 (event a) and one at offset 0 of partition 1 (event b)."""
    dead = dead_letter_topic(original)
    await ensure_topics(kafka_bootstrap, [dead, original], partitions=2)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for partition, event_id in enumerate(("a", "b")):
            await producer.send_and_wait(
                dead, b"{}", key=event_id.encode(), headers=letter_headers(original, event_id), partition=partition
            )
    finally:
        await producer.stop()
    return dead


async def test_a_replay_of_one_position_republishes_that_letter_alone(kafka_bootstrap: str, unique: str) -> None:
    # Both letters are at offset 0: an offset alone would name both.
    original = f"t.pick.{unique}"
    dead = await dead_letters_in_two_partitions(kafka_bootstrap, original)

    replayed = await replay_dead_letters(kafka_bootstrap, dead, [Position(partition=1, offset=0)])

    assert replayed == 1
    republished = await read_topic_to_end(kafka_bootstrap, original)
    assert [dict(r.headers)["ce_id"] for r in republished] == [b"b"]
    assert not any(name.startswith("dlq_") for name, _ in republished[0].headers), "error headers stay behind"


async def test_a_replay_naming_a_position_without_a_letter_replays_nothing(kafka_bootstrap: str, unique: str) -> None:
    original = f"t.typo.{unique}"
    dead = await dead_letters_in_two_partitions(kafka_bootstrap, original)

    with pytest.raises(UnknownDeadLetterError, match="no dead letter at 0:7"):
        await replay_dead_letters(kafka_bootstrap, dead, [Position(0, 0), Position(0, 7)])

    assert await read_topic_to_end(kafka_bootstrap, original) == []
    # The command says so and fails (it runs its own event loop, so in a thread here).
    assert (
        await asyncio.to_thread(main, ["replay", "--bootstrap", kafka_bootstrap, "--topic", dead, "--at", "1:9"]) == 1
    )
    assert await read_topic_to_end(kafka_bootstrap, original) == []


def test_a_position_is_partition_and_offset_as_the_list_shows_it() -> None:
    assert parse_position("3:17") == Position(3, 17)
    assert parse_cursor("0:5,1:0") == (Position(0, 5), Position(1, 0))
    for text in ("17", "3:", ":17", "a:1", "1:-2", "1:2:3"):
        with pytest.raises(ValueError, match="PARTITION:OFFSET"):
            parse_position(text)


def test_the_replay_command_refuses_an_offset_without_its_partition(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_python:
        main(["replay", "--bootstrap", "127.0.0.1:1", "--topic", "x.dlq", "--at", "17"])
    assert exit_python.value.code == 2
    assert "'17' is not PARTITION:OFFSET" in capsys.readouterr().err

    result = CliRunner().invoke(mentorloom, ["dlq", "replay", "x.dlq", "--at", "17", "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "PARTITION:OFFSET" in result.output


async def test_a_topic_that_is_not_a_dead_letter_topic_is_refused_before_anything_is_read_or_sent() -> None:
    # Forgetting ".dlq" would otherwise republish every event of a live topic to its subscribers.
    with pytest.raises(NotADeadLetterTopicError, match=r"mentorloom.matching.v1.dlq"):
        await replay_dead_letters("127.0.0.1:1", "mentorloom.matching.v1")
    with pytest.raises(NotADeadLetterTopicError):
        await read_dead_letters("127.0.0.1:1", "mentorloom.matching.v1")


def test_the_commands_refuse_a_topic_that_is_not_a_dead_letter_topic_as_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_python:
        main(["replay", "--bootstrap", "127.0.0.1:1", "--topic", "mentorloom.matching.v1"])
    assert exit_python.value.code == 2
    for command in ("list", "replay"):
        result = CliRunner().invoke(
            mentorloom, ["dlq", command, "mentorloom.matching.v1", "--bootstrap", "127.0.0.1:1"]
        )
        assert result.exit_code == 2, result.output
        assert "not a dead-letter topic" in result.output


def test_the_commands_say_when_the_broker_cannot_be_reached_instead_of_a_traceback() -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    for args in (
        ["dlq", "list", "x.dlq", "--bootstrap", unreachable],
        ["dlq", "replay", "x.dlq", "--bootstrap", unreachable],
        ["events", "tail", "--for", "1", "--bootstrap", unreachable],
    ):
        result = CliRunner().invoke(mentorloom, args)
        assert result.exit_code == 1, (args, result.output)
        assert "The Kafka broker failed" in result.output
        assert "Traceback" not in result.output


# --- bounded memory: the topic is read a chunk at a time ---------------------------------------------------------


async def read_in_chunks(bootstrap: str, topic: str, chunk_size: int) -> list[list[ConsumerRecord[bytes, bytes]]]:
    chunks = stream_topic_to_end(bootstrap, topic, chunk_size=chunk_size)
    return [chunk async for chunk in chunks]


def positions_of(chunks: list[list[ConsumerRecord[bytes, bytes]]]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for chunk in chunks for r in chunk]


async def test_the_topic_reader_yields_every_record_once_in_chunks_no_larger_than_asked(
    kafka_bootstrap: str, unique: str
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.chunks.{unique}", [23, 12])

    chunks = await read_in_chunks(kafka_bootstrap, dead, chunk_size=5)

    assert max(len(chunk) for chunk in chunks) <= 5
    assert all(len({r.partition for r in chunk}) == 1 for chunk in chunks)
    assert positions_of(chunks) == [(0, i) for i in range(23)] + [(1, i) for i in range(12)]


async def test_records_added_while_the_topic_is_read_are_left_out(kafka_bootstrap: str, unique: str) -> None:
    # A replay streams while its letters may be dead-lettered again: reading those too could go on for ever. 2.4 MB
    # of letters take the reader several fetches, so fetches after the late letters were added report them.
    original = f"t.growing.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [0, 0])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:

        async def letters(partition: int, count: int, size: int) -> None:
            for i in range(count):  # random bytes, so compression keeps them large
                await producer.send(
                    dead, os.urandom(size), headers=letter_headers(original, f"e{i}"), partition=partition
                )
            await producer.flush()

        await letters(0, 300, size=8000)
        chunks = stream_topic_to_end(kafka_bootstrap, dead, chunk_size=5)
        read = [await anext(chunks)]
        await letters(0, 3, size=10)
        await letters(1, 3, size=10)
    finally:
        await producer.stop()

    read += [chunk async for chunk in chunks]

    assert positions_of(read) == [(0, i) for i in range(300)]
    assert len(await read_topic_to_end(kafka_bootstrap, dead)) == 306, "a new reader reads them"


async def test_the_time_a_caller_spends_on_a_chunk_does_not_count_toward_the_readers_time_limit(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replay of many letters sends each chunk before reading the next: a limit on the whole read would stop it.
    dead = await send_dead_letters(kafka_bootstrap, f"t.slow.{unique}", [12])
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(shared.messaging.kafka, "time", SimpleNamespace(monotonic=lambda: clock.now))
    read = []

    async for chunk in stream_topic_to_end(kafka_bootstrap, dead, chunk_size=5, limit_seconds=10):
        read.append(chunk)
        clock.now += 100  # the caller's work on the chunk, longer than the reader's limit

    assert positions_of(read) == [(0, i) for i in range(12)]


async def test_a_listing_counts_every_letter_and_keeps_only_the_page(kafka_bootstrap: str, unique: str) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.page.{unique}", [7, 6])

    page = await list_dead_letters(kafka_bootstrap, dead, offset=5, limit=4, chunk_size=4)
    rest = await list_dead_letters(kafka_bootstrap, dead, offset=11, limit=None, chunk_size=4)
    past = await list_dead_letters(kafka_bootstrap, dead, offset=20, chunk_size=4)
    every = await list_dead_letters(kafka_bootstrap, dead, chunk_size=4)

    assert [d.event_id for d in page.letters] == ["p0-5", "p0-6", "p1-0", "p1-1"]
    assert (page.total, page.heading()) == (13, f"dead letters 6–9 of 13 in {dead}")
    assert page.note() == "Showed dead letters 6–9 of 13; the next with --from 0:7,1:2, or every one with --all."
    assert [d.event_id for d in rest.letters] == ["p1-4", "p1-5"]
    assert rest.note() == "Showed dead letters 12–13 of 13."
    assert (past.letters, past.heading()) == ([], f"13 dead letter(s) in {dead}")
    assert past.note() == "No dead letters shown: --offset 20 is past the last of the 13."
    assert (len(every.letters), every.heading(), every.note()) == (13, f"13 dead letter(s) in {dead}", None)


async def test_the_python_list_command_says_the_true_count_and_what_it_left_out(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.many.{unique}", [1005])
    command = ["list", "--bootstrap", kafka_bootstrap, "--topic", dead]

    assert await asyncio.to_thread(main, command) == 0
    first = capsys.readouterr()
    assert len(first.out.splitlines()) == 1001
    assert first.out.splitlines()[-1] == f"dead letters 1–1000 of 1005 in {dead}"
    assert first.err == "Showed dead letters 1–1000 of 1005; the next with --from 0:1000, or every one with --all.\n"
    assert await asyncio.to_thread(main, [*command, "--offset", "1000", "--json"]) == 0
    last = capsys.readouterr()
    assert await asyncio.to_thread(main, [*command, "--all", "--limit", "3", "--json"]) == 0
    every = capsys.readouterr()
    assert await asyncio.to_thread(main, [*command, "--limit", "2", "--offset", "7"]) == 0
    some = capsys.readouterr()

    assert [d["event_id"] for d in json.loads(last.out)] == [f"p0-{i}" for i in range(1000, 1005)]
    assert last.err == "Showed dead letters 1001–1005 of 1005.\n"
    assert len(json.loads(every.out)) == 1005
    assert every.err == ""
    assert [line.split("\t")[0] for line in some.out.splitlines()] == [
        "0:7",
        "0:8",
        f"dead letters 8–9 of 1005 in {dead}",
    ]


def test_the_python_list_command_refuses_a_page_that_is_no_count_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for option, value in (("--limit", "0"), ("--offset", "-1"), ("--limit", "many")):
        with pytest.raises(SystemExit) as exited:
            main(["list", "--bootstrap", "127.0.0.1:1", "--topic", "x.dlq", option, value])
        assert exited.value.code == 2
        assert f"argument {option}: '{value}' is not a whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--bootstrap", "127.0.0.1:1", "--topic", "x.dlq", "--limit", "5"])
    assert exited.value.code == 2
    assert "--limit, --offset and --all are for list" in capsys.readouterr().err


async def test_a_replay_of_more_letters_than_a_chunk_sends_each_exactly_once_a_chunk_at_a_time(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = f"t.replay.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [13, 9])
    chunk_sizes = chunk_sizes_the_dead_letter_tool_reads(monkeypatch)

    replayed = await replay_dead_letters(kafka_bootstrap, dead, chunk_size=5)

    assert replayed == 22
    assert chunk_sizes == [5, 5, 3, 5, 4]
    republished = Counter(dict(r.headers)["ce_id"].decode() for r in await read_topic_to_end(kafka_bootstrap, original))
    assert republished == Counter([f"p0-{i}" for i in range(13)] + [f"p1-{i}" for i in range(9)])


async def test_a_replay_at_a_position_past_the_first_chunk_sends_that_letter_alone(
    kafka_bootstrap: str, unique: str
) -> None:
    original = f"t.replay.at.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [13, 9])

    replayed = await replay_dead_letters(kafka_bootstrap, dead, [Position(1, 7)], chunk_size=5)

    assert replayed == 1
    assert [dict(r.headers)["ce_id"] for r in await read_topic_to_end(kafka_bootstrap, original)] == [b"p1-7"]


@pytest.mark.parametrize(
    ("start", "chunk_sizes", "replayed"),
    [
        (Position(0, 11), [2, 5, 4], ["p0-11", "p0-12", *(f"p1-{i}" for i in range(9))]),
        (Position(1, 4), [5], [f"p1-{i}" for i in range(4, 9)]),
    ],
)
async def test_a_replay_from_a_position_reads_no_letter_before_it_and_replays_every_one_from_it(
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    start: Position,
    chunk_sizes: list[int],
    replayed: list[str],
) -> None:
    # Resuming near the end of a long topic read it all again from the start and dropped what came before.
    original = f"t.replay.from.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [13, 9])
    read = chunk_sizes_the_dead_letter_tool_reads(monkeypatch)

    assert await replay_dead_letters(kafka_bootstrap, dead, start=start, chunk_size=5) == len(replayed)

    assert read == chunk_sizes
    assert await republished_ids(kafka_bootstrap, original) == Counter(replayed)


# --- a replay that stops part way says how far it got --------------------------------------------------------------


class RefusingProducer:
    """The replay's producer, whose broker refuses one letter (by event id): at ``send`` (as a record too large or
    a broker gone while waiting for metadata) or in its delivery (as a broker gone before it acknowledged)."""

    def __init__(self, real: Any, event_id: str, *, at_send: bool) -> None:
        self.real, self.event_id, self.at_send = real, event_id.encode(), at_send

    async def start(self) -> None:
        await self.real.start()

    async def stop(self) -> None:
        await self.real.stop()

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        if dict(headers)["ce_id"] != self.event_id:
            return await self.real.send(topic, value, key=key, headers=headers)
        refusal = KafkaConnectionError("connection to the broker lost")
        if self.at_send:
            raise refusal
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_exception(refusal)
        return delivery


def broker_refuses(monkeypatch: pytest.MonkeyPatch, event_id: str, *, at_send: bool) -> None:
    real = shared.messaging.kafka.make_producer
    monkeypatch.setattr(
        shared.messaging.dlq,
        "make_producer",
        lambda *args, **kwargs: RefusingProducer(real(*args, **kwargs), event_id, at_send=at_send),
    )


async def republished_ids(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(dict(r.headers)["ce_id"].decode() for r in await read_topic_to_end(bootstrap, topic))


async def replay_the_broker_stops(
    bootstrap: str,
    original: str,
    monkeypatch: pytest.MonkeyPatch,
    refused: str,
    *,
    at_send: bool,
    at: list[Position] | None = None,
) -> tuple[str, ReplayStoppedError]:
    """A replay, 5 letters at a time, of 13 + 9 dead letters of ``original`` whose broker refuses event ``refused``:
    the dead-letter topic and what stopped the replay."""
    dead = await send_dead_letters(bootstrap, original, [13, 9])
    broker_refuses(monkeypatch, refused, at_send=at_send)
    with pytest.raises(ReplayStoppedError) as stopped:
        await replay_dead_letters(bootstrap, dead, at, chunk_size=5)
    return dead, stopped.value


EVERY_LETTER = Counter([f"p0-{i}" for i in range(13)] + [f"p1-{i}" for i in range(9)])


async def test_a_replay_a_send_error_stops_says_how_many_it_replayed_and_going_on_from_there_sends_each_once(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = f"t.stop.{unique}"
    dead, stopped = await replay_the_broker_stops(kafka_bootstrap, original, monkeypatch, "p1-2", at_send=True)

    assert str(stopped) == (
        f"Replay of {dead} stopped: The Kafka broker failed: KafkaConnectionError: connection to the broker lost; "
        "15 dead letter(s) were replayed; replay the rest with --from 1:2."
    )
    assert (stopped.replayed, stopped.resume_from) == (15, Position(1, 2))
    assert await republished_ids(kafka_bootstrap, original) == EVERY_LETTER - Counter(f"p1-{i}" for i in range(2, 9))
    monkeypatch.undo()
    command = ["replay", "--bootstrap", kafka_bootstrap, "--topic", dead, "--from", "1:2"]
    assert await asyncio.to_thread(main, command) == 0
    assert await republished_ids(kafka_bootstrap, original) == EVERY_LETTER


async def test_a_replay_whose_letter_the_broker_refuses_mid_chunk_counts_the_later_ones_it_took_and_says_so(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Letters of a chunk are sent before their deliveries are awaited: those after a refused one may get through.
    original = f"t.refused.{unique}"
    _, stopped = await replay_the_broker_stops(kafka_bootstrap, original, monkeypatch, "p0-7", at_send=False)

    assert str(stopped).endswith(
        "; 9 dead letter(s) were replayed; replay the rest with --from 0:7 (2 of those replayed come after 0:7 and "
        "will be sent again, which the consumers' inbox ignores)."
    )
    assert await republished_ids(kafka_bootstrap, original) == Counter([f"p0-{i}" for i in range(10) if i != 7])


async def test_a_replay_the_broker_stops_while_it_reads_says_where_to_go_on_after_the_last_it_sent(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = f"t.gone.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [13, 9])
    real = shared.messaging.kafka.stream_topic_to_end

    async def two_chunks_then_gone(*args: Any, **kwargs: Any) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        chunks = real(*args, **kwargs)
        async with contextlib.aclosing(chunks):
            yield await anext(chunks)
            yield await anext(chunks)
        raise TimeoutError(f"{dead}[0] not read to offset 13 in time")

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", two_chunks_then_gone)

    with pytest.raises(ReplayStoppedError) as stopped:
        await replay_dead_letters(kafka_bootstrap, dead, chunk_size=5)

    assert str(stopped.value) == (
        f"Replay of {dead} stopped: The Kafka broker did not answer in time: {dead}[0] not read to offset 13 in time; "
        "10 dead letter(s) were replayed; replay the rest with --from 0:10."
    )


async def test_a_replay_at_positions_that_stops_names_the_positions_still_to_replay(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, stopped = await replay_the_broker_stops(
        kafka_bootstrap, f"t.stop.at.{unique}", monkeypatch, "p1-3", at_send=False, at=[Position(1, 3), Position(0, 1)]
    )

    assert str(stopped).endswith(
        "; 1 of the 2 dead letter(s) asked for were replayed; replay the others with --at 1:3."
    )
    assert (stopped.replayed, stopped.not_replayed) == (1, [Position(1, 3)])


async def test_both_replay_commands_that_stop_say_so_in_one_line_and_exit_1(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.stop.cli.{unique}", [3])
    broker_refuses(monkeypatch, "p0-1", at_send=True)
    said = (
        f"Replay of {dead} stopped: The Kafka broker failed: KafkaConnectionError: connection to the broker lost; "
        "1 dead letter(s) were replayed; replay the rest with --from 0:1.\n"
    )

    assert await asyncio.to_thread(main, ["replay", "--bootstrap", kafka_bootstrap, "--topic", dead]) == 1
    assert capsys.readouterr() == ("", said)
    result = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "replay", dead, "--bootstrap", kafka_bootstrap]
    )
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", said)


def test_the_python_commands_say_when_the_broker_cannot_be_reached_instead_of_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    for command in ("list", "replay"):
        assert main([command, "--bootstrap", unreachable, "--topic", "x.dlq"]) == 1
        said = capsys.readouterr().err
        assert said.startswith(("The Kafka broker failed: KafkaConnectionError", "Replay of x.dlq stopped: The Kafka"))
        assert len(said.splitlines()) == 1, said


# --- list --at shows the letters it names, in both commands -----------------------------------------------------


async def test_both_list_commands_show_just_the_dead_letters_at_the_positions_given(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.list.at.{unique}", [13, 9])
    python = ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--at", "1:4", "--at", "0:12"]
    mentorloom_list = ["dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--at", "1:4", "--at", "0:12"]

    assert await asyncio.to_thread(main, python) == 0
    text = capsys.readouterr()
    assert await asyncio.to_thread(main, [*python, "--json"]) == 0
    as_json = capsys.readouterr()
    table = await asyncio.to_thread(CliRunner().invoke, mentorloom, mentorloom_list)
    table_json = await asyncio.to_thread(CliRunner().invoke, mentorloom, [*mentorloom_list, "--json"])

    assert [line.split("\t")[:4] for line in text.out.splitlines()] == [
        ["0:12", "handler_failed", "probe.happened", "p0-12"],
        ["1:4", "handler_failed", "probe.happened", "p1-4"],
        [f"2 dead letter(s) at 0:12, 1:4 in {dead}"],
    ]
    assert [d["event_id"] for d in json.loads(as_json.out)] == ["p0-12", "p1-4"]
    assert (text.err, as_json.err) == ("", "")
    assert table.exit_code == 0, table.output
    assert f"2 dead letter(s) at 0:12, 1:4 in {dead}" in table.stdout
    assert tuple(word for word in ("p0-0", "p0-12", "p1-4") if word in table.stdout) == ("p0-12", "p1-4")
    assert table_json.stdout == as_json.out


async def test_both_list_commands_say_when_a_position_given_holds_no_dead_letter(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.list.typo.{unique}", [3])

    command = ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--at", "0:1", "--at", "0:30"]
    assert await asyncio.to_thread(main, command) == 1
    assert capsys.readouterr() == ("", f"no dead letter at 0:30 in {dead}\n")
    result = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--at", "0:30"]
    )
    assert (result.exit_code, result.stderr) == (1, f"no dead letter at 0:30 in {dead}\n")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["list", "--at", "0:1", "--limit", "5"], "--at shows just the dead letters at those positions"),
        (["list", "--at", "0:1", "--all"], "--at shows just the dead letters at those positions"),
        (["replay", "--at", "0:1", "--from", "0:1"], "give --at (just those dead letters) or --from"),
        (["list", "--at", "0:1", "--from", "0:1"], "give --at (just those dead letters) or --from"),
        (["list", "--from", "0:1,1:2,0:3"], "names a partition twice"),
    ],
)
def test_both_commands_refuse_options_that_do_not_go_together_as_a_usage_error(
    options: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command, *rest = options
    with pytest.raises(SystemExit) as exited:
        main([command, "--bootstrap", "127.0.0.1:1", "--topic", "x.dlq", *rest])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
    result = CliRunner().invoke(mentorloom, ["dlq", command, "x.dlq", "--bootstrap", "127.0.0.1:1", *rest])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.replace("│", " ").split())


def test_the_python_replay_refuses_lists_options_and_a_from_of_several_positions_as_mentorloom_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command, option, said in (("replay", "--offset=5", "for list"), ("replay", "--from=0:1,1:2", "one PARTITION")):
        with pytest.raises(SystemExit) as exited:
            main([command, "--bootstrap", "127.0.0.1:1", "--topic", "x.dlq", option])
        assert exited.value.code == 2
        assert said in capsys.readouterr().err


# --- list --all prints each letter as it is read ------------------------------------------------------------------


def letters_alive_at_each_chunk(monkeypatch: pytest.MonkeyPatch, chunk_size: int) -> list[int]:
    """Make the dead-letter tool read ``chunk_size`` records at a time; the number of dead letters alive (not yet
    garbage) each time it reads a chunk, filled in as it reads."""
    made_so_far: list[weakref.ref[Any]] = []
    real_letter = shared.messaging.dlq._dead_letter

    def letter(topic: str, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        made = real_letter(topic, record)
        made_so_far.append(weakref.ref(made))
        return made

    monkeypatch.setattr(shared.messaging.dlq, "_dead_letter", letter)
    return alive_at_each_chunk(monkeypatch, chunk_size, made_so_far)


def alive_at_each_chunk(
    monkeypatch: pytest.MonkeyPatch, chunk_size: int, made_so_far: list[weakref.ref[Any]]
) -> list[int]:
    """Make the dead-letter tool read ``chunk_size`` records at a time; how many of ``made_so_far`` are alive (not yet
    garbage) each time it reads a chunk, filled in as it reads."""
    counts: list[int] = []
    real_stream = shared.messaging.kafka.stream_topic_to_end

    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        chunks = real_stream(*args, **{**kwargs, "chunk_size": chunk_size})
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                gc.collect()
                counts.append(sum(1 for made in made_so_far if made() is not None))
                yield chunk

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", stream)
    return counts


async def test_both_list_commands_print_every_letter_as_they_read_it_holding_a_chunk_and_print_the_same(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.stream.{unique}", [40, 25])
    letters = (await list_dead_letters(kafka_bootstrap, dead, limit=None)).letters
    alive = letters_alive_at_each_chunk(monkeypatch, chunk_size=5)
    python = ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--all"]

    assert await asyncio.to_thread(main, python) == 0
    text, text_alive = capsys.readouterr(), alive.copy()
    alive.clear()
    assert await asyncio.to_thread(main, [*python, "--offset", "3", "--json"]) == 0
    as_json, json_alive = capsys.readouterr(), alive.copy()
    alive.clear()
    result = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--all", "--json"]
    )

    assert [line.split("\t")[0] for line in text.out.splitlines()] == [
        *(f"{d.partition}:{d.offset}" for d in letters),
        f"65 dead letter(s) in {dead}",
    ]
    assert as_json.out == json.dumps([d.summary() for d in letters[3:]], indent=2) + "\n"
    assert as_json.err == "Showed dead letters 4–65 of 65.\n"
    assert result.stdout == json.dumps([d.summary() for d in letters], indent=2) + "\n"
    for counts in (text_alive, json_alive, alive):
        assert len(counts) == 13
        assert max(counts) <= 2 * 5, counts  # the chunk being shown and the one read after it, not all 65


async def test_both_list_commands_print_an_empty_array_for_a_page_with_no_letters(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = await send_dead_letters(kafka_bootstrap, f"t.empty.{unique}", [2])

    assert (
        await asyncio.to_thread(
            main, ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--offset", "5", "--json"]
        )
        == 0
    )
    result = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--offset", "5", "--json"]
    )

    assert capsys.readouterr().out == result.stdout == "[]\n"


# --- nothing an operator reads is a traceback or a count that hides something ------------------------------------


def with_error(original: str, event_id: str, error: bytes) -> list[tuple[str, bytes]]:
    """The headers of a dead letter whose consumer's error was ``error``."""
    return [(k, error if k == "dlq_error" else v) for k, v in letter_headers(original, event_id)]


async def send_letters(
    bootstrap: str,
    original: str,
    letters: Sequence[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    *,
    partitions: int = 1,
) -> str:
    """The dead-letter topic of ``original`` with these letters (key, value, headers), spread over its partitions."""
    dead = dead_letter_topic(original)
    await ensure_topics(bootstrap, [dead, original], partitions=partitions)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for i, (key, value, headers) in enumerate(letters):
            await producer.send(dead, value, key=key, headers=headers, partition=i % partitions)
        await producer.flush()
    finally:
        await producer.stop()
    return dead


async def test_a_dead_letter_whose_attempts_header_is_not_a_number_is_listed_and_not_a_traceback(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    original = f"t.damaged.{unique}"
    damaged = [(k, b"three" if k == "dlq_attempts" else v) for k, v in letter_headers(original, "e0")]
    dead = await send_letters(
        kafka_bootstrap, original, [(None, b"{}", damaged), (None, b"{}", letter_headers(original, "e1"))]
    )

    assert await asyncio.to_thread(main, ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--json"]) == 0

    assert [(d["event_id"], d["attempts"]) for d in json.loads(capsys.readouterr().out)] == [("e0", None), ("e1", 3)]


async def test_both_commands_say_the_broker_has_no_such_topic_instead_of_zero_dead_letters(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A typo for a dead-letter topic of another broker listed "0 dead letter(s)" and replayed 0, exit 0.
    dead = await send_dead_letters(kafka_bootstrap, f"t.real.{unique}", [1])
    typo = f"t.rea.{unique}.dlq"

    for command in ("list", "replay"):
        assert await asyncio.to_thread(main, [command, "--bootstrap", kafka_bootstrap, "--topic", typo]) == 1
        said = capsys.readouterr()
        assert said.out == ""
        assert said.err.startswith(f"the broker has no topic {typo!r}; its dead-letter topics are ")
        assert dead in said.err
        result = await asyncio.to_thread(
            CliRunner().invoke, mentorloom, ["dlq", command, typo, "--bootstrap", kafka_bootstrap]
        )
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", said.err)


def test_mentorloom_dlq_says_the_broker_did_not_answer_in_time_not_that_the_demo_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stalled(*_: Any, **__: Any) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        raise TimeoutError("x.dlq[0] not read to offset 5 in time")
        yield []  # an async generator, as the real reader

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", stalled)

    result = CliRunner().invoke(mentorloom, ["dlq", "list", "x.dlq", "--bootstrap", "127.0.0.1:1"])

    assert (result.exit_code, result.stderr) == (
        1,
        "The Kafka broker did not answer in time: x.dlq[0] not read to offset 5 in time\n",
    )


@pytest.fixture
def ctrl_c_as_at_a_terminal() -> Iterator[None]:
    """SIGINT handled as in an interactive shell. A test run started in the background (`.ci/run &`, nohup) inherits
    SIGINT ignored; asyncio.run then installs no handler of its own and a raised SIGINT does nothing at all."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_both_replay_commands_stopped_by_ctrl_c_say_how_far_they_got_and_exit_130(
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ctrl_c_as_at_a_terminal: None,
) -> None:
    # In this (main) thread, so that asyncio.run turns SIGINT into cancelling the replay, as at a terminal.
    original = f"t.interrupted.{unique}"
    dead = asyncio.run(send_dead_letters(kafka_bootstrap, original, [13, 9]))
    real = shared.messaging.kafka.stream_topic_to_end

    async def ctrl_c_after_two_chunks(*args: Any, **kwargs: Any) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
        chunks = real(*args, **{**kwargs, "chunk_size": 5})
        async with contextlib.aclosing(chunks):
            yield await anext(chunks)
            yield await anext(chunks)
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(0)  # where the replay's task takes the cancellation: reading the third chunk
            yield await anext(chunks)

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", ctrl_c_after_two_chunks)
    said = (
        f"Replay of {dead} stopped: interrupted (Ctrl-C); 10 dead letter(s) were replayed; "
        "replay the rest with --from 0:10.\n"
    )

    assert main(["replay", "--bootstrap", kafka_bootstrap, "--topic", dead]) == 130
    assert capsys.readouterr() == ("", said)
    result = CliRunner().invoke(mentorloom, ["dlq", "replay", dead, "--bootstrap", kafka_bootstrap])
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", said)
    assert asyncio.run(republished_ids(kafka_bootstrap, original)) == Counter(
        2 * [f"p0-{i}" for i in range(10)]  # each run sent the first 10 and no more
    )


@pytest.mark.parametrize("command", ["list", "replay"])
def test_both_commands_print_one_line_when_the_broker_cannot_be_reached_not_the_kafka_clients_log(
    command: str,
) -> None:
    # The client logs each failed connection at ERROR: hundreds of lines while a broker is gone during a replay.
    unreachable = f"127.0.0.1:{free_port()}"
    for entry_point in (
        ["shared.messaging.dlq", command, "--bootstrap", unreachable, "--topic", "x.dlq"],
        ["deploy.local.cli", "dlq", command, "x.dlq", "--bootstrap", unreachable],
    ):
        ran = subprocess.run(
            [sys.executable, "-m", *entry_point], capture_output=True, text=True, timeout=60, check=False
        )
        assert (ran.returncode, ran.stdout) == (1, ""), ran.stderr
        assert len(ran.stderr.splitlines()) == 1, ran.stderr
        assert "The Kafka broker failed: KafkaConnectionError: Unable to bootstrap" in ran.stderr


def test_a_replay_stopped_by_ctrl_c_while_a_chunk_is_delivered_waits_for_it_and_counts_what_arrived(
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ctrl_c_as_at_a_terminal: None,
) -> None:
    original = f"t.interrupted.send.{unique}"
    dead = asyncio.run(send_dead_letters(kafka_bootstrap, original, [13]))
    real_producer, real_stream = shared.messaging.kafka.make_producer, shared.messaging.kafka.stream_topic_to_end

    class CtrlCAtTheLastSend(RefusingProducer):
        async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
            delivery = await self.real.send(topic, value, key=key, headers=headers)
            if dict(headers)["ce_id"] == self.event_id:
                signal.raise_signal(signal.SIGINT)  # the task takes it where it next waits: for the deliveries
            return delivery

    monkeypatch.setattr(
        shared.messaging.dlq,
        "make_producer",
        lambda *args, **kwargs: CtrlCAtTheLastSend(real_producer(*args, **kwargs), "p0-9", at_send=False),
    )
    monkeypatch.setattr(
        shared.messaging.dlq,
        "stream_topic_to_end",
        lambda *args, **kwargs: real_stream(*args, **{**kwargs, "chunk_size": 5}),
    )

    assert main(["replay", "--bootstrap", kafka_bootstrap, "--topic", dead]) == 130

    arrived = sum(asyncio.run(republished_ids(kafka_bootstrap, original)).values())
    assert capsys.readouterr().err.endswith(
        f"; {arrived} dead letter(s) were replayed; replay the rest with --from 0:{arrived}.\n"
    )
    assert arrived == 10


async def test_a_replay_sends_each_letters_key_and_value_bytes_as_they_were(kafka_bootstrap: str, unique: str) -> None:
    # Keys and values are bytes: one that is not UTF-8, an empty key, no value at all must not come back as text.
    original = f"t.bytes.{unique}"
    sent = [(b"\xff\xfe", b"\x00\x9f"), (b"", b"{}"), (b"k", None), (None, b"v")]
    letters = [(key, value, letter_headers(original, f"e{i}")) for i, (key, value) in enumerate(sent)]
    dead = await send_letters(kafka_bootstrap, original, letters)

    assert await replay_dead_letters(kafka_bootstrap, dead) == 4

    assert [(r.key, r.value) for r in await read_topic_to_end(kafka_bootstrap, original)] == sent


async def test_the_python_list_prints_one_line_per_dead_letter_whatever_its_error_holds(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pydantic error spans lines; a tab would shift the fields after it. Each letter is one line of 5 fields.
    original = f"t.lines.{unique}"
    error = b"1 validation error for MatchProposed\nscore\n  Field required\t[type=missing]"
    dead = await send_letters(kafka_bootstrap, original, [(None, b"{}", with_error(original, "e0", error))])

    assert await asyncio.to_thread(main, ["list", "--bootstrap", kafka_bootstrap, "--topic", dead]) == 0

    assert capsys.readouterr().out.splitlines() == [
        "0:0\thandler_failed\tprobe.happened\te0\tRuntimeError: "
        "1 validation error for MatchProposed score Field required [type=missing]",
        f"1 dead letter(s) in {dead}",
    ]


class CountedText(Text):
    """A cell that can be counted while alive (rich's Text cannot be referred to weakly)."""


def table_rows_alive_at_each_chunk(monkeypatch: pytest.MonkeyPatch, chunk_size: int) -> list[int]:
    """Make `mentorloom dlq list` read and print ``chunk_size`` letters at a time; the number of table rows alive (not
    yet garbage) each time it reads a chunk, filled in as it reads."""
    made_so_far: list[weakref.ref[Any]] = []
    real_row = deploy.local.dead_letter_table.row

    def row(letter: DeadLetter) -> tuple[Text, ...]:
        first, *rest = real_row(letter)
        counted = CountedText(first.plain)
        made_so_far.append(weakref.ref(counted))
        return (counted, *rest)

    monkeypatch.setattr(deploy.local.dead_letter_table, "row", row)
    monkeypatch.setattr(shared.messaging.dlq, "CHUNK_SIZE", chunk_size)
    return alive_at_each_chunk(monkeypatch, chunk_size, made_so_far)


async def test_mentorloom_dlq_list_all_prints_the_same_table_a_chunk_of_rows_at_a_time(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cells of many widths, some wrapped, so the layout depends on the widest of them all.
    original = f"t.table.{unique}"
    errors = [(" ".join(["because"] * (i % 6)) + "x" * (i * 7 % 45)).encode() for i in range(33)]
    letters = [(None, b"{}", with_error(original, "e" * i, error)) for i, error in enumerate(errors)]
    dead = await send_letters(kafka_bootstrap, original, letters, partitions=2)
    listing = ["dlq", "list", dead, "--bootstrap", kafka_bootstrap]
    whole = await asyncio.to_thread(CliRunner().invoke, mentorloom, [*listing, "--offset", "2"])  # one table
    alive = table_rows_alive_at_each_chunk(monkeypatch, chunk_size=5)

    streamed = await asyncio.to_thread(CliRunner().invoke, mentorloom, [*listing, "--offset", "2", "--all"])

    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == whole.stdout
    assert "dead letters 3–33 of 33" in streamed.stdout
    assert streamed.stderr == whole.stderr == "Showed dead letters 3–33 of 33.\n"
    assert len(alive) == 2 * 8  # two readings of 17 + 16 letters, 5 at a time in each partition
    assert max(alive) <= 2 * 5 + 2, alive  # a chunk printing, a chunk held back, the widest cells: not all 31


@pytest.mark.parametrize("entry_point", ["python", "mentorloom", "mentorloom table"])
def test_a_listing_whose_reader_stops_reading_ends_quietly_not_blaming_the_broker(
    kafka_bootstrap: str, unique: str, entry_point: str
) -> None:
    # `dlq list --all | head`: the pipe closes while the listing goes on. It said "The Kafka broker failed: [Errno 32]
    # Broken pipe" (and before the listing streamed: a BrokenPipeError traceback).
    dead = asyncio.run(send_dead_letters(kafka_bootstrap, f"t.pipe.{unique}", [1500]))
    command = {
        "python": ["shared.messaging.dlq", "list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--all"],
        "mentorloom": ["deploy.local.cli", "dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--all", "--json"],
        "mentorloom table": ["deploy.local.cli", "dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--all"],
    }[entry_point]
    with subprocess.Popen([sys.executable, "-m", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as listing:
        assert listing.stdout is not None
        listing.stdout.readline()
        listing.stdout.close()  # as head does after its lines
        _, said = listing.communicate(timeout=60)

    assert (listing.returncode, said) == (1, b"")


# --- what a listing shows of a letter is whole, or says what it left out ------------------------------------------


async def test_both_json_listings_carry_each_letters_whole_value_as_text_or_base64_with_its_size(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The value was cut to its first 500 bytes without a word: a JSON event of 2 kB came out as invalid JSON.
    original = f"t.whole.{unique}"
    event = json.dumps({"note": "é" * 1000, "end": True}).encode()
    binary = bytes(range(256)) * 3
    sent = [(None, event, letter_headers(original, "e0")), (None, binary, letter_headers(original, "e1"))]
    dead = await send_letters(kafka_bootstrap, original, sent)

    assert await asyncio.to_thread(main, ["list", "--bootstrap", kafka_bootstrap, "--topic", dead, "--json"]) == 0
    as_json = capsys.readouterr().out
    result = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--json"]
    )

    text, other = json.loads(as_json)
    assert json.loads(text["value"]) == {"note": "é" * 1000, "end": True}
    assert (text["value_encoding"], text["value_base64"], text["value_size"]) == ("utf-8", None, len(event))
    assert (other["value_encoding"], other["value"], other["value_size"]) == ("base64", None, 768)
    assert base64.b64decode(other["value_base64"]) == binary
    assert result.stdout == as_json


async def test_both_text_listings_say_how_much_of_a_long_error_they_left_out(
    kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    original = f"t.long.error.{unique}"
    error = "x" * 300
    dead = await send_letters(kafka_bootstrap, original, [(None, b"{}", with_error(original, "e0", error.encode()))])

    assert await asyncio.to_thread(main, ["list", "--bootstrap", kafka_bootstrap, "--topic", dead]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    table = await asyncio.to_thread(
        CliRunner().invoke, mentorloom, ["dlq", "list", dead, "--bootstrap", kafka_bootstrap]
    )

    assert line.endswith("\tRuntimeError: " + "x" * 120 + "… (+180 characters)")
    assert "x" * 80 + "…(+220characters)" in "".join(table.stdout.replace("│", "").split())


# --- the next page a listing names holds the letters after it, however many arrive ---------------------------------


async def add_letters(bootstrap: str, dead: str, original: str, letters: Sequence[tuple[int, str]]) -> None:
    """Dead letters arriving on ``dead``: (partition, event id) each."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for partition, event_id in letters:
            await producer.send(dead, b"{}", headers=letter_headers(original, event_id), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def listed_page(entry_point: str, bootstrap: str, dead: str, options: Sequence[str]) -> tuple[list[str], str]:
    """The event ids a JSON listing of 5 shows and the note it prints, by ``entry_point``."""
    if entry_point == "python":
        command = ["list", "--bootstrap", bootstrap, "--topic", dead, "--json", "--limit", "5", *options]
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
            assert await asyncio.to_thread(main, command) == 0
        shown, note = out.getvalue(), err.getvalue()
    else:
        command = ["dlq", "list", dead, "--bootstrap", bootstrap, "--json", "--limit", "5", *options]
        result = await asyncio.to_thread(CliRunner().invoke, mentorloom, command)
        assert result.exit_code == 0, result.output
        shown, note = result.stdout, result.stderr
    return [d["event_id"] for d in json.loads(shown)], " ".join(note.split())


async def page_as_the_notes_say(
    entry_point: str, bootstrap: str, dead: str, original: str, arriving: Sequence[Sequence[tuple[int, str]]]
) -> tuple[list[str], list[str]]:
    """Pages of 5 from the first on, each from where the previous note names the next page, with ``arriving[i]``
    added after page i: the event ids listed, in order, and each page's note."""
    later = iter(arriving)
    listed: list[str] = []
    options: list[str] = []
    notes: list[str] = []
    for _ in range(8):  # more would be a listing that never ends
        shown, note = await listed_page(entry_point, bootstrap, dead, options)
        listed += shown
        notes.append(note)
        hint = re.search(r"the next with (--\S+) (\S+),", note)
        if hint is None:
            break
        options = list(hint.groups())
        await add_letters(bootstrap, dead, original, next(later, []))
    return listed, notes


@pytest.mark.parametrize("entry_point", ["python", "mentorloom"])
async def test_paging_as_the_listing_says_shows_every_letter_once_while_letters_arrive_in_any_partition(
    kafka_bootstrap: str, unique: str, entry_point: str
) -> None:
    # "the next with --offset N" counted positions in the stream as it was: a letter arriving in an earlier partition
    # between two pages shifted the next page, which showed the last letter again and never showed the new one.
    original = f"t.paging.{entry_point}.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [5, 4, 3])
    arriving = [[(0, "late-a"), (1, "late-b"), (2, "late-c")], [(0, "late-d")]]

    listed, notes = await page_as_the_notes_say(entry_point, kafka_bootstrap, dead, original, arriving)

    every = [f"p{p}-{i}" for p, count in enumerate([5, 4, 3]) for i in range(count)]
    assert Counter(listed) == Counter([*every, "late-a", "late-b", "late-c", "late-d"])
    assert notes[:2] == [
        "Showed dead letters 1–5 of 12; the next with --from 0:5, or every one with --all.",
        "Showed dead letters 1–5 of 10 from 0:5; the next with --from 0:6,1:4, or every one with --all.",
    ]


@pytest.mark.parametrize("entry_point", ["python", "mentorloom"])
async def test_a_page_filled_by_letters_arriving_in_an_earlier_partition_names_a_next_page_that_goes_on_in_the_later_ones(
    kafka_bootstrap: str, unique: str, entry_point: str
) -> None:
    # Page 2 starts from 0:2,1:2,2:1 and is filled by letters that arrived in partition 0 meanwhile: its next page
    # must still begin partitions 1 and 2 where page 1 left them, not at their first letter again.
    original = f"t.paging-later.{entry_point}.{unique}"
    dead = await send_dead_letters(kafka_bootstrap, original, [2, 2, 2])
    late = [(0, f"late-{i}") for i in range(6)]

    listed, notes = await page_as_the_notes_say(entry_point, kafka_bootstrap, dead, original, [late])

    every = [f"p{p}-{i}" for p in range(3) for i in range(2)]
    assert Counter(listed) == Counter([*every, *(event_id for _, event_id in late)]), notes
    assert (
        notes[1]
        == "Showed dead letters 1–5 of 7 from 0:2,1:2,2:1; the next with --from 0:7,1:2,2:1, or every one with --all."
    )
