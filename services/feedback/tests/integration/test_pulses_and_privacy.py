"""Pulses and the privacy rules on individual feedback, through the API on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text

from services.feedback.tests.integration.support import (
    People,
    accepted,
    apply,
    check_in_due,
    count,
    program,
    token,
)
from shared.events import samples
from shared.events.envelope import decode
from shared.events.models import FeedbackSubmitted
from shared.paging import MAX_LIMIT
from shared.service import Runtime

pytestmark = pytest.mark.integration

GOOD = {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 60}


@pytest.fixture
async def pair(runtime: Runtime) -> People:
    people = People.fresh()
    await apply(runtime, program(people), accepted(people, datetime.now(UTC) - timedelta(days=20)))
    await apply(runtime, check_in_due(people, datetime.now(UTC) - timedelta(hours=1)))
    return people


async def my_open_pulse(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    pulses = (await client.get("/v1/me/pulses", params={"status": "open"}, headers=headers)).json()["items"]
    assert len(pulses) == 1, pulses
    pulse: dict[str, Any] = pulses[0]
    return pulse


async def outbox_feedback(runtime: Runtime) -> list[tuple[FeedbackSubmitted, bytes]]:
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT headers::jsonb, value FROM outbox ORDER BY id"))).all()
    found = []
    for headers, value in rows:
        event = decode([(k, v.encode()) for k, v in headers.items()], value).data
        if isinstance(event, FeedbackSubmitted):
            found.append((event, bytes(value)))
    return found


async def test_a_check_in_opens_one_pulse_per_party_with_the_program_questions(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    for person in (pair.mentor, pair.mentee):
        pulse = await my_open_pulse(client, token(runtime, pair.tenant, person=person))
        keys = [question["key"] for question in pulse["questions"]]
        assert keys == ["usefulness", "trust", "meeting_happened", "goal_progress", "private_note"]


async def test_answering_emits_scores_only_never_the_private_note(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    pulse = await my_open_pulse(client, mentee)
    note = "my mentor keeps cancelling, I feel ignored"
    response = await client.post(
        f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": {**GOOD, "private_note": note}}, headers=mentee
    )
    assert response.status_code == 200, response.text
    assert response.json()["notes"] == {"private_note": note}

    [(event, raw)] = await outbox_feedback(runtime)
    assert event.scores == {"usefulness": 4.0, "trust": 5.0, "meeting_happened": 1.0, "goal_progress": 60.0}
    assert event.respondent_role == "mentee"
    assert b"ignored" not in raw
    again = await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": GOOD}, headers=mentee)
    assert again.status_code == 409


async def test_invalid_pulse_answers_are_a_422_naming_each_question(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    pulse = await my_open_pulse(client, mentee)
    response = await client.post(
        f"/v1/pulses/{pulse['pulse_id']}/answers",
        json={"answers": {**GOOD, "usefulness": 9, "mood": 3}},
        headers=mentee,
    )
    assert response.status_code == 422
    assert {tuple(problem["loc"]) for problem in response.json()["detail"]} == {
        ("body", "answers", "usefulness"),
        ("body", "answers", "mood"),
    }


async def test_a_pulse_closes_when_its_window_has_passed(runtime: Runtime, client: httpx.AsyncClient) -> None:
    people = People.fresh()
    window_days = 5  # the sample program's pulse window
    due = datetime.now(UTC) - timedelta(days=window_days, minutes=1)
    await apply(runtime, program(people), accepted(people, due - timedelta(days=3)), check_in_due(people, due))
    mentee = token(runtime, people.tenant, person=people.mentee)
    [pulse] = (await client.get("/v1/me/pulses", headers=mentee)).json()["items"]
    assert pulse["status"] == "closed"
    late = await client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": GOOD}, headers=mentee)
    assert late.status_code == 409


async def test_the_partner_never_sees_the_others_ratings_or_notes(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    pulse = await my_open_pulse(client, mentee)
    await client.post(
        f"/v1/pulses/{pulse['pulse_id']}/answers",
        json={"answers": {**GOOD, "private_note": "private"}, "concern_flagged": True},
        headers=mentee,
    )
    # Even a partner who also coordinates the program.
    mentor_and_coordinator = token(runtime, pair.tenant, person=pair.mentor, coordinator_of=(pair.program,))
    for headers in (mentor, mentor_and_coordinator):
        hidden = await client.get(f"/v1/pulses/{pulse['pulse_id']}", headers=headers)
        assert hidden.status_code == 404
        # The words of a pulse that does not exist: the partner learns nothing from them.
        assert hidden.json()["detail"]["error_description"] == f"pulse {pulse['pulse_id']} not found"
        listed = (await client.get(f"/v1/matches/{pair.match}/pulses", headers=headers)).json()["items"]
        assert {item["pulse_id"] for item in listed} <= {(await my_open_pulse(client, mentor))["pulse_id"]}
        assert all(item["scores"] is None for item in listed)


async def test_coordinators_see_ratings_and_notes_only_when_a_concern_is_flagged(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    mentee_pulse = await my_open_pulse(client, mentee)
    mentor_pulse = await my_open_pulse(client, mentor)
    await client.post(
        f"/v1/pulses/{mentee_pulse['pulse_id']}/answers",
        json={"answers": {**GOOD, "private_note": "not flagged"}},
        headers=mentee,
    )
    await client.post(
        f"/v1/pulses/{mentor_pulse['pulse_id']}/answers",
        json={"answers": {**GOOD, "private_note": "please step in"}, "concern_flagged": True},
        headers=mentor,
    )
    seen = {
        item["pulse_id"]: item
        for item in (await client.get(f"/v1/matches/{pair.match}/pulses", headers=coordinator)).json()["items"]
    }
    assert seen[mentee_pulse["pulse_id"]]["scores"]["usefulness"] == 4
    assert seen[mentee_pulse["pulse_id"]]["notes"] is None
    assert seen[mentor_pulse["pulse_id"]]["notes"] == {"private_note": "please step in"}

    other_coordinator = token(runtime, pair.tenant, coordinator_of=(People.fresh().program,))
    assert (await client.get(f"/v1/pulses/{mentee_pulse['pulse_id']}", headers=other_coordinator)).status_code == 404
    other_tenant = token(runtime, People.fresh().tenant, coordinator_of=(pair.program,))
    assert (await client.get(f"/v1/matches/{pair.match}/pulses", headers=other_tenant)).status_code == 404


async def test_erasing_a_person_drops_their_notes_but_keeps_their_scores(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    pulse = await my_open_pulse(client, mentee)
    await client.post(
        f"/v1/pulses/{pulse['pulse_id']}/answers",
        json={"answers": {**GOOD, "private_note": "something personal"}, "concern_flagged": True},
        headers=mentee,
    )
    await apply(
        runtime, samples.profile_erased(tenant_id=pair.tenant, person_id=pair.mentee, erased_at=datetime.now(UTC))
    )
    assert await count(runtime, "SELECT count(*) FROM pulses WHERE notes IS NOT NULL") == 0
    assert await count(runtime, "SELECT count(*) FROM pulses WHERE notes::text LIKE '%personal%'") == 0
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    # The pulse has a new id (its old one was derived from the person's): the match's list shows it.
    assert (await client.get(f"/v1/pulses/{pulse['pulse_id']}", headers=coordinator)).status_code == 404
    listed = (await client.get(f"/v1/matches/{pair.match}/pulses", headers=coordinator)).json()["items"]
    [seen] = [item for item in listed if item["scores"] is not None]
    assert seen["scores"]["usefulness"] == 4
    assert seen["notes"] is None


async def test_redelivered_check_in_events_open_no_further_pulses(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    check_in = UUID(str((await my_open_pulse(client, token(runtime, pair.tenant, person=pair.mentee)))["check_in_id"]))
    due = datetime.now(UTC) - timedelta(hours=1)
    before = await count(runtime, "SELECT count(*) FROM pulses")
    await apply(runtime, check_in_due(pair, due, check_in), check_in_due(pair, due, check_in))
    assert before == 2
    assert await count(runtime, "SELECT count(*) FROM pulses") == 2
    assert await count(runtime, "SELECT count(*) FROM check_ins") == 1
    async with runtime.engine.connect() as conn:
        answers = (await conn.execute(text("SELECT scores FROM pulses"))).scalars().all()
    assert json.dumps(answers) == "[null, null]"


async def offset_pages(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    """Every page of an offset-paged list at limit=2, following next_offset until it is null."""
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get(url, params={**params, "limit": 2, "offset": offset}, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
    return pages


async def test_pulse_lists_page_by_offset_until_next_offset_is_null(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    for hours in range(2, 6):  # four more check-ins: five pulses for each party
        await apply(runtime, check_in_due(pair, datetime.now(UTC) - timedelta(hours=hours)))
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    for url, headers in (("/v1/me/pulses", mentee), (f"/v1/matches/{pair.match}/pulses", mentee)):
        pages = await offset_pages(client, url, headers)
        assert [len(page["items"]) for page in pages] == [2, 2, 1], url
        assert [page["next_offset"] for page in pages] == [2, 4, None], url
        assert len({p["pulse_id"] for page in pages for p in page["items"]}) == 5, url
    both = await offset_pages(client, f"/v1/matches/{pair.match}/pulses", coordinator)
    assert [len(page["items"]) for page in both] == [2, 2, 2, 2, 2]
    assert both[-1]["next_offset"] is None
    # The status filter is applied before paging: with one pulse answered, four open ones fill two whole pages.
    [newest, *_] = (await client.get("/v1/me/pulses", headers=mentee)).json()["items"]
    answered = await client.post(f"/v1/pulses/{newest['pulse_id']}/answers", json={"answers": GOOD}, headers=mentee)
    assert answered.status_code == 200, answered.text
    still_open = await offset_pages(client, "/v1/me/pulses", mentee, status="open")
    assert [len(page["items"]) for page in still_open] == [2, 2]
    assert newest["pulse_id"] not in {p["pulse_id"] for page in still_open for p in page["items"]}
    too_big = await client.get("/v1/me/pulses", params={"limit": MAX_LIMIT + 1}, headers=mentee)
    assert too_big.status_code == 422


async def test_a_party_whose_token_lacks_the_participant_role_gets_one_empty_last_page_of_the_matchs_pulses(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    for hours in range(2, 6):  # five pulses for each party
        await apply(runtime, check_in_due(pair, datetime.now(UTC) - timedelta(hours=hours)))
    # The mentor also coordinates the program but calls with a coordinator's token carrying their person id: a
    # party sees no pulse of the match without the participant role, so there is no further page to promise.
    mentor_as_coordinator = token(
        runtime, pair.tenant, person=pair.mentor, coordinator_of=(pair.program,), participant=False
    )
    pages = await offset_pages(client, f"/v1/matches/{pair.match}/pulses", mentor_as_coordinator)
    assert pages == [{"items": [], "next_offset": None}]
