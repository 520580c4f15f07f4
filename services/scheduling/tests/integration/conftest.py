"""Fixtures of the scheduling integration tests: a migrated database, the runtime, a movable clock, an API client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.scheduling.application.projection import Handler, make_handler
from services.scheduling.bootstrap import DEFINITION
from services.scheduling.entrypoints.api import build_app
from services.scheduling.settings import SchedulingSettings
from shared.auth import Role, mint_dev_token
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events.envelope import EventEnvelope
from shared.events.models import EventData
from shared.messaging.consumer import run_after_commit_actions
from shared.migrations import upgrade_to_head
from shared.service import Runtime

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def migrated(database_url: str) -> str:
    await asyncio.to_thread(upgrade_to_head, DEFINITION.migrations_dir, database_url)
    return database_url


@pytest.fixture
def settings(migrated: str, redis_url: str, kafka_bootstrap: str) -> SchedulingSettings:
    return SchedulingSettings(database_url=migrated, redis_url=redis_url, kafka_bootstrap=kafka_bootstrap)


@pytest.fixture
async def runtime(settings: SchedulingSettings) -> AsyncIterator[Runtime]:
    rt = Runtime.from_settings(settings)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
async def db(migrated: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(migrated, pool_size=5, max_overflow=5)
    try:
        yield eng
    finally:
        await eng.dispose()


class Feeder:
    """Applies contract events through `handle`, each in its own transaction, then what the handler left to run
    after the commit (as the consumer does)."""

    def __init__(self, engine: AsyncEngine, handle: Handler) -> None:
        self.sessions = session_factory(engine)
        self.handle = handle

    async def __call__(self, *events: EventData) -> None:
        for data in events:
            async with self.sessions() as session, session.begin():
                await self.handle(session, EventEnvelope.wrap(data))
            await run_after_commit_actions(session)


@pytest.fixture
def feed(db: AsyncEngine, clock: MovableClock) -> Feeder:
    return Feeder(db, make_handler(clock))


@pytest.fixture
async def client(runtime: Runtime, clock: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(runtime, clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduling.test") as c:
        yield c


def token(
    settings: SchedulingSettings,
    tenant: uuid.UUID,
    *,
    person: uuid.UUID | None = None,
    roles: Iterable[Role] = (Role.PARTICIPANT,),
    programs: Iterable[uuid.UUID] = (),
) -> dict[str, str]:
    minted = mint_dev_token(
        settings, subject=str(person or uuid.uuid4()), tenant=tenant, roles=roles, programs=programs, person_id=person
    )
    return {"Authorization": f"Bearer {minted}"}


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def outbox_types(engine: AsyncEngine) -> list[str]:
    found = await rows(engine, "SELECT headers::jsonb->>'ce_type' FROM outbox ORDER BY id")
    return [r[0] for r in found]


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.from_url(url)
