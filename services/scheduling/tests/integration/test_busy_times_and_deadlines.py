"""Meetings already set count: suggested slots avoid them, and a cancelled or moved meeting gives a check-in back its
own deadline. A mentee in Berlin and a mentor in New York, across the weeks both cities change their clocks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, token
from services.scheduling.tests.integration.scenario import Scenario
from shared.clock import MovableClock

pytestmark = pytest.mark.integration

BERLIN_EVENINGS = [(d, time(17), time(19)) for d in ("monday", "tuesday")]
NEW_YORK_MORNINGS = [(d, time(9), time(13)) for d in ("monday", "tuesday")]
GRACE = timedelta(days=7)  # Scenario.program's missed_grace_days


@pytest.fixture
async def berlin_and_new_york(feed: Feeder, clock: MovableClock) -> tuple[Scenario, Any, Any]:
    """The pair's match, and a second match of the same mentor with someone else."""
    s = Scenario()
    mentee, mentor, other_mentee = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    clock.set(datetime(2027, 3, 1, tzinfo=UTC))
    match = s.match(datetime(2027, 3, 1, tzinfo=UTC), mentee=mentee, mentor=mentor)
    other = s.match(datetime(2027, 3, 1, tzinfo=UTC), mentee=other_mentee, mentor=mentor)
    await feed(
        s.person(mentee, "Europe/Berlin", BERLIN_EVENINGS),
        s.person(mentor, "America/New_York", NEW_YORK_MORNINGS),
        s.person(other_mentee, "America/New_York", NEW_YORK_MORNINGS),
        s.program(starts_on=datetime(2027, 3, 1).date(), ends_on=datetime(2027, 12, 31).date()),
        match,
        other,
    )
    return s, match, other


def hour(day: int, at: int) -> datetime:
    return datetime(2027, 3, day, at, tzinfo=UTC)


async def _meeting(
    client: httpx.AsyncClient, match_id: uuid.UUID, headers: dict[str, str], start: datetime, **extra: Any
) -> dict[str, Any]:
    body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(), **extra}
    response = await client.post(f"/v1/matches/{match_id}/meetings", json=body, headers=headers)
    assert response.status_code == 201, response.text
    meeting: dict[str, Any] = response.json()
    return meeting


async def test_suggested_slots_leave_out_the_times_either_person_already_has_a_meeting(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, other = berlin_and_new_york
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)
    other_mentee = token(settings, s.tenant_id, person=other.mentee_person_id)

    async def slots() -> list[datetime]:
        response = await client.get(
            f"/v1/matches/{match.match_id}/slots",
            params={"start": "2027-03-08T00:00:00Z", "days": 22, "limit": 20},
            headers=mentee,
        )
        assert response.status_code == 200, response.text
        return [datetime.fromisoformat(x["starts_at"]) for x in response.json()["slots"]]

    # Berlin's 17:00-19:00 is 16:00-18:00 UTC, New York's 09:00-13:00 is 14:00-18:00 UTC; from 14 March New York
    # is on summer time (13:00-17:00 UTC), from 28 March Berlin too (15:00-17:00 UTC).
    free = await slots()
    assert free == [
        *(hour(8, 16), hour(8, 17), hour(9, 16), hour(9, 17)),
        *(hour(15, 16), hour(16, 16), hour(22, 16), hour(23, 16)),
        *(hour(29, 15), hour(29, 16)),
    ]

    await _meeting(client, match.match_id, mentee, hour(9, 16))  # proposed, not accepted yet: still taken
    elsewhere = await _meeting(client, other.match_id, other_mentee, hour(16, 16))
    await client.post(f"/v1/meetings/{elsewhere['meeting_id']}/accept", headers=mentor)
    await _meeting(client, other.match_id, other_mentee, hour(8, 16) + timedelta(minutes=30))  # overlaps both
    dropped = await _meeting(client, match.match_id, mentor, hour(22, 16))
    await client.post(f"/v1/meetings/{dropped['meeting_id']}/cancel", headers=mentee)

    taken = (hour(8, 16), hour(8, 17), hour(9, 16), hour(16, 16))
    assert await slots() == [x for x in free if x not in taken], "a cancelled meeting frees its time again"


async def test_a_cancelled_meeting_or_one_moved_before_the_due_time_gives_the_check_in_back_its_own_deadline(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, _ = berlin_and_new_york
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)

    async def check_in(check_in_id: str) -> dict[str, Any]:
        listed = await client.get(f"/v1/matches/{match.match_id}/check-ins", headers=mentee)
        found: list[dict[str, Any]] = [c for c in listed.json()["items"] if c["check_in_id"] == check_in_id]
        assert len(found) == 1, listed.text
        return found[0]

    late = await _meeting(client, match.match_id, mentee, hour(29, 15))
    first = await check_in(late["check_in_id"])
    due = datetime.fromisoformat(first["due_at"])
    assert due < hour(29, 15)
    assert datetime.fromisoformat(first["missed_after"]) == hour(29, 15) + GRACE, "a later meeting defers it"

    cancelled = await client.post(f"/v1/meetings/{late['meeting_id']}/cancel", headers=mentor)
    assert cancelled.json()["state"] == "cancelled"
    after_cancel = await check_in(late["check_in_id"])
    assert (after_cancel["deferred_until"], datetime.fromisoformat(after_cancel["missed_after"])) == (None, due + GRACE)

    again = await _meeting(client, match.match_id, mentee, hour(29, 15), check_in_id=late["check_in_id"])
    assert datetime.fromisoformat((await check_in(again["check_in_id"]))["missed_after"]) == hour(29, 15) + GRACE
    early = due - timedelta(days=2)
    moved = await client.post(
        f"/v1/meetings/{again['meeting_id']}/reschedule",
        json={"starts_at": early.isoformat(), "ends_at": (early + timedelta(hours=1)).isoformat()},
        headers=mentor,
    )
    assert moved.status_code == 200, moved.text
    after_move = await check_in(again["check_in_id"])
    assert (after_move["deferred_until"], datetime.fromisoformat(after_move["missed_after"])) == (None, due + GRACE)
