"""The documented example subscriber (docs/consumer-example/) against the real embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import sqlite3
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from deploy.local.servers import free_port
from shared.events import samples
from shared.events.envelope import encode
from shared.messaging.kafka import ensure_topics, make_producer

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "consumer-example" / "subscriber.py"


def load_example() -> ModuleType:
    """The example lives in docs/ as a plain script (a dashed directory is no package), so load it by path."""
    spec = importlib.util.spec_from_file_location("consumer_example_subscriber", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def publish(bootstrap: str, topic: str, records: list[tuple[list[tuple[str, bytes]], bytes]]) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for headers, value in records:
            await producer.send_and_wait(topic, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


async def consume_until(
    example: ModuleType, subscriber: object, bootstrap: str, group: str, topic: str, done: object
) -> None:
    stop = asyncio.Event()
    plaintext = example.connection_options()  # what the example passes for a local broker
    task = asyncio.create_task(example.run(subscriber, bootstrap, group, stop, topics=[topic], connection=plaintext))
    for _ in range(300):
        if done():  # type: ignore[operator]
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_the_example_subscriber_validates_events_and_handles_a_redelivered_one_once(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    example = load_example()
    topic, group = f"example-{unique}", f"example-subscriber-{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    events = [
        encode(samples.match_accepted()),
        encode(samples.profile_updated()),
        encode(samples.check_in_due()),
    ]
    accepted = events[0]
    invalid_headers = [(k, v) for k, v in accepted.headers if k != "ce_id"] + [("ce_id", b"not-the-same-event")]
    unknown_type = [(k, b"org.mentorloom.something-newer.v9" if k == "ce_type" else v) for k, v in accepted.headers]
    await publish(
        kafka_bootstrap,
        topic,
        [
            *((e.headers, e.value) for e in events),
            (accepted.headers, accepted.value),  # redelivered: same ce_id
            (invalid_headers, json.dumps({"match_id": "not a uuid"}).encode()),  # fails the JSON Schema
            (unknown_type, accepted.value),  # a type this consumer does not know: skipped
        ],
    )
    database = tmp_path / "handled.sqlite3"
    subscriber = example.Subscriber(database)
    await consume_until(
        example, subscriber, kafka_bootstrap, group, topic, lambda: subscriber.duplicates + subscriber.invalid >= 2
    )

    handled = subscriber.handled()
    assert [row[1] for row in handled] == [dict(e.headers)["ce_type"].decode() for e in events]
    assert len({row[0] for row in handled}) == 3
    assert (subscriber.duplicates, subscriber.invalid) == (1, 1)
    [(aside_topic, _, aside_offset, aside_type, why)] = subscriber.set_aside()  # kept for a human, with its place
    assert (aside_topic, aside_offset, aside_type) == (topic, 4, "org.mentorloom.match.accepted.v1")
    assert why

    # A restart of the same group resumes after the committed offsets; a later redelivery is still absorbed.
    await publish(kafka_bootstrap, topic, [(accepted.headers, accepted.value)])
    restarted = example.Subscriber(database)
    await consume_until(example, restarted, kafka_bootstrap, group, topic, lambda: restarted.duplicates >= 1)
    assert restarted.duplicates == 1
    assert restarted.handled() == handled


def test_the_example_connects_to_a_secured_cluster_with_tls_and_sasl_from_its_flags_and_environment() -> None:
    example = load_example()
    assert example.connection_options() == {"security_protocol": "PLAINTEXT"}
    options = example.connection_options(
        "SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="hr-system",
        environ={"KAFKA_SASL_PASSWORD": "s3cret"},
    )
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED  # the brokers' certificates are checked
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "hr-system",
        "sasl_plain_password": "s3cret",
    }


def test_the_example_refuses_sasl_without_a_password_and_says_where_it_is_read_from() -> None:
    example = load_example()
    with pytest.raises(SystemExit, match="KAFKA_SASL_PASSWORD"):
        example.connection_options("SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="hr-system", environ={})


# --- malformed input: set aside with a reason, never raised (a raise would stop the loop on the same record after
# every restart, since its offset is never committed) ----------------------------------------------------------------


def record(
    headers: list[tuple[str, bytes | None]], value: bytes | None, offset: int = 7
) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka hands it to the example (aiokafka's own type, as the consumer builds it)."""
    return ConsumerRecord(
        topic="mentorloom.matching.v1",
        partition=3,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=headers,  # type: ignore[arg-type]  # a broker may send a header without a value
    )


def accepted_record() -> tuple[list[tuple[str, bytes | None]], bytes]:
    encoded = encode(samples.match_accepted())
    return list(encoded.headers), encoded.value


def replaced(headers: list[tuple[str, bytes | None]], name: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in headers if k != name] + ([(name, value)] if value is not None else [])


def with_data(value: bytes, **changes: object) -> bytes:
    return json.dumps({**json.loads(value), **changes}).encode()


HEADERS, VALUE = accepted_record()
MALFORMED = {
    "no ce_id": (replaced(HEADERS, "ce_id", None), VALUE, "ce_id"),
    "a ce_id that is no UUID": (replaced(HEADERS, "ce_id", b"\xff\xfe"), VALUE, "ce_id"),
    "no ce_tenantid": (replaced(HEADERS, "ce_tenantid", None), VALUE, "ce_tenantid"),
    "a tenant header other than the data's": (
        replaced(HEADERS, "ce_tenantid", b"00000000-0000-4000-8000-000000000001"),
        VALUE,
        "ce_tenantid",
    ),
    "no value (a tombstone)": (HEADERS, None, "not JSON"),
    "a value that is no JSON": (HEADERS, b"\xff{", "not JSON"),
    "JSON nested too deep to parse": (HEADERS, b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    "a required field missing": (HEADERS, json.dumps({"match_id": str(uuid.uuid4())}).encode(), "required"),
    "an id that is no UUID": (HEADERS, with_data(VALUE, match_id="not a uuid"), "match_id"),
    "an instant that is no RFC 3339 time": (HEADERS, with_data(VALUE, activated_at="yesterday"), "activated_at"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_record_is_set_aside_with_its_position_and_reason_instead_of_stopping_the_loop(
    case: str, tmp_path: Path
) -> None:
    headers, value, reason = MALFORMED[case]
    subscriber = load_example().Subscriber(tmp_path / "handled.sqlite3")
    subscriber.receive(record(headers, value))
    assert subscriber.handled() == []
    [(topic, partition, offset, ce_type, why)] = subscriber.set_aside()
    assert (topic, partition, offset, ce_type) == ("mentorloom.matching.v1", 3, 7, "org.mentorloom.match.accepted.v1")
    assert reason in why


def test_headers_the_example_does_not_read_may_be_empty_or_binary_without_losing_the_event(tmp_path: Path) -> None:
    subscriber = load_example().Subscriber(tmp_path / "handled.sqlite3")
    subscriber.receive(record([*HEADERS, ("ce_tracestate", None), ("x-binary", b"\xff\x00")], VALUE))
    assert [row[1] for row in subscriber.handled()] == ["org.mentorloom.match.accepted.v1"]
    assert subscriber.set_aside() == []


def test_a_field_added_to_an_event_within_v1_is_ignored_not_refused(tmp_path: Path) -> None:
    # New optional fields arrive without notice within v1 (docs/events/README.md); the committed schemas are closed.
    subscriber = load_example().Subscriber(tmp_path / "handled.sqlite3")
    subscriber.receive(record(HEADERS, with_data(VALUE, field_added_later={"any": "thing"})))
    assert [row[1] for row in subscriber.handled()] == ["org.mentorloom.match.accepted.v1"]
    assert subscriber.set_aside() == []


def test_every_sample_event_as_the_services_encode_it_is_handled(tmp_path: Path) -> None:
    # ProfileUpdated's availability times are local wall-clock times without an offset: the checked formats must
    # accept what the producers send.
    subscriber = load_example().Subscriber(tmp_path / "handled.sqlite3")
    for offset, envelope in enumerate(samples.all_samples()):
        encoded = encode(envelope)
        subscriber.receive(record(list(encoded.headers), encoded.value, offset=offset))
    assert subscriber.set_aside() == []
    assert len(subscriber.handled()) == len(samples.all_samples())


# --- the command line ----------------------------------------------------------------------------------------------


def run_example(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_option_of_the_example_says_what_it_does_in_help() -> None:
    parser = load_example().make_parser()
    silent = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings and not (action.help and action.help.strip())
    ]
    assert silent == []
    assert "KAFKA_SASL_PASSWORD" in parser.format_help()


def test_an_unknown_type_to_follow_is_a_usage_error_naming_the_catalogue(tmp_path: Path) -> None:
    done = run_example(
        "--bootstrap", "127.0.0.1:9", "--database", str(tmp_path / "x.sqlite3"), "--type", "match.accepted"
    )
    assert done.returncode == 2
    assert "'match.accepted'" in done.stderr
    assert "org.mentorloom.match.accepted.v1" in done.stderr


def test_a_broker_that_cannot_be_reached_is_said_in_a_line_naming_it_and_exit_1(tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    done = run_example("--bootstrap", closed, "--database", str(tmp_path / "x.sqlite3"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert closed in done.stderr.strip().splitlines()[-1]  # the last word is the example's (aiokafka logs before it)


@pytest.mark.parametrize("content", [None, b"not a certificate"], ids=["missing", "no PEM"])
def test_a_ca_file_that_cannot_be_used_is_a_usage_error_naming_it(content: bytes | None, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    if content is not None:
        ca_file.write_bytes(content)
    done = run_example(
        *("--bootstrap", "127.0.0.1:9", "--database", str(tmp_path / "x.sqlite3")),
        *("--security-protocol", "SSL", "--ca-file", str(ca_file)),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"--ca-file {ca_file}" in done.stderr


def test_a_database_that_cannot_be_opened_is_one_line_naming_it_and_exit_1(tmp_path: Path) -> None:
    nowhere = tmp_path / "no such directory" / "x.sqlite3"
    done = run_example("--bootstrap", "127.0.0.1:9", "--database", str(nowhere))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert str(nowhere) in done.stderr


async def test_a_new_group_started_from_now_skips_what_was_published_before(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    example = load_example()
    topic = f"example-now-{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    before = encode(samples.match_accepted(match_id=uuid.uuid4()))
    await publish(kafka_bootstrap, topic, [(before.headers, before.value)])
    subscriber = example.Subscriber(tmp_path / "handled.sqlite3")
    stop = asyncio.Event()
    connection = example.connection_options()
    task = asyncio.create_task(
        example.run(
            subscriber, kafka_bootstrap, f"g-{unique}", stop, topics=[topic], connection=connection, start_from="now"
        )
    )
    # Whether a record published now comes before or after the new group's position is a race, so publish until
    # one is handled; the record from before must never be.
    for _ in range(300):
        if subscriber.handled():
            break
        later = encode(samples.match_accepted(match_id=uuid.uuid4()))
        await publish(kafka_bootstrap, topic, [(later.headers, later.value)])
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 30)
    handled_ids = {row[0] for row in subscriber.handled()}
    assert handled_ids
    assert dict(before.headers)["ce_id"].decode() not in handled_ids


def handled_rows(database: Path) -> int:
    """Rows in the example's handled table; 0 until the example has created it (the file comes first, then the
    table: a poll in between met 'no such table')."""
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM handled").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_stop_signal_ends_the_example_cleanly_with_what_it_handled_committed(
    stop_signal: signal.Signals, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic, group, database = f"example-stop-{unique}", f"g-{unique}", tmp_path / "handled.sqlite3"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    event = encode(samples.match_accepted())
    await publish(kafka_bootstrap, topic, [(event.headers, event.value)])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *("--bootstrap", kafka_bootstrap, "--group", group, "--topic", topic, "--database", str(database)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if handled_rows(database):
                break
            await asyncio.sleep(0.1)
        assert process.returncode is None, "the example ended before it was told to"
        process.send_signal(stop_signal)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        exit_code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (exit_code, stderr.decode()) == (0, "")
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        assert await probe.committed(TopicPartition(topic, 0)) == 1
    finally:
        await probe.stop()
