"""Events leave through the outbox: the relay publishes them to the real broker with the right keys and versions."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from services.profiles.adapters import repository as repo
from services.profiles.adapters.orm import participants
from services.profiles.domain.model import ProfileFields
from services.profiles.tests.integration.conftest import Api, Tenant
from shared.events.envelope import EventEnvelope, decode
from shared.events.models import EnrollmentChanged, EventData, ProfileErased, ProfileUpdated, ProgramUpdated
from shared.events.registry import PROFILES_TOPIC
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end
from shared.messaging.outbox import OutboxRelay, add_events

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_bootstrap, [PROFILES_TOPIC])
    p = make_producer(kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


async def tenant_events(bootstrap: str, tenant_id: uuid.UUID) -> list[tuple[bytes, EventEnvelope[EventData]]]:
    """Decoded (key, event) of one tenant on the profiles topic, each event once (delivery is at least once), in the
    order they happened. The topic is read to its end: call it once the outbox is empty."""
    found: dict[uuid.UUID, tuple[bytes, EventEnvelope[EventData]]] = {}
    for record in await read_topic_to_end(bootstrap, PROFILES_TOPIC):
        if dict(record.headers).get("ce_tenantid") == str(tenant_id).encode():  # other tests share the topic
            envelope = decode(record.headers, record.value)
            found[envelope.id] = (record.key or b"", envelope)
    return sorted(found.values(), key=lambda item: item[1].time)


async def test_every_change_is_published_keyed_by_its_aggregate_with_growing_versions(
    api: Api, tenant: Tenant, producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    url = f"/v1/participants/{tenant.person_id}"
    patched = await api.client.patch(url, json={"team": "Blue"}, headers={**tenant.coordinator, "If-Match": '"1"'})
    assert patched.status_code == 200
    relay = OutboxRelay(api.runtime.engine, producer, service="profiles-test")
    # Sent before the erasure: an erasure drops the person's snapshots still waiting (test_erasure.py).
    assert await relay.drain() == 4
    erased = await api.client.delete(url, headers={**tenant.coordinator, "If-Match": '"2"'})
    assert erased.status_code == 204

    assert await relay.drain() == 1
    events = await tenant_events(kafka_bootstrap, tenant.id)

    kinds = [(type(e.data).__name__, key.decode()) for key, e in events]
    person, program = str(tenant.person_id), str(tenant.program_id)
    assert kinds == [
        ("ProgramUpdated", program),
        ("ProfileUpdated", person),
        ("EnrollmentChanged", person),
        ("ProfileUpdated", person),
        ("ProfileErased", person),
    ]
    program_updated, created, enrolled, updated, gone = (e.data for _, e in events)
    assert isinstance(program_updated, ProgramUpdated)
    assert program_updated.version == 1
    assert isinstance(created, ProfileUpdated)
    assert created.version == 1
    assert isinstance(enrolled, EnrollmentChanged)
    assert enrolled.role.value == "mentee"
    assert enrolled.version == 1
    assert isinstance(updated, ProfileUpdated)
    assert updated.version == 2
    assert updated.team == "Blue"
    assert updated.interests == created.interests  # a full snapshot, not a diff
    assert isinstance(gone, ProfileErased)
    assert gone.version == 3


async def test_an_imported_row_emits_its_profile_and_enrolment(
    api: Api, tenant: Tenant, producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    relay = OutboxRelay(api.runtime.engine, producer, service="profiles-test")
    await relay.drain()  # the tenant fixture's own events
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports",
        content=b"external_id,email,display_name,tenure_start,time_zone,role,capacity\n"
        b"H1,h1@example.org,H One,2020-01-01,UTC,mentor,3\n",
        headers={**tenant.coordinator, "Content-Type": "text/csv"},
    )
    assert response.status_code == 201
    assert await relay.drain() == 2
    events = [e.data for _, e in await tenant_events(kafka_bootstrap, tenant.id)][3:]
    profile, enrolment = events
    assert isinstance(profile, ProfileUpdated)
    assert profile.external_id == "H1"
    assert isinstance(enrolment, EnrollmentChanged)
    assert enrolment.capacity == 3
    assert enrolment.person_id == profile.person_id


async def test_an_event_written_in_a_rolled_back_transaction_is_never_published(
    api: Api, tenant: Tenant, producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    relay = OutboxRelay(api.runtime.engine, producer, service="profiles-test")
    await relay.drain()
    ghost = uuid.uuid4()
    fields = ProfileFields(display_name="Ghost", email="ghost@example.org", tenure_start="2020-01-01", time_zone="UTC")  # type: ignore[arg-type]
    with contextlib.suppress(RuntimeError):
        async with api.runtime.sessions() as session, session.begin():
            row = await repo.insert_returning(
                session,
                participants,
                {"id": ghost, "tenant_id": tenant.id, **repo.profile_values(fields), "needs": [], "offers": []},
            )
            await add_events(session, [repo.profile_event(row)])
            raise RuntimeError("a later step of the same unit of work failed")
    assert await relay.drain() == 0
    people = {getattr(e.data, "person_id", None) for _, e in await tenant_events(kafka_bootstrap, tenant.id)}
    assert ghost not in people
