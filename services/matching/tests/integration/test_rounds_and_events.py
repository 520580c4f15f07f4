"""Cohort rounds through the API on a seeded program: hard rules kept, approval sends MatchProposed on the topic."""

from __future__ import annotations

import json
import uuid
from datetime import date

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, World, outbox_payloads, rows
from shared.events.registry import MATCHING_TOPIC
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end
from shared.messaging.outbox import OutboxRelay

ROUND_COMPLETED = "org.mentorloom.match-round.completed.v1"


async def seeded_with_rules(client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder) -> World:
    """Every forbidden pair is the best-scoring one on paper (same interests), so only the rules keep them apart."""
    w = World()
    await feed(w.program(exclude_same_team=True, campus_rule="same"))
    other_campus = uuid.uuid4()
    await feed(*w.mentee("amara", blocked_person_ids=(w.id("lukas"),), interests=("glass",)))  # blocks lukas
    await feed(*w.mentee("bea", team="lab", interests=("chess",)))  # same team as nora
    await feed(*w.mentee("chen", interests=("kites",)))  # ended a match with omar before
    await feed(*w.mentee("dana", campus_id=other_campus, interests=("moths",)))  # only pia is on dana's campus
    await feed(*w.mentor("lukas", capacity=2, interests=("glass",)))
    await feed(*w.mentor("nora", capacity=2, team="lab", interests=("chess",)))
    await feed(*w.mentor("omar", capacity=2, interests=("kites",)))
    await feed(*w.mentor("pia", capacity=1, campus_id=other_campus))
    await feed(*w.mentor("rosa", capacity=2, interests=("moths",)))  # dana's best on paper, other campus
    await feed(*w.mentor("quinn", capacity=3))
    # chen and omar: a match that ended (through the API)
    created = await client.post(
        "/v1/matches",
        json={
            "program_id": str(w.program_id),
            "mentee_person_id": str(w.id("chen")),
            "mentor_person_id": str(w.id("omar")),
        },
        headers=w.as_coordinator(settings),
    )
    match_id = created.json()["match_id"]
    for person in ("chen", "omar"):
        await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, person))
    ended = await client.post(
        f"/v1/matches/{match_id}/end", json={"reason_category": "no_time"}, headers=w.as_coordinator(settings)
    )
    assert ended.json()["match"]["state"] == "ended"
    return w


async def test_a_round_keeps_every_hard_rule_and_waits_for_approval(client, settings, feed, db: AsyncEngine) -> None:
    w = await seeded_with_rules(client, settings, feed)
    before = len(await outbox_payloads(db, "org.mentorloom.match.proposed.v1"))
    response = await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending_approval"
    pairs = {(p["mentee_person_id"], p["mentor_person_id"]) for p in body["proposals"]}
    forbidden = {
        (w.id("amara"), w.id("lukas")),  # blocked
        (w.id("bea"), w.id("nora")),  # same team
        (w.id("chen"), w.id("omar")),  # ended before
    }
    assert not {(uuid.UUID(a), uuid.UUID(b)) for a, b in pairs} & forbidden
    off_campus = {w.id("pia")}
    assert (str(w.id("dana")), str(w.id("rosa"))) not in pairs
    for mentee, mentor in pairs:
        assert (uuid.UUID(mentor) in off_campus) == (uuid.UUID(mentee) == w.id("dana")), "campus rule"
    assert {p["state"] for p in body["proposals"]} == {"pending_approval"}
    report = body["report"]
    assert report["mentee_count"] == 4
    assert report["matched_mentees"] == 4
    assert report["certificate"]["proven_optimal"] is True
    assert sum(b["count"] for b in report["distribution"]) == report["proposal_count"]
    assert len(await outbox_payloads(db, "org.mentorloom.match.proposed.v1")) == before, "nothing sent before approval"
    fetched = await client.get(f"/v1/rounds/{body['round_id']}", headers=w.as_coordinator(settings))
    assert fetched.json()["report"] == report


async def test_a_round_does_not_propose_a_mentor_further_ahead_than_the_programs_maximum_tenure_gap_and_says_why(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> None:
    w = World()
    seniority = {"min_level_gap": 1, "max_tenure_gap_months": 24}
    await feed(w.program(hard_rules={"campus_rule": "same", "seniority": seniority}))
    other_campus = uuid.uuid4()
    # amara's best mentor on paper (same interests) started 15 years before her; sam started a year before her.
    await feed(*w.mentee("amara", tenure_start=date(2025, 9, 1), interests=("glass",)))
    await feed(*w.mentor("veteran", tenure_start=date(2010, 9, 1), interests=("glass",)))
    await feed(*w.mentor("sam", tenure_start=date(2024, 9, 1)))
    # On bea's campus only a mentor who started 721 days before her: one day over 24 months of 30 days.
    await feed(*w.mentee("bea", tenure_start=date(2025, 9, 1), campus_id=other_campus))
    await feed(*w.mentor("old_hand", tenure_start=date(2023, 9, 11), campus_id=other_campus))
    response = await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
    assert response.status_code == 201, response.text
    body = response.json()
    pairs = {(uuid.UUID(p["mentee_person_id"]), uuid.UUID(p["mentor_person_id"])) for p in body["proposals"]}
    assert pairs == {(w.id("amara"), w.id("sam"))}
    (unmatched,) = body["report"]["unmatched"]
    assert unmatched["mentee_person_id"] == str(w.id("bea"))
    assert unmatched["reason"] == "no_eligible_mentor"
    # old_hand and the veteran started too long before bea; sam and the veteran are on another campus.
    assert unmatched["exclusions"] == {"campus_rule": 2, "mentor_tenure_too_far_ahead": 2}
    assert unmatched["detail"] == (
        "no mentor passes the hard rules: 2 on another campus (the program or the mentee asks for the same campus) "
        "[campus_rule]; 2 too far ahead in tenure (started longer before the mentee than the program allows) "
        "[mentor_tenure_too_far_ahead]"
    )


async def test_approving_a_round_sends_match_proposed_keyed_by_match_and_reports_the_round(
    client, settings, feed, db: AsyncEngine, kafka_bootstrap: str
) -> None:
    w = await seeded_with_rules(client, settings, feed)
    body = (await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))).json()
    proposals = body["proposals"]
    chosen = [p["match_id"] for p in proposals[:-1]]
    approved = await client.post(
        f"/v1/rounds/{body['round_id']}/approve", json={"proposal_ids": chosen}, headers=w.as_coordinator(settings)
    )
    assert approved.status_code == 200, approved.text
    states = {p["match_id"]: p["state"] for p in approved.json()["proposals"]}
    assert {states[m] for m in chosen} == {"proposed"}
    assert states[proposals[-1]["match_id"]] == "declined"
    again = await client.post(f"/v1/rounds/{body['round_id']}/approve", json={}, headers=w.as_coordinator(settings))
    assert again.status_code == 409
    (completed,) = await outbox_payloads(db, ROUND_COMPLETED)
    assert completed["round_id"] == body["round_id"]
    assert completed["proven_optimal"] is True

    await ensure_topics(kafka_bootstrap, [MATCHING_TOPIC])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        await OutboxRelay(db, producer, service="matching").drain()
    finally:
        await producer.stop()
    assert (await rows(db, "SELECT count(*) FROM outbox"))[0][0] == 0
    # The outbox is empty, so every event is on the topic: read it to its end (other tests' events are there too).
    seen: dict[str, bytes | None] = {}
    for record in await read_topic_to_end(kafka_bootstrap, MATCHING_TOPIC):
        headers = {k: v.decode() for k, v in record.headers}
        if headers.get("ce_type") == "org.mentorloom.match.proposed.v1":
            data = json.loads(record.value or b"{}")
            if data["round_id"] == body["round_id"]:
                seen[data["match_id"]] = record.key
    assert set(seen) == set(chosen)
    assert all(key == match_id.encode() for match_id, key in seen.items()), "keyed by match id"
