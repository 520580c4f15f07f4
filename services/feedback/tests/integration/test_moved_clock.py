"""Feedback reads the time only from its injected clock: moved ahead (as an end-to-end run moves it together with
scheduling's), check-ins due in the real future count, pulses open and close, and reports date by that clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from services.feedback.tests.integration.support import (
    People,
    accepted,
    apply,
    check_in_due,
    client_for,
    program,
    token,
)
from shared.clock import Clock, MovableClock, SystemClock
from shared.events.envelope import decode
from shared.events.models import MatchAtRisk
from shared.service import Runtime

pytestmark = pytest.mark.integration

LOW = {"usefulness": 1, "trust": 1, "meeting_happened": False, "goal_progress": 1}
WINDOW = timedelta(days=5)  # the sample program's pulse window


@pytest.fixture
def real_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def moved(real_now: datetime) -> MovableClock:
    """36 hours ahead of the real time, like the end-to-end run's services."""
    return MovableClock(real_now + timedelta(hours=36))


@pytest.fixture
async def moved_client(runtime: Runtime, moved: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(runtime, moved) as http:
        yield http


async def a_check_in_due_tomorrow(runtime: Runtime, real_now: datetime, clock: Clock) -> People:
    """A match whose check-in falls due 24 h from now in real time (threshold 0.5: all-low ratings reach 0.4)."""
    people = People.fresh()
    await apply(runtime, program(people, at_risk_threshold=0.5), accepted(people, real_now), clock=clock)
    await apply(runtime, check_in_due(people, real_now + timedelta(days=1)), clock=clock)
    return people


async def both_answer_low(client: httpx.AsyncClient, runtime: Runtime, people: People) -> None:
    for person in (people.mentee, people.mentor):
        headers = token(runtime, people.tenant, person=person)
        [pulse] = (await client.get("/v1/me/pulses", params={"status": "open"}, headers=headers)).json()["items"]
        answered = await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": LOW}, headers=headers)
        assert answered.status_code == 200, answered.text


async def at_risk_events(runtime: Runtime) -> list[MatchAtRisk]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT headers::jsonb, value FROM outbox ORDER BY id"))).all()
    events = (decode([(k, v.encode()) for k, v in headers.items()], value).data for headers, value in rows)
    return [event for event in events if isinstance(event, MatchAtRisk)]


async def at_risk_list(client: httpx.AsyncClient, runtime: Runtime, people: People) -> list[str]:
    coordinator = token(runtime, people.tenant, coordinator_of=(people.program,))
    response = await client.get(f"/v1/programs/{people.program}/at-risk", headers=coordinator)
    assert response.status_code == 200, response.text
    return [entry["match_id"] for entry in response.json()["items"]]


async def test_with_the_clock_moved_ahead_a_low_pulse_on_a_check_in_due_in_real_time_tomorrow_marks_the_match_at_risk(
    runtime: Runtime, moved_client: httpx.AsyncClient, moved: MovableClock, real_now: datetime
) -> None:
    people = await a_check_in_due_tomorrow(runtime, real_now, moved)
    await both_answer_low(moved_client, runtime, people)

    assert await at_risk_list(moved_client, runtime, people) == [str(people.match)]
    [flagged] = await at_risk_events(runtime)
    assert flagged.at_risk
    assert "low_ratings" in flagged.reasons
    assert flagged.evaluated_at == moved.now()


async def test_on_the_real_clock_a_check_in_not_yet_due_does_not_count_towards_health(
    runtime: Runtime, client: httpx.AsyncClient, real_now: datetime
) -> None:
    people = await a_check_in_due_tomorrow(runtime, real_now, SystemClock())
    await both_answer_low(client, runtime, people)

    assert await at_risk_list(client, runtime, people) == []
    assert await at_risk_events(runtime) == []


async def test_a_pulse_closes_when_its_window_has_passed_by_the_service_clock(
    runtime: Runtime, moved_client: httpx.AsyncClient, moved: MovableClock, real_now: datetime
) -> None:
    people = await a_check_in_due_tomorrow(runtime, real_now, moved)
    mentee = token(runtime, people.tenant, person=people.mentee)
    [pulse] = (await moved_client.get("/v1/me/pulses", headers=mentee)).json()["items"]
    assert pulse["status"] == "open"

    moved.set(real_now + timedelta(days=1) + WINDOW)
    [pulse] = (await moved_client.get("/v1/me/pulses", headers=mentee)).json()["items"]
    assert pulse["status"] == "closed"
    late = await moved_client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": LOW}, headers=mentee)
    assert late.status_code == 409


async def test_the_report_is_dated_by_the_service_clock_and_answers_are_stamped_with_it(
    runtime: Runtime, moved_client: httpx.AsyncClient, moved: MovableClock, real_now: datetime
) -> None:
    people = await a_check_in_due_tomorrow(runtime, real_now, moved)
    moved.set(real_now + timedelta(days=3))
    mentee = token(runtime, people.tenant, person=people.mentee)
    [pulse] = (await moved_client.get("/v1/me/pulses", params={"status": "open"}, headers=mentee)).json()["items"]
    answered = await moved_client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": LOW}, headers=mentee)
    assert datetime.fromisoformat(answered.json()["submitted_at"]) == moved.now()

    coordinator = token(runtime, people.tenant, coordinator_of=(people.program,))
    report = (await moved_client.get(f"/v1/programs/{people.program}/report", headers=coordinator)).json()
    assert report["as_of"] == moved.now().date().isoformat()
