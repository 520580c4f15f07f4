"""Helpers for the feedback service's integration tests: a migrated database, the app, tokens, events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
from sqlalchemy import text

from services.feedback.bootstrap import DEFINITION
from services.feedback.entrypoints.api import build_app
from services.feedback.entrypoints.handlers import CONSUMED_TOPICS, EventHandler, make_handler
from shared.auth import Role, mint_dev_token
from shared.clock import Clock
from shared.events import samples
from shared.events.envelope import EventEnvelope, decode
from shared.events.models import EventData
from shared.messaging.consumer import ConsumerRunner, run_after_commit_actions
from shared.messaging.kafka import read_topic_to_end
from shared.migrations import upgrade_to_head
from shared.service import Runtime
from shared.settings import ServiceSettings
from tests.consumer_groups import start_group_at_the_end

T = TypeVar("T")


@dataclass
class People:
    tenant: UUID
    program: UUID
    mentor: UUID
    mentee: UUID
    match: UUID

    @classmethod
    def fresh(cls, tenant: UUID | None = None, program: UUID | None = None) -> People:
        return cls(tenant or uuid4(), program or uuid4(), uuid4(), uuid4(), uuid4())

    @property
    def pair(self) -> dict[str, UUID]:
        return {
            "tenant_id": self.tenant,
            "program_id": self.program,
            "match_id": self.match,
            "mentor_person_id": self.mentor,
            "mentee_person_id": self.mentee,
        }


async def migrated_runtime(
    database_url: str, kafka_bootstrap: str = "127.0.0.1:1", redis_url: str = "redis://127.0.0.1:1/0"
) -> Runtime:
    """A runtime on a freshly migrated database (Redis is never contacted by this service's API)."""
    await asyncio.to_thread(upgrade_to_head, DEFINITION.migrations_dir, database_url)
    settings = ServiceSettings(
        service_name="feedback", database_url=database_url, redis_url=redis_url, kafka_bootstrap=kafka_bootstrap
    )
    return Runtime.from_settings(settings)


def client_for(runtime: Runtime, clock: Clock | None = None) -> httpx.AsyncClient:
    app = build_app(runtime, clock)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://feedback")


def token(
    runtime: Runtime,
    tenant: UUID,
    *,
    person: UUID | None = None,
    coordinator_of: tuple[UUID, ...] = (),
    operator: bool = False,
    participant: bool = True,
) -> dict[str, str]:
    """A dev token; naming a `person` makes it a participant's unless `participant=False` (a person id alone)."""
    roles: list[Role] = []
    if person is not None and participant:
        roles.append(Role.PARTICIPANT)
    if coordinator_of:
        roles.append(Role.COORDINATOR)
    if operator:
        roles.append(Role.OPERATOR)
    minted = mint_dev_token(
        runtime.settings,
        subject=str(person or uuid4()),
        tenant=tenant,
        roles=roles,
        programs=coordinator_of,
        person_id=person,
    )
    return {"Authorization": f"Bearer {minted}"}


async def apply(
    runtime: Runtime,
    *events: EventData | EventEnvelope[EventData],
    clock: Clock | None = None,
    handle: EventHandler | None = None,
) -> None:
    """Project events straight through the handler (tests that are not about delivery), each in its own transaction,
    then what it left to run after the commit; `handle` defaults to one on `clock` that forgets nothing in Redis."""
    handle = handle or make_handler(clock)
    for event in events:
        envelope = event if isinstance(event, EventEnvelope) else EventEnvelope.wrap(event)
        async with runtime.sessions() as session, session.begin():
            await handle(session, envelope)
        await run_after_commit_actions(session)


def program(people: People, **overrides: Any) -> EventData:
    return samples.program_updated(tenant_id=people.tenant, program_id=people.program, **overrides)


def accepted(people: People, activated_at: datetime | None = None) -> EventData:
    return samples.match_accepted(**people.pair, activated_at=activated_at or datetime.now(UTC))


def check_in_due(people: People, due_at: datetime, check_in: UUID | None = None) -> EventData:
    check_in = check_in or uuid4()
    return samples.check_in_due(
        **people.pair, check_in_id=check_in, due_at=due_at, occurrence_key=f"{people.match}:regular:{check_in}"
    )


def check_in_missed(people: People, due_at: datetime, check_in: UUID | None = None) -> EventData:
    check_in = check_in or uuid4()
    return samples.check_in_missed(
        **people.pair,
        check_in_id=check_in,
        due_at=due_at,
        missed_at=due_at,
        occurrence_key=f"{people.match}:regular:{check_in}",
    )


def meeting_completed(
    people: People, starts_at: datetime, *, held: bool = True, meeting: UUID | None = None, sequence: int = 0
) -> EventData:
    """Scheduling's MeetingCompleted for the pair: held (default) or missed."""
    return samples.meeting_completed(
        tenant_id=people.tenant,
        program_id=people.program,
        match_id=people.match,
        meeting_id=meeting or uuid4(),
        check_in_id=None,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        organiser_person_id=people.mentee,
        outcome="held" if held else "missed",
        sequence=sequence,
    )


@contextlib.asynccontextmanager
async def consuming(runtime: Runtime, bootstrap: str, group: str) -> AsyncIterator[None]:
    """The service's consumer running as a new group that reads what is published from now on, not the backlog of
    the shared topics: other tests' matches would be projected into this test's database (and sweeps would count
    them), and how long the backlog takes depends on which tests ran before."""
    await start_group_at_the_end(bootstrap, group, CONSUMED_TOPICS)
    runner = ConsumerRunner(
        name=group,
        topics=CONSUMED_TOPICS,
        bootstrap=bootstrap,
        sessions=runtime.sessions,
        handler=make_handler(),
        decode=decode,
        backoff_base=0.01,
    )
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)


async def eventually(probe: Callable[[], Awaitable[T]], limit_seconds: float = 30.0) -> T:
    """Poll until the probe returns something truthy (or the limit passes); returns the last value."""
    deadline = time.monotonic() + limit_seconds
    value = await probe()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        value = await probe()
    return value


async def count(runtime: Runtime, sql: str, **params: Any) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def read_events(bootstrap: str, topic: str) -> list[EventData]:
    """Every event on the topic now, each partition read to its end (in partition and offset order).

    Call it once the outbox is drained: then everything the test published is there, and a slow machine cannot cut
    the read short the way a read "until it shows up or 20 s pass" could. Other tests' events are there too (the
    contract's topics are shared by the session): filter by the test's own ids.
    """
    return [decode(record.headers, record.value).data for record in await read_topic_to_end(bootstrap, topic)]
