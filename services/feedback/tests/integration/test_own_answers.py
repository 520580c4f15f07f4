"""A participant reads back what they submitted (pulses with their private note, survey and agreement answers)
under /v1/me, and only they do: on a real PostgreSQL, through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from services.feedback.tests.integration.support import People, accepted, apply, check_in_due, program, token
from services.feedback.tests.integration.test_agreement_api import answers as agreement_answers
from services.feedback.tests.integration.test_pulses_and_privacy import offset_pages
from shared.paging import MAX_LIMIT
from shared.service import Runtime

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
GOOD = {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 60}


@pytest.fixture
async def pair(runtime: Runtime) -> People:
    people = People.fresh()
    await apply(runtime, program(people), accepted(people, NOW - timedelta(days=20)))
    await apply(runtime, check_in_due(people, NOW - timedelta(hours=1)))
    return people


async def ok(response: Any) -> dict[str, Any]:
    awaited = await response
    assert awaited.status_code in (200, 201), awaited.text
    body: dict[str, Any] = awaited.json()
    return body


async def test_a_participant_reads_back_their_own_pulse_scores_and_private_note(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    [pulse] = (await ok(client.get("/v1/me/pulses", headers=mentee)))["items"]
    answers = {**GOOD, "private_note": "only for me"}
    await ok(client.post(f"/v1/pulses/{pulse['pulse_id']}/answers", json={"answers": answers}, headers=mentee))

    [mine] = (await ok(client.get("/v1/me/pulses", headers=mentee)))["items"]
    assert mine["scores"] == GOOD
    assert mine["notes"] == {"private_note": "only for me"}
    # The partner's list holds only their own (unanswered) pulse; reading the mentee's is a 404.
    partner = token(runtime, pair.tenant, person=pair.mentor)
    [theirs] = (await ok(client.get("/v1/me/pulses", headers=partner)))["items"]
    assert theirs["pulse_id"] != pulse["pulse_id"]
    assert theirs["scores"] is None
    assert (await client.get(f"/v1/pulses/{pulse['pulse_id']}", headers=partner)).status_code == 404


async def test_a_participant_reads_back_their_own_survey_answers_and_nobody_else_sees_them(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    partner = token(runtime, pair.tenant, person=pair.mentor)
    url = f"/v1/matches/{pair.match}/surveys"
    await ok(client.post(url, json={"kind": "before", "answers": {"confidence": 2, "belonging": 3}}, headers=mentee))
    await ok(client.post(url, json={"kind": "after", "answers": {"confidence": 4, "belonging": 5}}, headers=mentee))
    await ok(client.post(url, json={"kind": "before", "answers": {"confidence": 5}}, headers=partner))

    assert (await ok(client.get("/v1/me/surveys", headers=mentee)))["items"] == [
        {
            "match_id": str(pair.match),
            "before": {"score": 2.5, "answers": {"confidence": 2, "belonging": 3}},
            "after": {"score": 4.5, "answers": {"confidence": 4, "belonging": 5}},
        }
    ]
    # The partner reads back only their own answers; another participant of the tenant has none.
    assert (await ok(client.get("/v1/me/surveys", headers=partner)))["items"] == [
        {"match_id": str(pair.match), "before": {"score": 5.0, "answers": {"confidence": 5}}, "after": None}
    ]
    stranger = token(runtime, pair.tenant, person=uuid4())
    assert await ok(client.get("/v1/me/surveys", headers=stranger)) == {"items": [], "next_offset": None}
    # Without the participant role (a coordinator of the program) there is no "me" to read: 403.
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    assert (await client.get("/v1/me/surveys", headers=coordinator)).status_code == 403


async def test_a_participant_reads_back_their_own_agreement_answers_and_nobody_else_sees_them(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    partner = token(runtime, pair.tenant, person=pair.mentor)
    submitted = agreement_answers(aspirations={"hopes": "the mentee's own hopes"})
    await ok(client.put(f"/v1/matches/{pair.match}/agreement/answers", json=submitted, headers=mentee))

    [mine] = (await ok(client.get("/v1/me/agreement-answers", headers=mentee)))["items"]
    assert mine["match_id"] == str(pair.match)
    assert mine["answers"]["aspirations"] == submitted["aspirations"]
    assert mine["answers"]["goals"] == submitted["goals"]
    assert mine["submitted_at"] is not None
    # The partner has not answered: their list is empty, and it never carries the mentee's answers.
    assert await ok(client.get("/v1/me/agreement-answers", headers=partner)) == {"items": [], "next_offset": None}
    await ok(client.put(f"/v1/matches/{pair.match}/agreement/answers", json=agreement_answers(), headers=partner))
    [theirs] = (await ok(client.get("/v1/me/agreement-answers", headers=partner)))["items"]
    assert theirs["answers"]["aspirations"]["hopes"] == "settle into the lab"
    stranger = token(runtime, pair.tenant, person=uuid4())
    assert await ok(client.get("/v1/me/agreement-answers", headers=stranger)) == {"items": [], "next_offset": None}
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    assert (await client.get("/v1/me/agreement-answers", headers=coordinator)).status_code == 403


async def test_own_survey_and_agreement_answers_page_by_offset_until_next_offset_is_null(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    # The mentee in three matches (the fixture's and two more), answering the survey and agreement of each.
    matches = [pair, *(People(pair.tenant, pair.program, uuid4(), pair.mentee, uuid4()) for _ in range(2))]
    await apply(runtime, *(accepted(match, NOW - timedelta(days=5)) for match in matches[1:]))
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    for match in matches:
        await ok(
            client.post(
                f"/v1/matches/{match.match}/surveys", json={"kind": "before", "answers": {"q": 3}}, headers=mentee
            )
        )
        await ok(client.put(f"/v1/matches/{match.match}/agreement/answers", json=agreement_answers(), headers=mentee))

    for url in ("/v1/me/surveys", "/v1/me/agreement-answers"):
        pages = await offset_pages(client, url, mentee)
        assert [len(page["items"]) for page in pages] == [2, 1], url
        assert [page["next_offset"] for page in pages] == [2, None], url
        seen = [item["match_id"] for page in pages for item in page["items"]]
        assert sorted(seen) == sorted(str(match.match) for match in matches), url
    assert (await client.get("/v1/me/surveys", params={"limit": MAX_LIMIT + 1}, headers=mentee)).status_code == 422
