"""The projection: newest version wins, redelivery is harmless, erasure withdraws, at-risk flags a match."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.application.projection import make_handler
from services.matching.tests.integration.conftest import START, Feeder, World, outbox_payloads, rows
from shared.db import session_factory
from shared.events import samples
from shared.events.envelope import EventEnvelope, decode, encode
from shared.events.models import EventData
from shared.events.registry import PROFILES_TOPIC
from shared.messaging.consumer import ConsumerRunner


def record(envelope: EventEnvelope[EventData], offset: int) -> ConsumerRecord[bytes, bytes]:
    topic, key, value, headers = encode(envelope)
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def test_a_redelivered_profile_event_is_applied_once_through_the_consumer_inbox(db: AsyncEngine, unique) -> None:
    w = World()
    runner = ConsumerRunner(
        name=f"matching-test-{unique}",
        topics=[PROFILES_TOPIC],
        bootstrap="unused:9092",
        sessions=session_factory(db),
        handler=make_handler(),
        decode=decode,
    )
    first = EventEnvelope.wrap(w.person("amara", version=2, display_name="Amara"))
    newer = EventEnvelope.wrap(w.person("amara", version=3, display_name="Amara O."))
    await runner.process([record(first, 0)])
    await runner.process([record(newer, 1)])
    # The first snapshot again (a redelivery after a crash), then the newer one again: nothing changes.
    await runner.process([record(first, 0), record(newer, 1)])
    (stored,) = await rows(
        db, "SELECT version, snapshot->>'display_name' FROM people WHERE person_id = :p", p=w.id("amara")
    )
    assert tuple(stored) == (3, "Amara O.")
    handled = await rows(db, "SELECT count(*) FROM inbox WHERE consumer = :c", c=f"matching-test-{unique}")
    assert handled[0][0] == 2


async def test_an_older_snapshot_never_overwrites_a_newer_one(db: AsyncEngine, feed: Feeder) -> None:
    w = World()
    await feed(w.program(version=3, proposals_per_mentee=4), w.program(version=2, proposals_per_mentee=3))
    await feed(w.enrol("lukas", "mentor", capacity=3, version=5), w.enrol("lukas", "mentor", capacity=1, version=4))
    (program,) = await rows(db, "SELECT version, snapshot->'matching_policy'->>'proposals_per_mentee' FROM programs")
    assert tuple(program) == (3, "4")
    (enrolment,) = await rows(db, "SELECT version, capacity FROM enrolments")
    assert tuple(enrolment) == (5, 3)


async def test_an_erased_person_vanishes_and_their_open_proposals_and_matches_are_withdrawn(
    client, settings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program(allow_mentor_network=True, max_mentors_per_mentee=2))
    await feed(*w.mentee("amara"), *w.mentor("lukas"), *w.mentor("nora"))
    requests = f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests"
    active = (
        await client.post(
            requests, json={"mentor_person_id": str(w.id("lukas"))}, headers=w.as_person(settings, "amara")
        )
    ).json()
    await client.post(f"/v1/matches/{active['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    pending = (
        await client.post(
            requests, json={"mentor_person_id": str(w.id("nora"))}, headers=w.as_person(settings, "amara")
        )
    ).json()

    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id("amara"), version=2, erased_at=START))
    await feed(w.person("amara", version=1))  # a late snapshot from before the erasure: ignored

    (person,) = await rows(db, "SELECT erased, snapshot FROM people WHERE person_id = :p", p=w.id("amara"))
    assert tuple(person) == (True, None)
    states = dict(await rows(db, "SELECT match_id::text, state FROM matches"))
    assert states == {active["match_id"]: "ended", pending["match_id"]: "declined"}
    (ended,) = await outbox_payloads(db, "org.mentorloom.match.ended.v1")
    assert (ended["reason_category"], ended["ended_by"]) == ("participant_erased", "system")
    declined = await outbox_payloads(db, "org.mentorloom.match.declined.v1")
    assert [(d["match_id"], d["reason"]) for d in declined] == [(pending["match_id"], "participant_erased")]
    gone = await client.get(
        f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/shortlist", headers=w.as_coordinator(settings)
    )
    assert gone.status_code == 404


async def active_match(w: World, client: Any, settings: Any, feed: Feeder) -> dict[str, Any]:
    """Amara's request to Lukas in w's program, accepted: an active match."""
    await feed(w.program())
    await feed(*w.mentee("amara"), *w.mentor("lukas"))
    requests = f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests"
    match: dict[str, Any] = (
        await client.post(
            requests, json={"mentor_person_id": str(w.id("lukas"))}, headers=w.as_person(settings, "amara")
        )
    ).json()
    await client.post(f"/v1/matches/{match['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    return match


@pytest.mark.parametrize(
    ("leaving", "how", "rematch_offered"),
    [
        ("lukas", "withdrawn", True),
        ("lukas", "erased", True),
        ("amara", "withdrawn", False),
        ("amara", "erased", False),
    ],
)
async def test_a_mentor_leaving_the_program_offers_their_mentee_a_new_match_and_a_mentee_leaving_does_not(
    client, settings, feed: Feeder, db: AsyncEngine, leaving: str, how: str, rematch_offered: bool
) -> None:
    w = World()
    await active_match(w, client, settings, feed)
    if how == "withdrawn":
        role, capacity = ("mentor", 2) if leaving == "lukas" else ("mentee", 0)
        await feed(w.enrol(leaving, role, capacity=capacity, version=2, status="withdrawn"))
    else:
        await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id(leaving), version=2, erased_at=START))
    (ended,) = await outbox_payloads(db, "org.mentorloom.match.ended.v1")
    assert ended["rematch_offered"] is rematch_offered


async def test_match_at_risk_marks_the_match_for_coordinators_and_the_newest_evaluation_wins(
    client, settings, feed: Feeder
) -> None:
    w = World()
    match = await active_match(w, client, settings, feed)

    def at_risk(flag: bool, minutes: int) -> EventData:
        return samples.match_at_risk(
            tenant_id=w.tenant,
            match_id=match["match_id"],
            program_id=w.program_id,
            at_risk=flag,
            reasons=("missed_check_ins",) if flag else (),
            evaluated_at=START + timedelta(minutes=minutes),
        )

    await feed(at_risk(True, 10), at_risk(False, 5))  # the older "recovered" arrives late
    flagged = await client.get(f"/v1/programs/{w.program_id}/matches?at_risk=true", headers=w.as_coordinator(settings))
    assert [(m["match_id"], m["at_risk_reasons"]) for m in flagged.json()["items"]] == [
        (match["match_id"], ["missed_check_ins"])
    ]
    await feed(at_risk(False, 20))
    cleared = await client.get(f"/v1/programs/{w.program_id}/matches?at_risk=true", headers=w.as_coordinator(settings))
    assert cleared.json() == {"items": [], "next_offset": None}


async def test_an_ended_match_leaves_the_at_risk_list_and_a_late_evaluation_does_not_put_it_back(
    client, settings, feed: Feeder
) -> None:
    w = World()
    match = await active_match(w, client, settings, feed)
    flagged = {"tenant_id": w.tenant, "match_id": match["match_id"], "program_id": w.program_id}
    await feed(samples.match_at_risk(**flagged, evaluated_at=START + timedelta(minutes=10)))
    coordinator = w.as_coordinator(settings)
    at_risk_list = f"/v1/programs/{w.program_id}/matches?at_risk=true"
    assert len((await client.get(at_risk_list, headers=coordinator)).json()["items"]) == 1

    ended = await client.post(
        f"/v1/matches/{match['match_id']}/end", json={"reason_category": "coordinator_decision"}, headers=coordinator
    )
    assert ended.status_code == 200, ended.text
    assert (await client.get(at_risk_list, headers=coordinator)).json()["items"] == [], "nothing left to save"
    await feed(samples.match_at_risk(**flagged, evaluated_at=START + timedelta(minutes=20)))  # sent before the end
    assert (await client.get(at_risk_list, headers=coordinator)).json()["items"] == []


async def test_a_withdrawn_enrolment_ends_the_persons_matches_in_that_program(
    client, settings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    match = await active_match(w, client, settings, feed)
    await feed(w.enrol("lukas", "mentor", capacity=2, version=2, status="withdrawn"))
    states = dict(await rows(db, "SELECT match_id::text, state FROM matches"))
    assert states == {match["match_id"]: "ended"}
    (ended,) = await outbox_payloads(db, "org.mentorloom.match.ended.v1")
    assert ended["reason_category"] == "left_program"
