"""A program's pool as matching sees it (GET /v1/programs/{id}/pool): what a coordinator reads before a round to
tell whether matching has received everyone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, World, token
from shared.auth import Role

SENT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def test_the_pool_counts_what_matching_has_received_and_when_the_newest_event_was_sent(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program(), at=SENT)
    await feed(*w.mentee("amara", version=2), *w.mentee("bea"), at=SENT + timedelta(minutes=1))
    await feed(w.enrol("chen", "mentee"), at=SENT + timedelta(minutes=2))  # chen's profile is still on its way
    await feed(w.person("dana"), w.enrol("dana", "mentee", status="paused"), at=SENT + timedelta(minutes=2))
    await feed(*w.mentor("lukas", capacity=2), *w.mentor("nora", capacity=3), at=SENT + timedelta(minutes=3))
    await feed(w.enrol("omar", "mentor", capacity=1), at=SENT + timedelta(minutes=4))  # no profile yet either
    await feed(w.person("pia", level=3), w.enrol("pia", "mentor", 2, status="withdrawn"), at=SENT)
    # Stale (an older version than the one held): not applied, so its later time does not count.
    await feed(w.person("amara", version=1), at=SENT + timedelta(hours=5))
    coordinator = w.as_coordinator(settings)
    made = await client.post(
        "/v1/matches",
        json={
            "program_id": str(w.program_id),
            "mentee_person_id": str(w.id("amara")),
            "mentor_person_id": str(w.id("lukas")),
        },
        headers=coordinator,
    )
    assert made.status_code == 201, made.text

    response = await client.get(f"/v1/programs/{w.program_id}/pool", headers=coordinator)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "program_id": str(w.program_id),
        "mentees": {"active_enrolments": 3, "matchable": 2, "without_profile": 1, "unmatched": 1},
        "mentors": {
            "active_enrolments": 3,
            "matchable": 2,
            "without_profile": 1,
            "capacity_total": 5,
            "capacity_free": 4,  # lukas's proposal to amara holds one of his two slots
        },
        "newest_event_at": "2026-03-01T08:04:00Z",
    }

    await feed(w.person("chen"), at=SENT + timedelta(minutes=9))  # the profile arrives
    after = (await client.get(f"/v1/programs/{w.program_id}/pool", headers=coordinator)).json()
    assert after["mentees"] == {"active_enrolments": 3, "matchable": 3, "without_profile": 0, "unmatched": 2}
    assert after["newest_event_at"] == "2026-03-01T08:09:00Z"


async def test_the_pool_is_for_the_programs_coordinators_in_their_tenant_only(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program(), *w.mentee("amara"), *w.mentor("lukas"))
    path = f"/v1/programs/{w.program_id}/pool"
    assert (await client.get(path, headers=w.as_coordinator(settings))).status_code == 200

    as_participant = await client.get(path, headers=w.as_person(settings, "amara"))
    other_program = token(settings, w.tenant, roles=[Role.COORDINATOR], programs=[uuid.uuid4()])
    other_tenant = token(settings, uuid.uuid4(), roles=[Role.COORDINATOR], programs=[w.program_id])
    not_theirs = [await client.get(path, headers=h) for h in (other_program, other_tenant)]

    assert as_participant.status_code == 403
    assert [r.status_code for r in not_theirs] == [404, 404]
    assert all(str(w.id("amara")) not in r.text for r in not_theirs)


async def test_a_program_matching_has_not_received_yet_is_a_404_naming_it(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> None:
    w = World()
    await feed(*w.mentee("amara"))  # the enrolment came first; the program's event has not arrived

    response = await client.get(f"/v1/programs/{w.program_id}/pool", headers=w.as_coordinator(settings))

    assert response.status_code == 404
    assert str(w.program_id) in response.text
