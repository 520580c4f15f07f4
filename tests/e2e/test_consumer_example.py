"""The documented example subscriber (docs/consumer-example/) against the real embedded broker."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import ssl
import sys
from pathlib import Path
from types import ModuleType

import pytest

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
