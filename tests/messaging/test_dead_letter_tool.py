"""The dead-letter inspect/replay tool (`mentorloom dlq`, `python -m shared.messaging.dlq`) against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from deploy.local.cli import app as mentorloom
from deploy.local.servers import free_port
from shared.events.registry import dead_letter_topic
from shared.messaging.dlq import (
    NotADeadLetterTopicError,
    Position,
    UnknownDeadLetterError,
    main,
    parse_position,
    read_dead_letters,
    replay_dead_letters,
)
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end

pytestmark = pytest.mark.integration


def letter_headers(original_topic: str, event_id: str) -> list[tuple[str, bytes]]:
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

    assert [(d.partition, d.offset, d.event_id) for d in replayed] == [(1, 0, "b")]
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
