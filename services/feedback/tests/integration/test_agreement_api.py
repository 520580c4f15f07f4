"""Expectations agreement through the API, on a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.feedback.tests.integration.support import People, accepted, apply, program, token
from shared.service import Runtime

pytestmark = pytest.mark.integration


def answers(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "aspirations": {"hopes": "settle into the lab", "commitment": 4},
        "communication": {"channel": "video", "frequency": "fortnightly", "response_time": "within_two_days"},
        "well_being": {"openness_to_personal_topics": 4, "boundaries": ""},
        "work_feedback": {"wants_feedback_on_work": 4, "style": "direct"},
        "conflict_resolution": {"approach": "raise_immediately", "comfort_raising_issues": 4},
        "career_development": {"importance": 3},
        "goals": {"goals": ["Submit the first paper", "Find a thesis topic"]},
    }
    for topic, values in changes.items():
        base[topic] = {**base[topic], **values}
    return base


@pytest.fixture
async def pair(runtime: Runtime) -> People:
    people = People.fresh()
    await apply(runtime, program(people), accepted(people))
    return people


async def test_neither_party_sees_the_others_answers_until_both_have_submitted(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    url = f"/v1/matches/{pair.match}/agreement"

    first = await client.put(f"{url}/answers", json=answers(), headers=mentee)
    assert first.status_code == 200, first.text
    mentor_view = (await client.get(url, headers=mentor)).json()
    assert mentor_view["own"] is None
    assert mentor_view["partner"] is None
    assert mentor_view["partner_has_submitted"] is True
    assert mentor_view["comparison"] is None

    await client.put(f"{url}/answers", json=answers(aspirations={"hopes": "share what I learnt"}), headers=mentor)
    mentee_view = (await client.get(url, headers=mentee)).json()
    assert mentee_view["partner"]["aspirations"]["hopes"] == "share what I learnt"
    assert mentee_view["comparison"] is not None


async def test_the_comparison_shows_where_hand_made_answers_diverge(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    url = f"/v1/matches/{pair.match}/agreement"
    await client.put(f"{url}/answers", json=answers(), headers=mentee)
    mentor_answers = answers(
        communication={"frequency": "monthly"},  # differs from fortnightly
        well_being={"openness_to_personal_topics": 1},  # gap 3 >= 2
        work_feedback={"wants_feedback_on_work": 5},  # gap 1 < 2: converges
        goals={"goals": ["Submit the first paper!", "Learn to teach"]},
    )
    response = await client.put(f"{url}/answers", json=mentor_answers, headers=mentor)
    comparison = response.json()["comparison"]
    verdicts = {topic["topic"]: topic for topic in comparison["topics"]}

    items = {item["item"]: item for item in verdicts["communication"]["items"]}
    assert items["frequency"]["alignment"] == "diverge"
    assert items["channel"]["alignment"] == "converge"
    well_being = {item["item"]: item for item in verdicts["well_being"]["items"]}
    assert well_being["openness_to_personal_topics"]["gap"] == 3
    assert well_being["openness_to_personal_topics"]["alignment"] == "diverge"
    work = {item["item"]: item for item in verdicts["work_feedback"]["items"]}
    assert work["wants_feedback_on_work"]["alignment"] == "converge"
    goals = verdicts["goals"]["goals"]
    assert goals["shared"] == [["Submit the first paper!", "Submit the first paper"]]
    assert goals["only_first"] == ["Learn to teach"]
    assert goals["only_second"] == ["Find a thesis topic"]


async def test_answers_lock_once_both_submitted_and_the_plan_waits_for_both(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    url = f"/v1/matches/{pair.match}/agreement"
    await client.put(f"{url}/answers", json=answers(), headers=mentee)
    early_plan = await client.put(f"{url}/plan", json={"goals": ["Submit the paper"]}, headers=mentee)
    assert early_plan.status_code == 409

    await client.put(f"{url}/answers", json=answers(), headers=mentor)
    assert (await client.put(f"{url}/answers", json=answers(), headers=mentee)).status_code == 409

    plan = await client.put(
        f"{url}/plan",
        json={"goals": ["Submit the paper"], "agreements": {"communication": "video every other Tuesday"}},
        headers=mentor,
    )
    assert plan.status_code == 200, plan.text
    goal_id = plan.json()["plan"]["goals"][0]["goal_id"]
    progress = await client.post(f"{url}/goals/{goal_id}/progress", json={"percent": 40}, headers=mentee)
    assert progress.status_code == 200, progress.text
    seen_by_mentor = (await client.get(url, headers=mentor)).json()
    assert seen_by_mentor["plan"]["goals"][0]["updates"][-1]["percent"] == 40


async def test_strangers_and_other_tenants_cannot_find_the_agreement(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    url = f"/v1/matches/{pair.match}/agreement"
    stranger = token(runtime, pair.tenant, person=People.fresh().mentee)
    other_tenant_mentee = token(runtime, People.fresh().tenant, person=pair.mentee)
    for headers in (stranger, other_tenant_mentee):
        refused = await client.get(url, headers=headers)
        assert refused.status_code == 404
        # It names what was not found, in the same words as for a match that does not exist.
        assert refused.json()["detail"]["error_description"] == f"match {pair.match} not found"
    assert (await client.get(url)).status_code == 401
    coordinator = token(runtime, pair.tenant, coordinator_of=(pair.program,))
    assert (await client.get(url, headers=coordinator)).status_code == 403


async def test_a_malformed_answer_is_a_422_naming_the_field(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    bad = answers(aspirations={"commitment": 9})
    response = await client.put(f"/v1/matches/{pair.match}/agreement/answers", json=bad, headers=mentee)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-2:] == ["aspirations", "commitment"]


async def test_a_plan_recorded_from_a_stale_read_is_refused_rather_than_replacing_the_partners_plan(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee, mentor = token(runtime, pair.tenant, person=pair.mentee), token(runtime, pair.tenant, person=pair.mentor)
    url = f"/v1/matches/{pair.match}/agreement"
    await client.put(f"{url}/answers", json=answers(), headers=mentee)
    await client.put(f"{url}/answers", json=answers(), headers=mentor)
    read_by_mentee = (await client.get(url, headers=mentee)).headers["ETag"]
    mentors_plan = await client.put(f"{url}/plan", json={"goals": ["Mentor's goal"]}, headers=mentor)
    assert mentors_plan.status_code == 200, mentors_plan.text
    assert mentors_plan.headers["ETag"] != read_by_mentee

    stale = await client.put(
        f"{url}/plan", json={"goals": ["Mentee's goal"]}, headers={**mentee, "If-Match": read_by_mentee}
    )
    assert stale.status_code == 412, stale.text
    assert [g["text"] for g in (await client.get(url, headers=mentee)).json()["plan"]["goals"]] == ["Mentor's goal"]
    current = mentors_plan.headers["ETag"]
    fresh = await client.put(f"{url}/plan", json={"goals": ["Mentee's goal"]}, headers={**mentee, "If-Match": current})
    assert fresh.status_code == 200, fresh.text


async def test_answers_sent_from_a_second_device_with_a_stale_read_are_refused(
    runtime: Runtime, client: httpx.AsyncClient, pair: People
) -> None:
    mentee = token(runtime, pair.tenant, person=pair.mentee)
    url = f"/v1/matches/{pair.match}/agreement"
    read_on_phone = (await client.get(url, headers=mentee)).headers["ETag"]
    laptop = await client.put(f"{url}/answers", json=answers(career_development={"importance": 5}), headers=mentee)
    assert laptop.status_code == 200, laptop.text
    phone = await client.put(f"{url}/answers", json=answers(), headers={**mentee, "If-Match": read_on_phone})
    assert phone.status_code == 412, phone.text
    kept = (await client.get(url, headers=mentee)).json()["own"]
    assert kept["career_development"]["importance"] == 5
