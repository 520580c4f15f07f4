"""Fixtures of the matching integration tests: a migrated database, the runtime, a movable clock, an API client,
and a `World` that builds a program with its people as contract events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.application.projection import Handler, make_handler
from services.matching.bootstrap import DEFINITION, projection_handler
from services.matching.entrypoints.api import build_app
from services.matching.settings import MatchingSettings
from shared.auth import Role, mint_dev_token
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events import samples
from shared.events.envelope import EventEnvelope
from shared.events.models import EnrollmentChanged, EventData, ProfileUpdated, ProgramUpdated
from shared.messaging.consumer import run_after_commit_actions
from shared.migrations import upgrade_to_head
from shared.service import Runtime

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def migrated(database_url: str) -> str:
    await asyncio.to_thread(upgrade_to_head, DEFINITION.migrations_dir, database_url)
    return database_url


@pytest.fixture
def settings(migrated: str, redis_url: str, kafka_bootstrap: str) -> MatchingSettings:
    return MatchingSettings(database_url=migrated, redis_url=redis_url, kafka_bootstrap=kafka_bootstrap)


@pytest.fixture
async def runtime(settings: MatchingSettings) -> AsyncIterator[Runtime]:
    rt = Runtime.from_settings(settings)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
def db(runtime: Runtime) -> AsyncEngine:
    return runtime.engine


class Feeder:
    """Applies contract events through the consumer's handler, each in its own transaction (as the consumer does)."""

    def __init__(self, engine: AsyncEngine, handle: Handler | None = None) -> None:
        self.sessions = session_factory(engine)
        self.handle = handle or make_handler()

    async def __call__(self, *events: EventData, at: datetime | None = None) -> None:
        """`at`: the events' time (default now)."""
        for data in events:
            async with self.sessions() as session, session.begin():
                await self.handle(session, EventEnvelope.wrap(data, time=at))
            await run_after_commit_actions(session)


@pytest.fixture
def feed(runtime: Runtime) -> Feeder:
    """The service's own handler, so an erasure also forgets what its API keeps in Redis."""
    return Feeder(runtime.engine, projection_handler(runtime))


@pytest.fixture
async def client(runtime: Runtime, clock: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(runtime, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://matching.test") as c:
        yield c


def token(
    settings: MatchingSettings,
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


class World:
    """One tenant's program and its people, as the contract events the profiles service would send."""

    def __init__(self, tenant: uuid.UUID | None = None) -> None:
        self.tenant = tenant or uuid.uuid4()
        self.program_id = uuid.uuid4()
        self.campus = uuid.uuid4()
        self.people: dict[str, uuid.UUID] = {}
        self.versions: dict[uuid.UUID, int] = {}

    def id(self, name: str) -> uuid.UUID:
        return self.people.setdefault(name, uuid.uuid4())

    def program(self, version: int = 1, **policy: Any) -> ProgramUpdated:
        matching_policy = {
            "hard_rules": {
                "exclude_same_reporting_line": True,
                "exclude_same_team": policy.pop("exclude_same_team", False),
                "campus_rule": policy.pop("campus_rule", "any"),
                "seniority": {"min_level_gap": 1},
            },
            "proposals_per_mentee": 3,
            "request_window_days": 7,
            "max_open_requests_per_mentee": 2,
            "objective": "max_matched_then_score",
            **policy,
        }
        return samples.program_updated(
            tenant_id=self.tenant,
            program_id=self.program_id,
            version=version,
            campus_ids=(),
            matching_policy=matching_policy,
        )

    def person(self, name: str, *, level: int = 1, version: int = 1, **fields: Any) -> ProfileUpdated:
        person_id = self.id(name)
        fields.setdefault("team", f"team-{name}")
        fields.setdefault("blocked_person_ids", ())
        fields.setdefault("interests", (f"interest of {name}",))
        fields.setdefault("display_name", name.title())
        return samples.profile_updated(
            tenant_id=self.tenant,
            person_id=person_id,
            version=version,
            email=f"{name}@example.org",
            role_level=level,
            manager_person_id=None,
            reporting_line_id=None,
            campus_id=fields.pop("campus_id", self.campus),
            **fields,
        )

    def enrol(
        self, name: str, role: str, capacity: int = 0, version: int = 1, status: str = "active"
    ) -> EnrollmentChanged:
        return samples.enrollment_changed(
            tenant_id=self.tenant,
            enrollment_id=uuid.uuid5(self.program_id, name),
            person_id=self.id(name),
            program_id=self.program_id,
            version=version,
            role=role,
            capacity=capacity,
            status=status,
        )

    def mentee(self, name: str, **fields: Any) -> list[EventData]:
        return [self.person(name, level=fields.pop("level", 1), **fields), self.enrol(name, "mentee")]

    def mentor(self, name: str, capacity: int = 2, **fields: Any) -> list[EventData]:
        return [self.person(name, level=fields.pop("level", 3), **fields), self.enrol(name, "mentor", capacity)]

    def as_person(self, settings: MatchingSettings, name: str) -> dict[str, str]:
        return token(settings, self.tenant, person=self.id(name))

    def as_coordinator(self, settings: MatchingSettings) -> dict[str, str]:
        return token(settings, self.tenant, roles=[Role.COORDINATOR], programs=[self.program_id])


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def outbox_types(engine: AsyncEngine) -> list[str]:
    return [r[0] for r in await rows(engine, "SELECT headers::jsonb->>'ce_type' FROM outbox ORDER BY id")]


async def outbox_payloads(engine: AsyncEngine, ce_type: str) -> list[dict[str, Any]]:
    import json

    found = await rows(engine, "SELECT value FROM outbox WHERE headers::jsonb->>'ce_type' = :t ORDER BY id", t=ce_type)
    return [json.loads(bytes(r[0])) for r in found]
