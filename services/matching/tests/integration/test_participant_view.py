"""What a mentee or mentor sees of their own matches: their list, their partner, and nothing meant for coordinators."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import START, Feeder, World, outbox_payloads
from shared.events import samples
from shared.events.values import ProgramStatus


async def _requested(client: httpx.AsyncClient, settings: MatchingSettings, w: World, mentee: str, mentor: str) -> str:
    """The mentee asks the mentor: the proposal's match id."""
    requested = await client.post(
        f"/v1/programs/{w.program_id}/mentees/{w.id(mentee)}/requests",
        json={"mentor_person_id": str(w.id(mentor))},
        headers=w.as_person(settings, mentee),
    )
    assert requested.status_code == 201, requested.text
    match_id: str = requested.json()["match_id"]
    return match_id


async def _active(client: httpx.AsyncClient, settings: MatchingSettings, w: World, mentee: str, mentor: str) -> str:
    match_id = await _requested(client, settings, w, mentee, mentor)
    accepted = await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, mentor))
    assert accepted.json()["state"] == "active", accepted.text
    return match_id


async def _amara_and_lukas(feed: Feeder) -> World:
    """A program with the mentee amara and the mentor lukas."""
    w = World()
    await feed(w.program())
    await feed(*w.mentee("amara"), *w.mentor("lukas"))
    return w


async def _amara_and_lukas_matched(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> tuple[World, str]:
    w = await _amara_and_lukas(feed)
    return w, await _active(client, settings, w, "amara", "lukas")


async def _read(client: httpx.AsyncClient, match_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/v1/matches/{match_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _end(
    client: httpx.AsyncClient, match_id: str, headers: dict[str, str], category: str, private: str | None = None
) -> dict[str, Any]:
    ended = await client.post(
        f"/v1/matches/{match_id}/end", json={"reason_category": category, "private_reason": private}, headers=headers
    )
    assert ended.status_code == 200, ended.text
    body: dict[str, Any] = ended.json()
    return body


async def test_a_participant_pages_through_their_own_proposals_and_matches_and_sees_no_one_elses(
    client, settings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program(allow_mentor_network=True, max_mentors_per_mentee=3, max_open_requests_per_mentee=3))
    await feed(*w.mentee("amara"), *w.mentee("bea"))
    for mentor in ("lukas", "nora", "omar"):
        await feed(*w.mentor(mentor))
    active = await _active(client, settings, w, "amara", "lukas")
    proposed = []
    for mentor in ("nora", "omar"):
        response = await client.post(
            f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests",
            json={"mentor_person_id": str(w.id(mentor))},
            headers=w.as_person(settings, "amara"),
        )
        proposed.append(response.json()["match_id"])
    other_pair = await _active(client, settings, w, "bea", "nora")

    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await client.get(f"/v1/me/matches?limit=2&offset={offset}", headers=w.as_person(settings, "amara"))
        assert page.status_code == 200, page.text
        seen += [m["match_id"] for m in page.json()["items"]]
        offset = page.json()["next_offset"]
    assert sorted(seen) == sorted([active, *proposed])
    assert other_pair not in seen

    only_proposed = await client.get("/v1/me/matches?state=proposed", headers=w.as_person(settings, "amara"))
    assert sorted(m["match_id"] for m in only_proposed.json()["items"]) == sorted(proposed)
    mentor_view = await client.get("/v1/me/matches", headers=w.as_person(settings, "nora"))
    assert sorted(m["match_id"] for m in mentor_view.json()["items"]) == sorted([proposed[0], other_pair])
    coordinator = await client.get("/v1/me/matches", headers=w.as_coordinator(settings))
    assert coordinator.status_code == 403, "a coordinator's token names no participant"


async def test_a_round_proposal_the_coordinator_has_not_sent_is_not_shown_to_its_participants(
    client, settings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program())
    await feed(*w.mentee("amara"), *w.mentor("lukas"))
    ran = await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
    (proposal,) = ran.json()["proposals"]
    assert proposal["state"] == "pending_approval"

    read = await client.get(f"/v1/matches/{proposal['match_id']}", headers=w.as_person(settings, "amara"))
    assert read.status_code == 404
    listed = await client.get("/v1/me/matches", headers=w.as_person(settings, "amara"))
    assert listed.json() == {"items": [], "next_offset": None}


async def test_the_partners_of_an_at_risk_match_see_neither_its_reasons_nor_its_health_but_coordinators_do(
    client, settings, feed: Feeder
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    # Feedback derives these from both people's private pulses: a flagged concern, the other's low ratings.
    await feed(
        samples.match_at_risk(
            tenant_id=w.tenant,
            match_id=match_id,
            program_id=w.program_id,
            health_score=0.2,
            reasons=("concern_flagged", "low_ratings"),
            evaluated_at=START,
        )
    )

    for party in ("amara", "lukas"):
        seen = await _read(client, match_id, w.as_person(settings, party))
        assert (seen["at_risk"], seen["at_risk_reasons"], seen["at_risk_health"]) == (None, [], None), party
        listed = (await client.get("/v1/me/matches", headers=w.as_person(settings, party))).json()["items"]
        assert (listed[0]["at_risk"], listed[0]["at_risk_reasons"]) == (None, []), party
    coordinator = await _read(client, match_id, w.as_coordinator(settings))
    assert (coordinator["at_risk"], coordinator["at_risk_reasons"], coordinator["at_risk_health"]) == (
        True,
        ["concern_flagged", "low_ratings"],
        0.2,
    )


async def test_the_reason_category_of_an_ended_match_is_shown_to_who_ended_it_and_coordinators_not_the_partner(
    client, settings, feed: Feeder
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    ended = await _end(client, match_id, w.as_person(settings, "amara"), "not_a_good_fit")
    assert ended["match"]["end_reason_category"] == "not_a_good_fit"

    partner = await _read(client, match_id, w.as_person(settings, "lukas"))
    assert (partner["state"], partner["closed_by"], partner["end_reason_category"]) == ("ended", "mentee", None)
    coordinator = await _read(client, match_id, w.as_coordinator(settings))
    assert coordinator["end_reason_category"] == "not_a_good_fit"


async def _withdraw(feed: Feeder, w: World, name: str) -> None:
    role, capacity = ("mentor", 2) if name == "lukas" else ("mentee", 0)
    await feed(w.enrol(name, role, capacity=capacity, version=2, status="withdrawn"))


@pytest.mark.parametrize("leaving", ["lukas", "amara"])
async def test_both_parties_are_told_the_match_ended_because_one_of_them_left_the_program(
    client, settings, feed: Feeder, leaving: str
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    await _withdraw(feed, w, leaving)

    for party in ("amara", "lukas"):
        seen = await _read(client, match_id, w.as_person(settings, party))
        assert (seen["state"], seen["closed_by"], seen["end_reason_category"]) == (
            "ended",
            "system",
            "left_program",
        ), f"{party}: leaving the program is a fact of the program, nobody's explanation"


async def test_the_partner_of_an_erased_participant_is_told_they_left_the_program_never_that_they_were_erased(
    client, settings, feed: Feeder
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id("lukas"), version=2, erased_at=START))

    seen = await _read(client, match_id, w.as_person(settings, "amara"))
    assert (seen["state"], seen["closed_by"], seen["end_reason_category"]) == ("ended", "system", "left_program")
    listed = (await client.get("/v1/me/matches", headers=w.as_person(settings, "amara"))).json()["items"]
    for said in (seen, *listed):
        assert "erase" not in json.dumps(said).lower(), said
    coordinator = await _read(client, match_id, w.as_coordinator(settings))
    assert coordinator["end_reason_category"] == "participant_erased", "coordinators are told what happened"


async def test_the_partner_of_an_erased_participant_reads_their_open_proposal_lapsed_as_unavailable_never_erased(
    client, settings, feed: Feeder
) -> None:
    w = await _amara_and_lukas(feed)
    match_id = await _requested(client, settings, w, "amara", "lukas")
    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id("lukas"), version=2, erased_at=START))

    seen = await _read(client, match_id, w.as_person(settings, "amara"))
    assert (seen["state"], seen["closed_by"], seen["decline_reason"]) == (
        "declined",
        "system",
        "participant_unavailable",
    )
    assert "erase" not in json.dumps(seen).lower(), seen
    coordinator = await _read(client, match_id, w.as_coordinator(settings))
    assert coordinator["decline_reason"] == "participant_erased", "coordinators are told what happened"


async def test_both_parties_are_told_the_coordinator_ended_their_match_not_the_category_the_coordinator_chose(
    client, settings, feed: Feeder
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    # A coordinator often ends a match on one party's behalf: the category may be that party's reason, told in private.
    await _end(client, match_id, w.as_coordinator(settings), "personal_reasons", "Amara asked me; family matters.")

    for party in ("amara", "lukas"):
        seen = await _read(client, match_id, w.as_person(settings, party))
        assert (seen["closed_by"], seen["end_reason_category"], seen["end_reason_private"]) == (
            "coordinator",
            "coordinator_decision",
            None,
        ), party
    coordinator = await _read(client, match_id, w.as_coordinator(settings))
    assert (coordinator["end_reason_category"], coordinator["end_reason_private"]) == (
        "personal_reasons",
        "Amara asked me; family matters.",
    )


@pytest.mark.parametrize(
    ("how", "offered"),
    [
        ("amara ends it", True),
        ("lukas ends it", True),
        ("the coordinator ends it", True),
        ("lukas leaves the program", True),
        ("lukas is erased", True),
        ("amara leaves the program", False),
        ("the program is archived", False),
    ],
)
async def test_both_parties_read_whether_the_mentee_is_offered_a_new_match_as_the_match_ended_event_says(
    client, settings, feed: Feeder, db: AsyncEngine, how: str, offered: bool
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    assert (await _read(client, match_id, w.as_person(settings, "amara")))["rematch_offered"] is None, "still active"
    if how.endswith("ends it"):
        ender = w.as_coordinator(settings) if how.startswith("the") else w.as_person(settings, how.split()[0])
        await _end(client, match_id, ender, "no_time")
    elif how.endswith("leaves the program"):
        await _withdraw(feed, w, how.split()[0])
    elif how.endswith("erased"):
        await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id("lukas"), version=2, erased_at=START))
    else:
        await feed(w.program(version=2).model_copy(update={"status": ProgramStatus.ARCHIVED}))

    for reader in (w.as_person(settings, "amara"), w.as_person(settings, "lukas"), w.as_coordinator(settings)):
        assert (await _read(client, match_id, reader))["rematch_offered"] is offered
    (ended,) = await outbox_payloads(db, "org.mentorloom.match.ended.v1")
    assert ended["rematch_offered"] is offered


async def test_a_party_sees_their_partners_name_time_zone_and_languages_and_the_email_only_with_consent(
    client, settings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program())
    await feed(
        *w.mentee(
            "amara",
            time_zone="Europe/Berlin",
            languages=("de", "en"),
            consent={"affinity_matching": True, "share_email_with_partner": False},
        ),
        *w.mentor(
            "lukas",
            time_zone="America/New_York",
            languages=("en",),
            consent={"affinity_matching": True, "share_email_with_partner": True},
        ),
    )
    requested = await client.post(
        f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests",
        json={"mentor_person_id": str(w.id("lukas"))},
        headers=w.as_person(settings, "amara"),
    )
    match_id = requested.json()["match_id"]
    assert requested.json()["partner"] == {
        "person_id": str(w.id("lukas")),
        "display_name": "Lukas",
        "time_zone": "America/New_York",
        "languages": ["en"],
        "email": None,
    }, "no e-mail address while the match is only proposed"
    await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, "lukas"))

    mentee_view = await _read(client, match_id, w.as_person(settings, "amara"))
    assert mentee_view["partner"]["email"] == "lukas@example.org", "the mentor consented"
    mentor_view = await _read(client, match_id, w.as_person(settings, "lukas"))
    assert mentor_view["partner"] == {
        "person_id": str(w.id("amara")),
        "display_name": "Amara",
        "time_zone": "Europe/Berlin",
        "languages": ["de", "en"],
        "email": None,
    }, "the mentee did not consent to share the address"
    listed = (await client.get("/v1/me/matches", headers=w.as_person(settings, "amara"))).json()["items"]
    assert listed[0]["partner"]["email"] == "lukas@example.org"
    assert (await _read(client, match_id, w.as_coordinator(settings)))["partner"] is None

    await client.post(
        f"/v1/matches/{match_id}/end", json={"reason_category": "goals_met"}, headers=w.as_person(settings, "lukas")
    )
    assert (await _read(client, match_id, w.as_person(settings, "amara")))["partner"] is None, "an ended match"


async def test_erasing_a_participant_removes_the_explanation_that_names_their_needs_and_goals(
    client, settings, feed: Feeder
) -> None:
    w, match_id = await _amara_and_lukas_matched(client, settings, feed)
    before = await _read(client, match_id, w.as_coordinator(settings))
    assert "first paper" in before["explanation"], before["explanation"]

    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id("amara"), version=2, erased_at=START))

    after = await _read(client, match_id, w.as_coordinator(settings))
    assert "first paper" not in after["explanation"]
    assert after["explanation"] == "removed: a participant of this match was erased"


async def test_a_mentee_choosing_from_a_short_list_sees_each_mentors_name_time_zone_and_languages_not_their_email(
    client, settings, feed: Feeder
) -> None:
    w = World()
    await feed(w.program())
    await feed(*w.mentee("amara"))
    for name, zone in (("lukas", "America/New_York"), ("nora", "Europe/Oslo"), ("omar", "Asia/Tokyo")):
        await feed(*w.mentor(name, time_zone=zone, languages=("en",)))
    zones = {
        str(w.id(n)): z for n, z in (("lukas", "America/New_York"), ("nora", "Europe/Oslo"), ("omar", "Asia/Tokyo"))
    }

    listed = await client.get(
        f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/shortlist", headers=w.as_person(settings, "amara")
    )

    entries = listed.json()["entries"]
    assert len(entries) == 3, listed.text
    for entry in entries:
        mentor_id = entry["mentor_person_id"]
        name = next(n for n, i in w.people.items() if str(i) == mentor_id)
        assert entry["mentor"] == {
            "person_id": mentor_id,
            "display_name": name.title(),
            "time_zone": zones[mentor_id],
            "languages": ["en"],
            "email": None,
        }
