"""Fixtures of the profiles integration tests: the migrated database, the app over ASGI, a tenant with its people."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.profiles.bootstrap import MIGRATIONS_DIR
from services.profiles.entrypoints.api import build_app
from shared.auth import mint_dev_token
from shared.auth.principal import Role
from shared.migrations import upgrade_to_head
from shared.service import Runtime
from shared.settings import ServiceSettings
from tests.fixtures import PostgresEndpoint

pytestmark = pytest.mark.integration


@dataclass
class Api:
    """The app under test plus token minting for any caller."""

    client: httpx.AsyncClient
    settings: ServiceSettings
    runtime: Runtime

    def token(
        self,
        tenant: uuid.UUID,
        *roles: Role,
        programs: tuple[uuid.UUID, ...] = (),
        person_id: uuid.UUID | None = None,
    ) -> dict[str, str]:
        token = mint_dev_token(
            self.settings, subject=str(person_id or uuid.uuid4()), tenant=tenant, roles=roles,
            programs=programs, person_id=person_id,
        )  # fmt: skip
        return {"Authorization": f"Bearer {token}"}


async def _admin(server: PostgresEndpoint, sql: str) -> None:
    engine = create_async_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresEndpoint) -> Iterator[str]:
    """A database migrated once per session; each test gets a copy (CREATE DATABASE … TEMPLATE is a file copy,
    far cheaper than running the migrations again)."""
    name = f"profiles_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(postgres_server, f'CREATE DATABASE "{name}"'))
    upgrade_to_head(MIGRATIONS_DIR, postgres_server.url_for(name))
    yield name
    asyncio.run(_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def migrated_url(postgres_server: PostgresEndpoint, migrated_template: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(postgres_server, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    try:
        yield postgres_server.url_for(name)
    finally:
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def api(migrated_url: str, redis_url: str) -> AsyncIterator[Api]:
    settings = ServiceSettings(
        database_url=migrated_url,
        redis_url=redis_url,
        service_name="profiles",
        log_json=False,
        database_pool_size=5,
        rate_limit_per_minute=1_000_000,  # the rate limit has its own test; the others send many requests quickly
    )
    runtime = Runtime.from_settings(settings)
    app = build_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://profiles") as client:
        yield Api(client, settings, runtime)
    await runtime.close()


@dataclass
class Tenant:
    """An organisation with a campus, a program, its coordinator, an operator and one participant."""

    id: uuid.UUID
    campus_id: uuid.UUID
    program_id: uuid.UUID
    person_id: uuid.UUID
    operator: dict[str, str]
    coordinator: dict[str, str]
    participant: dict[str, str]


def profile(email: str, **overrides: Any) -> dict[str, Any]:
    return {
        "display_name": "Ada Example",
        "email": email,
        "tenure_start": "2022-09-01",
        "time_zone": "Europe/Berlin",
        "interests": ["climbing", "statistics"],
        "availability": [{"weekday": "monday", "start": "09:00:00", "end": "11:00:00"}],
    } | overrides


def enrolled_in(program_id: uuid.UUID, role: str = "mentee") -> dict[str, Any]:
    """The part of a POST /v1/participants body that enrols the new person (required of a coordinator)."""
    return {"enrolment": {"program_id": str(program_id), "role": role}}


def program(**overrides: Any) -> dict[str, Any]:
    return {"name": "Peer mentoring 2026", "starts_on": "2026-01-10", "ends_on": "2026-07-10"} | overrides


async def make_tenant(api: Api, name: str = "Org") -> Tenant:
    root = api.token(uuid.uuid4(), Role.OPERATOR)
    org = (await api.client.post("/v1/organisations", json={"name": name}, headers=root)).json()
    tenant = uuid.UUID(org["id"])
    operator = api.token(tenant, Role.OPERATOR)
    campus = (await api.client.post("/v1/campuses", json={"name": "North"}, headers=operator)).json()
    created = await api.client.post("/v1/programs", json=program(), headers=operator)
    assert created.status_code == 201, created.text
    program_id = uuid.UUID(created.json()["id"])
    coordinator = api.token(tenant, Role.COORDINATOR, programs=(program_id,))
    person = await api.client.post(
        "/v1/participants",
        json=profile(f"ada-{uuid.uuid4().hex[:6]}@example.org") | enrolled_in(program_id),
        headers=coordinator,
    )
    assert person.status_code == 201, person.text
    person_id = uuid.UUID(person.json()["id"])
    return Tenant(
        id=tenant,
        campus_id=uuid.UUID(campus["id"]),
        program_id=program_id,
        person_id=person_id,
        operator=operator,
        coordinator=coordinator,
        participant=api.token(tenant, Role.PARTICIPANT, person_id=person_id),
    )


@pytest.fixture
async def tenant(api: Api) -> Tenant:
    return await make_tenant(api, "Org A")


@pytest.fixture
async def other_tenant(api: Api) -> Tenant:
    return await make_tenant(api, "Org B")
