"""The at-risk reasons that are facts rather than measures, on the real PostgreSQL and Kafka-protocol broker:
no first meeting by the program's milestone (found by the health sweeper as time passes) and a flagged concern
(at risk at once, until a coordinator resolves it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters import repository as repo
from services.feedback.entrypoints.handlers import CONSUMED_TOPICS
from services.feedback.sweeper import sweep_health
from services.feedback.tests.integration.support import (
    People,
    accepted,
    apply,
    check_in_due,
    consuming,
    count,
    eventually,
    meeting_completed,
    program,
    read_events,
    token,
)
from shared.clock import MovableClock, SystemClock
from shared.events.envelope import EventEnvelope, decode, encode
from shared.events.models import EventData, MatchAtRisk
from shared.events.registry import FEEDBACK_TOPIC
from shared.events.values import AtRiskReason
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay
from shared.service import Runtime

pytestmark = pytest.mark.integration

GOOD = {"usefulness": 5, "trust": 5, "meeting_happened": True, "goal_progress": 80}
MILESTONE = timedelta(days=14)  # the sample program's "first meeting within 14 days"


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_bootstrap, [*CONSUMED_TOPICS, FEEDBACK_TOPIC])
    started = make_producer(kafka_bootstrap)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def running_consumer(runtime: Runtime, kafka_bootstrap: str, unique: str) -> AsyncIterator[None]:
    async with consuming(runtime, kafka_bootstrap, f"feedback-risk-{unique}"):
        yield


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch) -> list[UUID]:
    """The matches the health sweeper claims to re-assess, in order, as the sweeper's count gives only how many.

    Tests assert on their own match, never on a count of everything in the database."""
    claimed: list[UUID] = []
    claim = repo.claim_matches_past_first_meeting_deadline

    async def recording(session: AsyncSession, now: datetime, limit: int) -> list[tuple[UUID, UUID]]:
        rows = await claim(session, now, limit)
        claimed.extend(match_id for _, match_id in rows)
        return rows

    monkeypatch.setattr(repo, "claim_matches_past_first_meeting_deadline", recording)
    return claimed


async def publish_and_wait(runtime: Runtime, producer: AIOKafkaProducer, *events: EventData) -> None:
    """Publish, then wait until the consumer has handled every one of them (their ids are in the inbox)."""
    envelopes = [EventEnvelope.wrap(event) for event in events]
    for envelope in envelopes:
        topic, key, value, headers = encode(envelope)
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    ids = [str(envelope.id) for envelope in envelopes]

    async def all_handled() -> bool:
        sql = "SELECT count(*) FROM inbox WHERE event_id = ANY(:ids)"
        return await count(runtime, sql, ids=ids) == len(ids)

    assert await eventually(all_handled), "the consumer did not handle the published events"


async def outbox_at_risk(runtime: Runtime, people: People) -> list[MatchAtRisk]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT headers::jsonb, value FROM outbox ORDER BY id"))).all()
    events = (decode([(k, v.encode()) for k, v in headers.items()], value).data for headers, value in rows)
    return [event for event in events if isinstance(event, MatchAtRisk) and event.match_id == people.match]


async def published_transitions(
    runtime: Runtime, producer: AIOKafkaProducer, bootstrap: str, unique: str, people: People
) -> list[MatchAtRisk]:
    """Relay the whole outbox to the broker, then this match's MatchAtRisk events on the feedback topic (all of
    them: the topic is read to its end once the outbox is empty)."""
    await OutboxRelay(runtime.engine, producer, service=f"feedback-{unique}").drain()
    assert await count(runtime, "SELECT count(*) FROM outbox") == 0
    events = await read_events(bootstrap, FEEDBACK_TOPIC)
    return [e for e in events if isinstance(e, MatchAtRisk) and e.match_id == people.match]


async def at_risk_list(client: httpx.AsyncClient, runtime: Runtime, people: People) -> list[dict[str, Any]]:
    coordinator = token(runtime, people.tenant, coordinator_of=(people.program,))
    response = await client.get(f"/v1/programs/{people.program}/at-risk", headers=coordinator)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["items"]
    return listed


# ---------------------------------------------------------------------------------------------------------------
# No first meeting


async def test_a_match_that_never_meets_is_at_risk_once_its_milestone_passes_exactly_once_until_a_meeting_is_held(
    runtime: Runtime,
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    running_consumer: None,
    kafka_bootstrap: str,
    unique: str,
    swept: list[UUID],
) -> None:
    people = People.fresh()
    activated = datetime.now(UTC) - timedelta(days=20)
    await publish_and_wait(runtime, producer, program(people), accepted(people, activated))
    clock = MovableClock(activated + MILESTONE - timedelta(minutes=1))

    # Nothing happens on the match. Just before the deadline the sweeper leaves it alone...
    await sweep_health(runtime.sessions, clock, batch_size=10)
    assert people.match not in swept
    assert await outbox_at_risk(runtime, people) == []
    # ...and once time has passed it, the match is at risk for that reason alone.
    clock.set(activated + MILESTONE + timedelta(minutes=1))
    await sweep_health(runtime.sessions, clock, batch_size=10)
    assert swept.count(people.match) == 1
    [listed] = await at_risk_list(client, runtime, people)
    assert [reason["code"] for reason in listed["reasons"]] == ["no_first_meeting"]

    # Later sweeps leave it alone, and later events re-assess it without a second MatchAtRisk.
    clock.advance(timedelta(days=3))
    await sweep_health(runtime.sessions, clock, batch_size=10)
    assert swept.count(people.match) == 1
    await publish_and_wait(runtime, producer, check_in_due(people, datetime.now(UTC) - timedelta(minutes=1)))
    assert len(await outbox_at_risk(runtime, people)) == 1

    # A held meeting clears the reason; with nothing else wrong the match recovers.
    await publish_and_wait(runtime, producer, meeting_completed(people, datetime.now(UTC) - timedelta(hours=2)))
    assert await at_risk_list(client, runtime, people) == []

    seen = await published_transitions(runtime, producer, kafka_bootstrap, unique, people)
    assert [event.at_risk for event in seen] == [True, False]
    assert seen[0].reasons == (AtRiskReason.NO_FIRST_MEETING,)
    assert seen[0].evaluated_at == activated + MILESTONE + timedelta(minutes=1)


async def test_the_deadline_is_the_programs_milestone_and_a_meeting_marked_missed_is_no_first_meeting(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    people = People.fresh()
    activated = datetime.now(UTC) - timedelta(days=20)
    await apply(runtime, program(people, milestones={"first_meeting_within_days": 30}), accepted(people, activated))
    await apply(runtime, meeting_completed(people, activated + timedelta(days=2), held=False))
    clock = MovableClock(activated + timedelta(days=29))
    assert await sweep_health(runtime.sessions, clock, batch_size=10) == 0

    clock.set(activated + timedelta(days=31))
    assert await sweep_health(runtime.sessions, clock, batch_size=10) == 1
    assert [entry["match_id"] for entry in await at_risk_list(client, runtime, people)] == [str(people.match)]


async def test_a_coordinator_moving_the_first_meeting_deadline_later_lets_a_flagged_match_recover(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    people = People.fresh()
    activated = datetime.now(UTC) - timedelta(days=20)
    await apply(runtime, program(people, version=2), accepted(people, activated))
    flagged_at = activated + MILESTONE + timedelta(days=1)
    assert await sweep_health(runtime.sessions, MovableClock(flagged_at), batch_size=10) == 1
    assert len(await at_risk_list(client, runtime, people)) == 1

    # A new program version that changes nothing the verdict depends on re-assesses nothing.
    later = MovableClock(flagged_at + timedelta(hours=1))
    await apply(runtime, program(people, version=3, name="Renamed program"), clock=later)
    assert [event.at_risk for event in await outbox_at_risk(runtime, people)] == [True]

    # The deadline moves from 14 to 30 days: the match, 15 days in, has not missed it any more.
    await apply(runtime, program(people, version=4, milestones={"first_meeting_within_days": 30}), clock=later)
    assert await at_risk_list(client, runtime, people) == []
    assert [event.at_risk for event in await outbox_at_risk(runtime, people)] == [True, False]
    # And the sweeper flags it again once the new deadline passes.
    assert await sweep_health(runtime.sessions, MovableClock(activated + timedelta(days=31)), batch_size=10) == 1
    assert [event.at_risk for event in await outbox_at_risk(runtime, people)] == [True, False, True]


async def test_a_meeting_held_before_the_match_arrived_counts_as_the_first_meeting(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    people = People.fresh()
    activated = datetime.now(UTC) - timedelta(days=20)
    # Scheduling's topic is not ordered against matching's: the meeting may come first.
    await apply(runtime, program(people), meeting_completed(people, activated + timedelta(days=3)))
    await apply(runtime, accepted(people, activated))
    assert await sweep_health(runtime.sessions, SystemClock(), batch_size=10) == 0
    assert await at_risk_list(client, runtime, people) == []


async def test_the_sweeper_goes_through_more_matches_than_one_batch(runtime: Runtime) -> None:
    activated = datetime.now(UTC) - timedelta(days=20)
    tenant, program_id = People.fresh().tenant, People.fresh().program
    pairs = [People.fresh(tenant, program_id) for _ in range(5)]
    await apply(runtime, program(pairs[0]), *(accepted(people, activated) for people in pairs))
    assert await sweep_health(runtime.sessions, SystemClock(), batch_size=2) == 5
    assert await count(runtime, "SELECT count(*) FROM matches WHERE at_risk") == 5
    assert await sweep_health(runtime.sessions, SystemClock(), batch_size=2) == 0


# ---------------------------------------------------------------------------------------------------------------
# Concern flagged


@pytest.fixture
async def met_pair(runtime: Runtime) -> People:
    """A match that met in its first week and has one check-in open now."""
    people = People.fresh()
    activated = datetime.now(UTC) - timedelta(days=20)
    await apply(runtime, program(people), accepted(people, activated))
    await apply(runtime, meeting_completed(people, activated + timedelta(days=5)))
    await apply(runtime, check_in_due(people, datetime.now(UTC) - timedelta(hours=1)))
    return people


async def answer_open_pulse(
    client: httpx.AsyncClient, runtime: Runtime, people: People, person: Any, body: dict[str, Any]
) -> None:
    headers = token(runtime, people.tenant, person=person)
    [pulse] = (await client.get("/v1/me/pulses", params={"status": "open"}, headers=headers)).json()["items"]
    answered = await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json=body, headers=headers)
    assert answered.status_code == 200, answered.text


async def test_a_flagged_concern_marks_a_match_at_risk_at_once_whatever_the_score_without_its_text_leaving(
    runtime: Runtime,
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    unique: str,
    met_pair: People,
) -> None:
    note = "my mentor made remarks about my accent that upset me"
    body = {"answers": {**GOOD, "private_note": note}, "concern_flagged": True}
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, body)

    [listed] = await at_risk_list(client, runtime, met_pair)
    assert listed["health_score"] == 1.0
    assert [(r["code"], r["party_id"]) for r in listed["reasons"]] == [("concern_flagged", str(met_pair.mentee))]
    # The partner sees no at-risk list at all.
    partner = token(runtime, met_pair.tenant, person=met_pair.mentor)
    assert (await client.get(f"/v1/programs/{met_pair.program}/at-risk", headers=partner)).status_code in {403, 404}
    async with runtime.engine.connect() as conn:
        outbox = b"".join(bytes(row.value) for row in await conn.execute(text("SELECT value FROM outbox")))
    assert b"accent" not in outbox

    seen = await published_transitions(runtime, producer, kafka_bootstrap, unique, met_pair)
    assert [(event.at_risk, event.reasons) for event in seen] == [(True, (AtRiskReason.CONCERN_FLAGGED,))]


async def test_the_at_risk_list_names_the_parties_by_person_id_and_still_answers_the_deprecated_names(
    runtime: Runtime, client: httpx.AsyncClient, met_pair: People
) -> None:
    """mentor_person_id / mentee_person_id as in matching's MatchOut; mentor_id / mentee_id stay for old clients."""
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, {"answers": GOOD, "concern_flagged": True})

    [listed] = await at_risk_list(client, runtime, met_pair)

    assert (listed["mentor_person_id"], listed["mentee_person_id"]) == (str(met_pair.mentor), str(met_pair.mentee))
    assert (listed["mentor_id"], listed["mentee_id"]) == (str(met_pair.mentor), str(met_pair.mentee))


async def test_a_concern_lasts_through_a_calm_next_pulse_until_a_coordinator_resolves_it(
    runtime: Runtime, client: httpx.AsyncClient, met_pair: People
) -> None:
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, {"answers": GOOD, "concern_flagged": True})
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentor, {"answers": GOOD})
    await apply(runtime, check_in_due(met_pair, datetime.now(UTC) - timedelta(minutes=5)))
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, {"answers": GOOD})
    assert [entry["match_id"] for entry in await at_risk_list(client, runtime, met_pair)] == [str(met_pair.match)]

    coordinator = token(runtime, met_pair.tenant, coordinator_of=(met_pair.program,))
    resolved = await client.post(f"/v1/matches/{met_pair.match}/concerns/resolve", headers=coordinator)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json() == {"match_id": str(met_pair.match), "resolved": 1, "at_risk": False, "reasons": []}
    assert await at_risk_list(client, runtime, met_pair) == []
    assert [event.at_risk for event in await outbox_at_risk(runtime, met_pair)] == [True, False]

    again = await client.post(f"/v1/matches/{met_pair.match}/concerns/resolve", headers=coordinator)
    assert again.status_code == 409


async def test_a_resolved_concern_leaves_a_match_at_risk_that_other_reasons_hold_there(
    runtime: Runtime, client: httpx.AsyncClient, met_pair: People
) -> None:
    low = {"usefulness": 1, "trust": 1, "meeting_happened": False, "goal_progress": 1}
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, {"answers": low, "concern_flagged": True})
    coordinator = token(runtime, met_pair.tenant, coordinator_of=(met_pair.program,))
    resolved = (await client.post(f"/v1/matches/{met_pair.match}/concerns/resolve", headers=coordinator)).json()
    assert resolved["at_risk"] is True
    assert "concern_flagged" not in {reason["code"] for reason in resolved["reasons"]}
    assert "low_ratings" in {reason["code"] for reason in resolved["reasons"]}


async def test_only_a_coordinator_of_the_program_who_is_not_a_party_may_resolve_a_concern(
    runtime: Runtime, client: httpx.AsyncClient, met_pair: People
) -> None:
    await answer_open_pulse(client, runtime, met_pair, met_pair.mentee, {"answers": GOOD, "concern_flagged": True})
    url = f"/v1/matches/{met_pair.match}/concerns/resolve"
    partner = token(runtime, met_pair.tenant, person=met_pair.mentor)
    partner_coordinating = token(runtime, met_pair.tenant, person=met_pair.mentor, coordinator_of=(met_pair.program,))
    other_program = token(runtime, met_pair.tenant, coordinator_of=(People.fresh().program,))
    other_tenant = token(runtime, People.fresh().tenant, coordinator_of=(met_pair.program,))
    operator = token(runtime, met_pair.tenant, operator=True)
    assert (await client.post(url, headers=partner)).status_code == 403
    assert (await client.post(url, headers=operator)).status_code == 403
    for caller in (partner_coordinating, other_program, other_tenant):
        assert (await client.post(url, headers=caller)).status_code == 404
    assert len(await at_risk_list(client, runtime, met_pair)) == 1
