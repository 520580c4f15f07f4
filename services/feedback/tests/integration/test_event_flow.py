"""Events in and out through a real Kafka-protocol broker: pulse lifecycle, at-risk on and off, redelivery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.feedback.entrypoints.handlers import CONSUMED_TOPICS
from services.feedback.tests.integration.support import (
    People,
    accepted,
    check_in_due,
    check_in_missed,
    consuming,
    count,
    eventually,
    meeting_completed,
    program,
    read_events,
    token,
)
from shared.events import samples
from shared.events.envelope import EventEnvelope, encode
from shared.events.models import EventData, FeedbackSubmitted, MatchAtRisk
from shared.events.registry import FEEDBACK_TOPIC
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay
from shared.service import Runtime

pytestmark = pytest.mark.integration

TOP_MARKS = {"usefulness": 5, "trust": 5, "meeting_happened": True, "goal_progress": 80}


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_bootstrap, [*CONSUMED_TOPICS, FEEDBACK_TOPIC])
    started = make_producer(kafka_bootstrap)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def running_consumer(runtime: Runtime, kafka_bootstrap: str, unique: str) -> AsyncIterator[None]:
    async with consuming(runtime, kafka_bootstrap, f"feedback-test-{unique}"):
        yield


async def publish(producer: AIOKafkaProducer, *events: EventData | EventEnvelope[EventData]) -> None:
    for event in events:
        topic, key, value, headers = encode(event)
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)


async def open_pulses_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/v1/me/pulses", params={"status": "open"}, headers=headers)
    listed: list[dict[str, Any]] = response.json()["items"]
    return listed


async def test_a_published_check_in_due_opens_pulses_whose_answers_go_out_as_feedback_submitted(
    runtime: Runtime,
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    running_consumer: None,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    people = People.fresh()
    due = EventEnvelope.wrap(check_in_due(people, datetime.now(UTC) - timedelta(minutes=5)))
    await publish(producer, program(people), accepted(people, datetime.now(UTC) - timedelta(days=14)), due)
    mentee = token(runtime, people.tenant, person=people.mentee)
    mentor = token(runtime, people.tenant, person=people.mentor)
    [pulse] = await eventually(lambda: open_pulses_of(client, mentee))
    assert len(await open_pulses_of(client, mentor)) == 1

    answered = await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": TOP_MARKS}, headers=mentee)
    assert answered.status_code == 200, answered.text
    assert await OutboxRelay(runtime.engine, producer, service=f"feedback-{unique}").drain() >= 1

    def submitted_for_match(events: list[EventData]) -> list[FeedbackSubmitted]:
        return [e for e in events if isinstance(e, FeedbackSubmitted) and e.match_id == people.match]

    assert await count(runtime, "SELECT count(*) FROM outbox") == 0
    seen = submitted_for_match(await read_events(kafka_bootstrap, FEEDBACK_TOPIC))
    assert {str(event.feedback_id) for event in seen} == {pulse["pulse_id"]}
    assert seen[0].scores["usefulness"] == 5.0

    # The same CheckInDue again (same id) and re-sent by a producer retry (new id): nothing new opens.
    # Both go to the match's partition after `due`, so once the re-sent one is in the inbox both were handled.
    resent = EventEnvelope.wrap(due.data)
    await publish(producer, due, resent)
    assert await eventually(lambda: _in_inbox(runtime, str(resent.id)))
    # Scoped to this match: other tests publish check-ins to the same topic of the session's broker.
    mine = "SELECT count(*) FROM pulses WHERE match_id = :m"
    assert await count(runtime, mine, m=people.match) == 2
    assert await count(runtime, mine + " AND submitted_at IS NOT NULL", m=people.match) == 1


async def test_a_published_check_in_reminder_is_acknowledged_and_opens_nothing(
    runtime: Runtime, producer: AIOKafkaProducer, running_consumer: None
) -> None:
    people = People.fresh()
    due = check_in_due(people, datetime.now(UTC) + timedelta(hours=2))
    reminder = EventEnvelope.wrap(
        samples.check_in_reminder_due(**due.model_dump(), remind_at=datetime.now(UTC) - timedelta(hours=22))
    )
    await publish(producer, program(people), accepted(people, datetime.now(UTC) - timedelta(days=14)), reminder)

    # In the inbox means handled and its offset committed: a record the consumer could not take would have been
    # retried and dead-lettered instead, with no inbox row.
    assert await eventually(lambda: _in_inbox(runtime, str(reminder.id)))
    assert await count(runtime, "SELECT count(*) FROM pulses WHERE match_id = :m", m=people.match) == 0
    assert await count(runtime, "SELECT count(*) FROM check_ins WHERE match_id = :m", m=people.match) == 0


async def _in_inbox(runtime: Runtime, event_id: str) -> bool:
    return await count(runtime, "SELECT count(*) FROM inbox WHERE event_id = :e", e=event_id) > 0


async def _all_in_inbox(runtime: Runtime, event_ids: list[str]) -> bool:
    sql = "SELECT count(*) FROM inbox WHERE event_id = ANY(:ids)"
    return await count(runtime, sql, ids=event_ids) == len(set(event_ids))


async def test_a_match_enters_at_risk_once_and_leaves_it_on_recovery(
    runtime: Runtime,
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    running_consumer: None,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    people = People.fresh()
    now = datetime.now(UTC)
    first_missed = EventEnvelope.wrap(check_in_missed(people, now - timedelta(days=28)))
    history = [
        EventEnvelope.wrap(program(people)),  # at-risk threshold 0.4
        EventEnvelope.wrap(accepted(people, now - timedelta(days=40))),
        EventEnvelope.wrap(meeting_completed(people, now - timedelta(days=38))),  # met once, then stopped checking in
        first_missed,
        EventEnvelope.wrap(check_in_missed(people, now - timedelta(days=14))),
    ]
    await publish(producer, *history, first_missed)  # the first miss redelivered
    coordinator = token(runtime, people.tenant, coordinator_of=(people.program,))

    async def at_risk_list() -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = (
            await client.get(f"/v1/programs/{people.program}/at-risk", headers=coordinator)
        ).json()["items"]
        return listed

    assert await eventually(lambda: _all_in_inbox(runtime, [str(envelope.id) for envelope in history]))
    [listed] = await eventually(at_risk_list)
    assert listed["match_id"] == str(people.match)
    assert "missed_check_ins" in {reason["code"] for reason in listed["reasons"]}

    # A good check-in afterwards: the match recovers.
    await publish(producer, check_in_due(people, now - timedelta(minutes=1)))
    mentee = token(runtime, people.tenant, person=people.mentee)
    [pulse] = await eventually(lambda: open_pulses_of(client, mentee))
    assert await at_risk_list(), "one due check-in without answers is not yet a recovery (hysteresis)"
    await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": TOP_MARKS}, headers=mentee)
    assert await at_risk_list() == []

    await OutboxRelay(runtime.engine, producer, service=f"feedback-{unique}").drain()
    assert await count(runtime, "SELECT count(*) FROM outbox") == 0
    events = await read_events(kafka_bootstrap, FEEDBACK_TOPIC)
    assert [e.at_risk for e in events if isinstance(e, MatchAtRisk) and e.match_id == people.match] == [True, False]
