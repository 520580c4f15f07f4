"""What every service is made of, wired once: settings, database, Redis, HTTP app, relay, consumers, roles.

A service describes itself with a `ServiceDefinition` (its bootstrap) and gets every role for free:
    python -m services.<name> api | relay | consumer | sweeper | migrate | all
`all` runs api + relay + consumers + sweepers in one process (the local stack uses it to spare cores);
Kubernetes runs the roles as separate Deployments so they scale apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import redis.asyncio as aioredis
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Request
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import install_auth
from shared.db import create_engine, session_factory
from shared.events.envelope import EventEnvelope, decode
from shared.events.models import EventData
from shared.http_errors import document_error_bodies, install_error_bodies
from shared.http_protection import document_http_protection, forget_stored_responses, install_http_protection
from shared.messaging.consumer import ConsumerRunner, prune_inbox
from shared.messaging.kafka import broker_reachable, make_producer
from shared.messaging.outbox import OutboxRelay
from shared.migrations import MigrationLockTimeoutError, upgrade_to_head
from shared.observability import INBOX_PRUNED, configure_logging, install_observability
from shared.periodic import pause_unless_stopped, run_periodically
from shared.settings import ServiceSettings, describe_settings_error

log = structlog.get_logger(__name__)

ROLES = ("api", "relay", "consumer", "sweeper", "migrate", "all")
# Every service's API lives under one version prefix, as every topic carries its version (mentorloom.<service>.v1):
# a breaking change of an API is served under /v2 beside it. Health, readiness and metrics are for the platform, not
# for API clients, and stay where probes and Prometheus look for them.
API_PREFIX = "/v1"
ContractEvent = EventEnvelope[EventData]
EventHandler = Callable[[AsyncSession, ContractEvent], Awaitable[None]]


@dataclass
class Runtime:
    """The process-wide resources a service's code depends on (built once, closed once)."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Runtime:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            redis=aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        async def database() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def redis() -> None:
            await self.redis.ping()

        async def broker() -> None:
            await broker_reachable(self.settings.kafka_bootstrap, settings=self.settings)

        return {"database": database, "broker": broker, "redis": redis}

    async def forget_answers_naming(self, person_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        """After an erasure in `tenant_id` has committed: drop the answers this service's API keeps in Redis for
        Idempotency-Key retries in that tenant that name the person (another tenant's answers naming the same id are
        that tenant's). Redis failing is logged, not raised: the erasure stands whatever Redis does."""
        await forget_stored_responses(self.redis, self.settings.service_name, tenant_id, str(person_id))


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group of a service: the topics it reads and its handler (dispatching by event type)."""

    name: str
    topics: Sequence[str]
    handler_factory: Callable[[Runtime], EventHandler]


@dataclass(frozen=True)
class SweeperSpec:
    """A periodic job (e.g. the CheckInDue sweeper); leadership is the job's own business."""

    name: str
    run_factory: Callable[[Runtime, asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    migrations_dir: Path
    build_app: Callable[[Runtime], FastAPI]
    consumers: Sequence[ConsumerSpec] = ()
    sweepers: Sequence[SweeperSpec] = ()
    settings_factory: Callable[[], ServiceSettings] = field(default=ServiceSettings)


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    version: str = "1.0.0",
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
) -> FastAPI:
    """A FastAPI app with auth, rate limits, Idempotency-Key replay, health, readiness, metrics and trace context.

    The service adds its routers; every endpoint declares its callers with `shared.auth` dependencies.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        yield

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    # Order matters: middleware added later wraps earlier, so observability (outermost) also sees 429s.
    install_auth(app, runtime.settings)
    install_error_bodies(app)
    install_http_protection(app, runtime.settings, redis=runtime.redis)
    install_observability(app, runtime.settings.service_name, runtime.readiness_checks())
    documented = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = documented()  # FastAPI's document, cached in app.openapi_schema
            document_http_protection(document)
            # After the middleware's answers: the replay's 422 and the route's own share one schema, ErrorBody, as
            # does every other documented 4xx.
            document_error_bodies(document)
        return documented()

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def request_transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, rolled back when it raises."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.sessions() as session, session.begin():
        yield session


# scope="function": the commit happens before the response is sent. FastAPI's default runs a yield-dependency's
# exit after sending, so a client could read before the commit (a 404 right after a 201) and a failed commit
# would follow a 2xx.
Transaction = Annotated[AsyncSession, Depends(request_transaction, scope="function")]


def consumer_runners(definition: ServiceDefinition, runtime: Runtime) -> list[ConsumerRunner[ContractEvent]]:
    s = runtime.settings
    return [
        ConsumerRunner(
            name=f"{definition.name}.{spec.name}",
            topics=spec.topics,
            bootstrap=s.kafka_bootstrap,
            sessions=runtime.sessions,
            handler=spec.handler_factory(runtime),
            decode=decode,
            batch_size=s.consumer_batch_size,
            max_attempts=s.consumer_max_attempts,
            kafka_settings=s,
        )
        for spec in definition.consumers
    ]


async def _run_relay(definition: ServiceDefinition, runtime: Runtime, stop: asyncio.Event) -> None:
    s = runtime.settings

    def new_producer() -> AIOKafkaProducer:
        return make_producer(
            s.kafka_bootstrap,
            enable_idempotence=s.kafka_enable_idempotence,
            client_id=f"{definition.name}-relay",
            settings=s,
        )

    relay = OutboxRelay(
        runtime.engine,
        new_producer(),
        service=definition.name,
        batch_size=s.outbox_batch_size,
        poll_interval=s.outbox_poll_interval_seconds,
        producer_factory=new_producer,
    )
    await _start_with_retry(relay.producer.start, stop, "kafka producer")
    task = asyncio.create_task(relay.run())
    await stop.wait()
    relay.stop()
    await task
    with contextlib.suppress(Exception):
        await asyncio.wait_for(relay.producer.stop(), 30)


async def _start_with_retry(start: Callable[[], Awaitable[Any]], stop: asyncio.Event, what: str) -> None:
    backoff = 0.2
    while not stop.is_set():
        try:
            await start()
            return
        except Exception as exc:  # the broker may come up after us; keep trying rather than crash-looping
            log.warning(f"{what} not ready; retrying", error=repr(exc))
            await pause_unless_stopped(stop, backoff)
            backoff = min(backoff * 2, 5.0)


async def _run_consumers(definition: ServiceDefinition, runtime: Runtime, stop: asyncio.Event) -> None:
    runners = consumer_runners(definition, runtime)
    if not runners:
        return

    async def supervise(runner: ConsumerRunner[ContractEvent]) -> None:
        while not stop.is_set():
            try:
                await runner.run()
            except Exception as exc:  # broker unreachable at start, group errors: restart, never crash the process
                log.warning("consumer stopped unexpectedly; restarting", consumer=runner.name, error=repr(exc))
                await pause_unless_stopped(stop, 2.0)

    tasks = [asyncio.create_task(supervise(r)) for r in runners]
    tasks.append(asyncio.create_task(_prune_inbox_periodically(definition, runtime, stop)))
    await stop.wait()
    for r in runners:
        r.stop()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _prune_inbox_periodically(definition: ServiceDefinition, runtime: Runtime, stop: asyncio.Event) -> None:
    """Keep the inbox bounded: the consumer role forgets events older than the retention, once per interval."""
    s = runtime.settings

    async def prune() -> None:  # a failed round (database down) is retried; consuming is unaffected
        cutoff = datetime.now(UTC) - timedelta(days=s.inbox_retention_days)
        pruned = await prune_inbox(runtime.engine, cutoff)
        INBOX_PRUNED.labels(definition.name).inc(pruned)
        if pruned:
            log.info("inbox pruned", service=definition.name, rows=pruned, received_before=cutoff.isoformat())

    await run_periodically(prune, stop, s.inbox_prune_interval_seconds, name=f"{definition.name} inbox pruning")


async def _run_sweepers(definition: ServiceDefinition, runtime: Runtime, stop: asyncio.Event) -> None:
    await asyncio.gather(*(spec.run_factory(runtime, stop) for spec in definition.sweepers))


async def _run_api(definition: ServiceDefinition, runtime: Runtime, stop: asyncio.Event) -> None:
    await _serve(definition.build_app(runtime), runtime.settings.http_host, runtime.settings.http_port, stop)


def operations_app(definition: ServiceDefinition, runtime: Runtime) -> FastAPI:
    """What a process without the api role serves on MENTORLOOM_METRICS_PORT: /healthz, /readyz and /metrics.

    Prometheus' registry is per process, so the relay's outbox backlog and the consumers' lag, handler errors and
    dead letters can only be scraped from the relay and consumer processes themselves (in Kubernetes each role is
    its own Deployment)."""
    app = FastAPI(title=f"Mentorloom {definition.name} operations", openapi_url=None, docs_url=None, redoc_url=None)
    install_observability(app, runtime.settings.service_name, runtime.readiness_checks())
    return app


async def _serve(app: FastAPI, host: str, port: int, stop: asyncio.Event) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # run_roles owns signals
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


def tune_garbage_collector() -> None:
    """Freeze start-up objects and collect young objects less often.

    Consumers and relays allocate many short-lived objects per batch (decoded envelopes, rows); with CPython's
    default thresholds the cyclic collector rescans the long-lived heap (SQLAlchemy, pydantic, aiokafka
    modules) over and over. Measured on a batch of 20k decoded MatchProposed events: 70 µs per event with the
    defaults, 23 µs after this (benchmarks/messaging_throughput.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def run_roles(definition: ServiceDefinition, roles: Sequence[str], settings: ServiceSettings) -> None:
    runtime = Runtime.from_settings(settings)
    tune_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers = {
        "api": _run_api,
        "relay": _run_relay,
        "consumer": _run_consumers,
        "sweeper": _run_sweepers,
    }
    running = [workers[role](definition, runtime, stop) for role in roles]
    if "api" not in roles and settings.metrics_port:  # the api role serves these itself
        running.append(_serve(operations_app(definition, runtime), settings.http_host, settings.metrics_port, stop))
    roles_running = asyncio.gather(*running)
    try:
        await asyncio.shield(roles_running)
    except asyncio.CancelledError:
        # Cancelled by whoever runs this as a task (a test, say): stop as on a signal, so each role closes what it
        # opened (the relay its producer, the servers their sockets) instead of being cut off with it all left open.
        stop.set()
        await roles_running
        raise
    finally:
        # The process may outlive this (a test run, an embedding program): leave Ctrl-C and SIGTERM as they were,
        # not bound to this run's finished stop event.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runtime.close()


def main(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{definition.name}", description=f"Run a role of the {definition.name} service."
    )
    parser.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    try:
        settings = definition.settings_factory()
    except ValidationError as error:  # a misconfigured pod says which variable is wrong, without a traceback
        parser.exit(2, f"{parser.prog}: invalid settings:\n{describe_settings_error(error)}\n")
    configure_logging(definition.name, settings.log_level, settings.log_json)
    if args.role in ("migrate", "all"):
        try:
            upgrade_to_head(
                definition.migrations_dir,
                settings.database_url,
                lock_timeout_seconds=settings.migration_lock_timeout_seconds,
                attempts=settings.migration_lock_attempts,
            )
        except MigrationLockTimeoutError as error:  # an operator's case, not a bug: the Job's log says it in one line
            parser.exit(1, f"{parser.prog}: migration failed: {error}\n")
    if args.role == "migrate":
        return
    if args.role == "all":
        roles: Sequence[str] = ("api", "relay", "consumer", "sweeper")
    else:
        roles = (args.role,)
    asyncio.run(run_roles(definition, roles, settings))
