"""The match lifecycle through the API: requests, consent of both, declines, expiry, ends, access rules."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.application.sweeper import sweep_expired
from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, World, outbox_payloads, outbox_types, token
from shared.auth import Role
from shared.clock import MovableClock
from shared.db import session_factory
from shared.paging import MAX_LIMIT

PROPOSED = "org.mentorloom.match.proposed.v1"
ACCEPTED = "org.mentorloom.match.accepted.v1"
DECLINED = "org.mentorloom.match.declined.v1"
ENDED = "org.mentorloom.match.ended.v1"


async def seeded(feed: Feeder, **policy: Any) -> World:
    w = World()
    await feed(w.program(**policy))
    for name in ("amara", "bea"):
        await feed(*w.mentee(name))
    for name in ("lukas", "nora", "omar", "pia"):
        await feed(*w.mentor(name))
    return w


def shortlist_url(w: World, mentee: str) -> str:
    return f"/v1/programs/{w.program_id}/mentees/{w.id(mentee)}/shortlist"


def requests_url(w: World, mentee: str) -> str:
    return f"/v1/programs/{w.program_id}/mentees/{w.id(mentee)}/requests"


async def request(
    client: httpx.AsyncClient, settings: MatchingSettings, w: World, mentee: str, mentor: str
) -> dict[str, Any]:
    response = await client.post(
        requests_url(w, mentee), json={"mentor_person_id": str(w.id(mentor))}, headers=w.as_person(settings, mentee)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_mentee_sees_an_explained_shortlist_of_the_programs_length(client, settings, feed) -> None:
    w = await seeded(feed)
    response = await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["entries"]) == 3
    assert [e["rank"] for e in body["entries"]] == [1, 2, 3]
    scores = [e["score"] for e in body["entries"]]
    assert scores == sorted(scores, reverse=True)
    first = body["entries"][0]
    assert first["explanation"]
    assert {f["factor"] for f in first["factors"]} >= {"needs", "interests", "availability"}
    coordinator = await client.get(shortlist_url(w, "amara"), headers=w.as_coordinator(settings))
    assert coordinator.status_code == 200


async def test_an_empty_shortlist_says_why_in_the_round_reports_words_and_keeps_from_the_mentee_who_blocked_them(
    client, settings, feed
) -> None:
    w = World()
    await feed(w.program(hard_rules={"campus_rule": "same", "seniority": {"min_level_gap": 1}}))
    await feed(*w.mentee("amara"))
    elsewhere = uuid.uuid4()
    await feed(*w.mentor("pia", campus_id=elsewhere), *w.mentor("quinn", campus_id=elsewhere))
    await feed(*w.mentor("sam", level=1))  # at amara's level: not ahead
    await feed(*w.mentor("rosa", blocked_person_ids=(w.id("amara"),)))

    as_mentee = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    as_coordinator = (await client.get(shortlist_url(w, "amara"), headers=w.as_coordinator(settings))).json()
    round_report = (
        await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
    ).json()["report"]

    assert (as_mentee["entries"], as_mentee["feasible_mentors"]) == ([], 0)
    campus = "2 on another campus (the program or the mentee asks for the same campus) [campus_rule]"
    not_ahead = "1 not far enough ahead (role level or tenure) [mentor_not_ahead]"
    assert as_mentee["exclusions"] == {"campus_rule": 2, "mentor_not_ahead": 1}
    assert as_mentee["detail"] == f"no mentor passes the hard rules: {campus}; {not_ahead}"
    assert as_coordinator["exclusions"] == {"campus_rule": 2, "mentor_not_ahead": 1, "blocked_by_mentor": 1}
    (unmatched,) = round_report["unmatched"]
    assert as_coordinator["detail"] == unmatched["detail"]
    assert "[blocked_by_mentor]" in as_coordinator["detail"]

    await feed(*w.mentor("tom"))
    listed = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    assert [e["mentor_person_id"] for e in listed["entries"]] == [str(w.id("tom"))]
    assert listed["detail"] is None


async def test_a_mentee_request_becomes_active_when_the_mentor_accepts(client, settings, feed, db: AsyncEngine) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    assert match["state"] == "proposed"
    assert match["origin"] == "mentee_request"
    assert match["mentee_accepted"] is True
    accepted = await client.post(f"/v1/matches/{match['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "active"
    assert await outbox_types(db) == [PROPOSED, ACCEPTED]
    proposed = (await outbox_payloads(db, PROPOSED))[0]
    assert proposed["origin"] == "mentee_request"
    assert proposed["breakdown"]
    assert 0 <= proposed["score"] <= 1


async def test_a_cohort_style_proposal_needs_both_parties_and_accepting_twice_is_a_conflict(
    client, settings, feed
) -> None:
    w = await seeded(feed)
    created = await client.post(
        "/v1/matches",
        json={
            "program_id": str(w.program_id),
            "mentee_person_id": str(w.id("amara")),
            "mentor_person_id": str(w.id("nora")),
        },
        headers=w.as_coordinator(settings),
    )
    assert created.status_code == 201, created.text
    match_id = created.json()["match_id"]
    first = await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, "nora"))
    assert first.json()["state"] == "proposed"
    again = await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, "nora"))
    assert again.status_code == 409
    both = await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, "amara"))
    assert both.json()["state"] == "active"


async def test_illegal_transitions_are_conflicts(client, settings, feed) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    match_id = match["match_id"]
    ending_a_proposal = await client.post(
        f"/v1/matches/{match_id}/end", json={"reason_category": "other"}, headers=w.as_person(settings, "lukas")
    )
    assert ending_a_proposal.status_code == 409
    declined = await client.post(f"/v1/matches/{match_id}/decline", headers=w.as_person(settings, "lukas"))
    assert declined.json()["state"] == "declined"
    for action in ("accept", "decline"):
        response = await client.post(f"/v1/matches/{match_id}/{action}", headers=w.as_person(settings, "lukas"))
        assert response.status_code == 409, action


async def test_a_declined_pair_is_never_proposed_again(client, settings, feed) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    await client.post(f"/v1/matches/{match['match_id']}/decline", headers=w.as_person(settings, "lukas"))
    again = await client.post(
        requests_url(w, "amara"), json={"mentor_person_id": str(w.id("lukas"))}, headers=w.as_person(settings, "amara")
    )
    assert again.status_code == 409
    shortlist = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    assert str(w.id("lukas")) not in {e["mentor_person_id"] for e in shortlist["entries"]}


async def test_open_requests_per_mentee_are_capped_by_the_program(client, settings, feed) -> None:
    w = await seeded(feed)
    await request(client, settings, w, "amara", "lukas")
    await request(client, settings, w, "amara", "nora")
    third = await client.post(
        requests_url(w, "amara"), json={"mentor_person_id": str(w.id("omar"))}, headers=w.as_person(settings, "amara")
    )
    assert third.status_code == 409
    assert "open requests" in third.json()["detail"]["error_description"]


async def test_a_request_expires_after_the_window_on_read_and_by_the_sweeper(
    client, settings, feed, clock: MovableClock, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    read_lazily = await request(client, settings, w, "amara", "lukas")
    swept = await request(client, settings, w, "bea", "nora")
    clock.advance(timedelta(days=7, seconds=1))
    seen = await client.get(f"/v1/matches/{read_lazily['match_id']}", headers=w.as_person(settings, "amara"))
    assert seen.json()["state"] == "expired"
    late = await client.post(f"/v1/matches/{read_lazily['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    assert late.status_code == 409
    assert await sweep_expired(session_factory(db), clock, batch_size=10) == 1
    assert (await client.get(f"/v1/matches/{swept['match_id']}", headers=w.as_coordinator(settings))).json()[
        "state"
    ] == "expired"
    declines = await outbox_payloads(db, DECLINED)
    assert [(d["reason"], d["declined_by"]) for d in declines] == [("expired", "system")] * 2


async def test_ending_a_match_keeps_the_private_reason_for_coordinators_and_offers_new_mentors(
    client, settings, feed, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    match_id = match["match_id"]
    await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, "lukas"))
    ended = await client.post(
        f"/v1/matches/{match_id}/end",
        json={"reason_category": "not_a_good_fit", "private_reason": "We never found a shared rhythm."},
        headers=w.as_person(settings, "amara"),
    )
    assert ended.status_code == 200, ended.text
    body = ended.json()
    assert body["match"]["state"] == "ended"
    assert body["match"]["end_reason_private"] is None, "a participant does not read the private reason back"
    offered = {e["mentor_person_id"] for e in body["rematch"]["entries"]}
    assert offered
    assert str(w.id("lukas")) not in offered
    seen_by_coordinator = await client.get(f"/v1/matches/{match_id}", headers=w.as_coordinator(settings))
    assert seen_by_coordinator.json()["end_reason_private"] == "We never found a shared rhythm."
    seen_by_mentor = await client.get(f"/v1/matches/{match_id}", headers=w.as_person(settings, "lukas"))
    assert seen_by_mentor.json()["end_reason_private"] is None
    (event,) = await outbox_payloads(db, ENDED)
    assert event["reason_category"] == "not_a_good_fit"
    assert event["ended_by"] == "mentee"
    assert "shared rhythm" not in str(event)
    again = await client.post(
        requests_url(w, "amara"), json={"mentor_person_id": str(w.id("lukas"))}, headers=w.as_person(settings, "amara")
    )
    assert again.status_code == 409, "an ended pair is never proposed again"


async def test_a_mentor_network_lets_a_mentee_hold_several_active_matches(client, settings, feed) -> None:
    w = await seeded(feed, allow_mentor_network=True, max_mentors_per_mentee=2)
    for mentor in ("lukas", "nora"):
        match = await request(client, settings, w, "amara", mentor)
        accepted = await client.post(f"/v1/matches/{match['match_id']}/accept", headers=w.as_person(settings, mentor))
        assert accepted.json()["state"] == "active"
    third = await client.post(
        requests_url(w, "amara"), json={"mentor_person_id": str(w.id("omar"))}, headers=w.as_person(settings, "amara")
    )
    assert third.status_code == 409


async def test_another_tenant_and_other_participants_cannot_see_or_act_on_a_match(client, settings, feed) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    match_id = match["match_id"]
    stranger = token(settings, w.tenant, person=w.id("bea"))
    other_tenant = token(settings, __import__("uuid").uuid4(), person=w.id("lukas"))
    other_tenant_coordinator = token(
        settings, __import__("uuid").uuid4(), roles=[Role.COORDINATOR], programs=[w.program_id]
    )
    for headers in (stranger, other_tenant, other_tenant_coordinator):
        assert (await client.get(f"/v1/matches/{match_id}", headers=headers)).status_code == 404
        assert (await client.post(f"/v1/matches/{match_id}/accept", headers=headers)).status_code == 404
    coordinator_accepting = await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_coordinator(settings))
    assert coordinator_accepting.status_code == 403
    someone_elses_list = await client.get(shortlist_url(w, "amara"), headers=stranger)
    assert someone_elses_list.status_code == 404
    requesting_for_someone_else = await client.post(
        requests_url(w, "amara"), json={"mentor_person_id": str(w.id("nora"))}, headers=stranger
    )
    assert requesting_for_someone_else.status_code == 404
    participant_running_a_round = await client.post(
        f"/v1/programs/{w.program_id}/rounds", headers=w.as_person(settings, "amara")
    )
    assert participant_running_a_round.status_code == 403
    assert (await client.get(f"/v1/matches/{match_id}")).status_code == 401


async def test_a_mentor_with_one_free_slot_is_shown_on_one_open_shortlist_at_a_time(client, settings, feed) -> None:
    w = World()
    await feed(w.program())
    await feed(*w.mentee("amara"), *w.mentee("bea"))
    mentors = [f"mentor{i}" for i in range(6)]
    for name in mentors:
        await feed(*w.mentor(name, capacity=1))
    first = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    second = (await client.get(shortlist_url(w, "bea"), headers=w.as_person(settings, "bea"))).json()
    shown_first = {e["mentor_person_id"] for e in first["entries"]}
    shown_second = {e["mentor_person_id"] for e in second["entries"]}
    assert len(shown_first) == len(shown_second) == 3
    assert not shown_first & shown_second, "each mentor's single slot is offered to one open list"
    again = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    assert {e["mentor_person_id"] for e in again["entries"]} == shown_first, "a mentee's own list does not count"


async def test_a_programs_matches_page_by_offset_until_next_offset_is_null(client, settings, feed) -> None:
    w = World()
    await feed(w.program())
    pairs = [(f"mentee{i}", f"mentor{i}") for i in range(5)]
    for mentee, mentor in pairs:
        await feed(*w.mentee(mentee), *w.mentor(mentor))
    for mentee, mentor in pairs:
        created = await client.post(
            "/v1/matches",
            json={
                "program_id": str(w.program_id),
                "mentee_person_id": str(w.id(mentee)),
                "mentor_person_id": str(w.id(mentor)),
            },
            headers=w.as_coordinator(settings),
        )
        assert created.status_code == 201, created.text
    url = f"/v1/programs/{w.program_id}/matches"
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get(url, params={"limit": 2, "offset": offset}, headers=w.as_coordinator(settings))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [page["next_offset"] for page in pages] == [2, 4, None]
    seen = {m["mentee_person_id"] for page in pages for m in page["items"]}
    assert seen == {str(w.id(mentee)) for mentee, _ in pairs}
    too_big = await client.get(url, params={"limit": MAX_LIMIT + 1}, headers=w.as_coordinator(settings))
    assert too_big.status_code == 422


async def test_nobody_ends_a_match_as_participant_erased_which_only_an_erasure_sets(client, settings, feed) -> None:
    w = await seeded(feed)
    match = await request(client, settings, w, "amara", "lukas")
    await client.post(f"/v1/matches/{match['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    for headers in (w.as_person(settings, "amara"), w.as_coordinator(settings)):
        response = await client.post(
            f"/v1/matches/{match['match_id']}/end", json={"reason_category": "participant_erased"}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert "reason_category" in response.text
    seen = await client.get(f"/v1/matches/{match['match_id']}", headers=w.as_coordinator(settings))
    assert seen.json()["state"] == "active"


async def test_a_mentor_network_ranks_next_the_mentors_for_the_needs_the_current_mentor_does_not_cover(
    client, settings, feed
) -> None:
    w = World()
    await feed(w.program(allow_mentor_network=True, max_mentors_per_mentee=2))
    # amara: hidden_curriculum and writing_publishing critical, belonging_community important (the sample's needs)
    await feed(*w.mentee("amara"))
    await feed(*w.mentor("lukas", offers=("hidden_curriculum",)))
    await feed(*w.mentor("nora", offers=("hidden_curriculum", "belonging_community")))  # lukas's again, and more
    await feed(*w.mentor("omar", offers=("writing_publishing",)))  # the critical need nobody covers yet
    match = await request(client, settings, w, "amara", "lukas")
    await client.post(f"/v1/matches/{match['match_id']}/accept", headers=w.as_person(settings, "lukas"))

    listed = (await client.get(shortlist_url(w, "amara"), headers=w.as_person(settings, "amara"))).json()
    first = listed["entries"][0]
    assert first["mentor_person_id"] == str(w.id("omar")), [e["mentor"]["display_name"] for e in listed["entries"]]
    (needs,) = [f for f in first["factors"] if f["factor"] == "needs"]
    assert needs["detail"] == (
        "covers the mentee's critical need (Writing and publishing) but not their important need"
        " (1 more already covered by their current mentors)"
    )


async def test_a_coordinator_handling_one_persons_exit_lists_that_persons_matches_as_mentee_or_mentor(
    client, settings, feed
) -> None:
    w = await seeded(feed)
    for mentee, mentor in (("amara", "lukas"), ("bea", "nora")):
        await request(client, settings, w, mentee, mentor)
    url = f"/v1/programs/{w.program_id}/matches"
    coordinator = w.as_coordinator(settings)
    for person, pair in (("amara", ("amara", "lukas")), ("nora", ("bea", "nora")), ("omar", None)):
        listed = (await client.get(url, params={"person_id": str(w.id(person))}, headers=coordinator)).json()
        expected = [] if pair is None else [(str(w.id(pair[0])), str(w.id(pair[1])))]
        assert [(m["mentee_person_id"], m["mentor_person_id"]) for m in listed["items"]] == expected, person
