"""Health, readiness, metrics and trace propagation of the shared service kit, against the real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerClosed
from fastapi import Request
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import shared.service
from deploy.local.servers import free_port
from shared.db import asyncpg_dsn, session_factory
from shared.events import samples
from shared.events.envelope import decode
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay, _leader_lock_key, add_events, add_messages
from shared.messaging.tables import OUTBOX
from shared.service import Runtime, ServiceDefinition, create_service_app, run_roles
from shared.settings import ServiceSettings
from shared.tracing import current_trace_id
from tests.consumer_groups import start_group_at_the_end
from tests.messaging.support import create_messaging_schema, eventually, probe_message

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def make_runtime(database_url: str, redis_url: str, kafka_bootstrap: str) -> Runtime:
    settings = ServiceSettings(
        database_url=database_url, redis_url=redis_url, kafka_bootstrap=kafka_bootstrap, service_name="probe"
    )
    return Runtime.from_settings(settings)


def app_for(runtime: Runtime):  # type: ignore[no-untyped-def]
    app = create_service_app(runtime, title="probe", description="probe service")

    @app.post("/matches/{n}/end")
    async def end_match(n: int, request: Request) -> dict[str, str | None]:
        async with runtime.sessions() as session, session.begin():
            await add_events(session, [samples.match_ended()])
        return {"trace_id": current_trace_id()}

    return app


def client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe")


async def test_liveness_answers_without_touching_dependencies(database_url, redis_url):
    runtime = make_runtime(database_url, redis_url, "127.0.0.1:1")
    async with client(app_for(runtime)) as c:
        response = await c.get("/healthz")
    await runtime.close()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_is_ok_when_database_broker_and_redis_answer(database_url, redis_url, kafka_bootstrap):
    runtime = make_runtime(database_url, redis_url, kafka_bootstrap)
    async with client(app_for(runtime)) as c:
        response = await c.get("/readyz")
    await runtime.close()
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "ok"}


async def test_readiness_turns_false_and_names_the_broker_when_it_is_unreachable(database_url, redis_url):
    runtime = make_runtime(database_url, redis_url, "127.0.0.1:1")
    async with client(app_for(runtime)) as c:
        response = await c.get("/readyz")
    await runtime.close()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"] == "ok"
    assert checks["broker"].startswith("error")


async def test_readiness_turns_false_when_redis_is_unreachable(database_url, kafka_bootstrap):
    runtime = make_runtime(database_url, "redis://127.0.0.1:1/0", kafka_bootstrap)
    async with client(app_for(runtime)) as c:
        response = await c.get("/readyz")
    await runtime.close()
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")


async def test_metrics_expose_http_and_messaging_series(database_url, redis_url):
    runtime = make_runtime(database_url, redis_url, "127.0.0.1:1")
    async with client(app_for(runtime)) as c:
        await c.get("/healthz")
        body = (await c.get("/metrics")).text
    await runtime.close()
    assert 'mentorloom_http_requests_total{method="GET",route="/healthz",service="probe",status="200"}' in body
    for series in (
        "mentorloom_outbox_backlog",
        "mentorloom_consumer_lag",
        "mentorloom_handler_errors_total",
        "mentorloom_dead_letters_total",
        "mentorloom_outbox_batch_rows",
        "mentorloom_consumer_batch_records",
    ):
        assert f"# TYPE {series}" in body


async def test_the_trace_of_an_http_request_travels_into_the_event_and_out_of_the_consumer(
    engine: AsyncEngine, database_url, redis_url, kafka_bootstrap, unique
):
    await create_messaging_schema(engine)
    runtime = make_runtime(database_url, redis_url, kafka_bootstrap)
    async with client(app_for(runtime)) as c:
        response = await c.post("/matches/1/end", headers={"traceparent": TRACEPARENT})
    assert response.json()["trace_id"] == TRACE_ID, "the request runs in the caller's trace"

    async with engine.connect() as conn:
        headers = json.loads((await conn.execute(select(OUTBOX.c.headers))).scalar_one())
    event_id = uuid.UUID(headers["ce_id"])
    assert headers["ce_traceparent"].split("-")[1] == TRACE_ID
    assert headers["ce_traceparent"] != TRACEPARENT, "the event is a new span of the same trace"

    topic = await _outbox_topic(engine)
    # The topic is the contract's own (mentorloom.matching.v1), which other tests on this broker also write: the
    # consumer's group starts where it ends before the event is published, not behind every earlier test's events.
    await start_group_at_the_end(kafka_bootstrap, f"probe-{unique}", [topic])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    await OutboxRelay(engine, producer, service=f"probe-{unique}").drain()
    await producer.stop()

    seen: list[str | None] = []

    async def handler(session, event):  # type: ignore[no-untyped-def]
        if event.id == event_id:
            seen.append(current_trace_id())

    runner = ConsumerRunner(
        name=f"probe-{unique}",
        topics=[topic],
        bootstrap=kafka_bootstrap,
        sessions=session_factory(engine),
        handler=handler,
        decode=decode,
    )
    task = asyncio.create_task(runner.run())
    try:
        await eventually(lambda: _nonempty(seen))
    finally:
        runner.stop()
        await asyncio.wait_for(task, 20)
        await runtime.close()
    assert seen == [TRACE_ID]


async def _outbox_topic(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT topic FROM outbox"))).scalar_one())


async def _nonempty(items: list[str | None]) -> bool:
    return bool(items)


async def test_a_relay_process_serves_its_own_outbox_metrics_and_probes_on_the_metrics_port(
    engine: AsyncEngine, database_url, redis_url, kafka_bootstrap, unique
):
    # In Kubernetes the relay runs alone in its pods: its counters exist only in its own process.
    await create_messaging_schema(engine)
    topic = f"t.ops.{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(topic, f"e{i}") for i in range(3)])
    port = free_port()
    settings = ServiceSettings(
        database_url=database_url,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        service_name="probe",
        http_host="127.0.0.1",
        metrics_port=port,
    )
    definition = ServiceDefinition(name=f"probe-{unique}", migrations_dir=Path("."), build_app=app_for)
    relay_process = asyncio.create_task(run_roles(definition, ["relay"], settings))
    published = f'mentorloom_outbox_published_total{{service="probe-{unique}"}} 3.0'
    emptied = f'mentorloom_outbox_backlog{{service="probe-{unique}"}} 0.0'  # counted again within a second

    async def scraped() -> str | None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            with contextlib.suppress(httpx.TransportError):
                body = (await c.get("/metrics")).text
                return body if published in body and emptied in body else None
        return None

    try:
        body = await eventually(scraped)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            health, readiness = await c.get("/healthz"), await c.get("/readyz")
    finally:
        relay_process.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_process
    assert body is not None, "the relay's own series are scraped from its process"
    assert health.status_code == 200
    assert readiness.json()["checks"] == {"database": "ok", "broker": "ok", "redis": "ok"}


async def test_a_relay_process_that_is_cancelled_stops_as_on_a_signal_and_closes_its_producer(
    engine: AsyncEngine, database_url, redis_url, kafka_bootstrap, unique, monkeypatch: pytest.MonkeyPatch
):
    # Cancelling is how asyncio code stops a task (the relay test above does); the relay it left running kept its
    # producer open, and aiokafka printed 'Unclosed AIOKafkaProducer' at the end of the test run.
    await create_messaging_schema(engine)
    topic = f"t.cancel.{unique}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(topic, "e0")])
    built: list[AIOKafkaProducer] = []

    def recorded_producer(*args: Any, **kwargs: Any) -> AIOKafkaProducer:
        built.append(make_producer(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(shared.service, "make_producer", recorded_producer)
    settings = ServiceSettings(
        database_url=database_url,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        service_name="probe",
        metrics_port=0,
    )
    definition = ServiceDefinition(name=f"probe-{unique}", migrations_dir=Path("."), build_app=app_for)
    relay_process = asyncio.create_task(run_roles(definition, ["relay"], settings))

    async def published() -> bool:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()) == 0

    try:
        assert await eventually(published)
    finally:
        relay_process.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_process
    assert built
    for producer in built:
        with pytest.raises(ProducerClosed):
            await producer.send(topic, b"after the end")
    # Its signal handlers went with it: Ctrl-C interrupts the test run again instead of setting a finished event.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


async def test_the_outbox_backlog_gauge_shows_rows_piling_up_while_the_broker_is_unreachable(
    engine: AsyncEngine, unique
):
    await create_messaging_schema(engine)
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(f"t.backlog.{unique}", f"e{i}") for i in range(5)])
    service = f"probe-{unique}"
    unreachable = make_producer(
        f"127.0.0.1:{free_port()}"
    )  # never started: every batch fails as if the broker were down
    relay = OutboxRelay(engine, unreachable, service=service, poll_interval=0.05, max_backoff=0.2, publish_timeout=0.5)
    running = asyncio.create_task(relay.run())

    async def backlog_shown() -> bool:
        return REGISTRY.get_sample_value("mentorloom_outbox_backlog", {"service": service}) == 5

    try:
        assert await eventually(backlog_shown, limit_seconds=15)
    finally:
        relay.stop()
        await asyncio.wait_for(running, 20)
        await unreachable.stop()  # never started, yet it warns 'Unclosed AIOKafkaProducer' when collected


async def test_a_relay_that_loses_the_leader_lock_reports_the_live_backlog_not_its_last_count(
    engine: AsyncEngine, kafka_bootstrap: str, unique: str
) -> None:
    await create_messaging_schema(engine)
    topic = f"t.former-leader.{unique}"
    await ensure_topics(kafka_bootstrap, [topic])
    async with session_factory(engine)() as session, session.begin():
        await add_messages(session, [probe_message(topic, f"e{i}") for i in range(5)])
    service = f"probe-{unique}"
    unreachable = make_producer(f"127.0.0.1:{free_port()}")  # never started: the leader publishes nothing
    former = OutboxRelay(engine, unreachable, service=service, poll_interval=0.05, max_backoff=0.2, publish_timeout=0.5)
    running = asyncio.create_task(former.run())

    def backlog() -> float | None:
        return REGISTRY.get_sample_value("mentorloom_outbox_backlog", {"service": service})

    async def counted(rows: int) -> bool:
        return backlog() == rows

    producer = make_producer(kafka_bootstrap)
    await producer.start()
    # Another replica's connection: it queues for the lock and gets it when the leader's session ends.
    successor = await asyncpg.connect(asyncpg_dsn(engine.url.render_as_string(hide_password=False)))
    try:
        assert await eventually(lambda: counted(5), limit_seconds=15)
        lock = _leader_lock_key(service)
        waiting = asyncio.create_task(successor.fetchval("SELECT pg_advisory_lock($1)", lock))
        async with engine.connect() as conn:
            leader_sessions = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND classid::bigint = :high AND objid::bigint = :low"
                ),
                {"high": (lock >> 32) & 0xFFFFFFFF, "low": lock & 0xFFFFFFFF},
            )
            assert leader_sessions.scalars().all() == [True]
        await asyncio.wait_for(waiting, 15)
        # The new leader publishes every row; the former one, now a standby, must not keep showing 5.
        assert await OutboxRelay(engine, producer, service=f"{service}-successor").drain() == 5
        assert await eventually(lambda: counted(0), limit_seconds=15), f"backlog still {backlog()}"
        assert not former.is_leader
    finally:
        former.stop()
        await asyncio.wait_for(running, 20)
        await successor.close()
        await unreachable.stop()
        await producer.stop()
