"""When a program's last day (`ends_on`) has passed: its active matches reach their planned end, its open proposals
lapse, and nothing new starts in it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.application.sweeper import sweep_finished_programs
from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, World, outbox_payloads
from services.matching.tests.integration.test_lifecycle_api import DECLINED, ENDED, request, seeded
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events.values import ProgramStatus

LAST_DAY_EVENING = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)  # samples.program_updated ends on 2026-06-30
DAY_AFTER = datetime(2026, 7, 1, 0, 0, 1, tzinfo=UTC)


async def test_after_the_programs_last_day_active_matches_end_as_planned_and_open_proposals_lapse(
    client, settings: MatchingSettings, feed: Feeder, clock: MovableClock, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    active = await request(client, settings, w, "amara", "lukas")
    await client.post(f"/v1/matches/{active['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    clock.set(datetime(2026, 6, 28, 9, 0, tzinfo=UTC))
    waiting = await request(client, settings, w, "bea", "nora")  # its 7-day window runs past the program's end

    clock.set(LAST_DAY_EVENING)
    assert await sweep_finished_programs(session_factory(db), clock, batch_size=10) == 0, "the last day is in it"

    clock.set(DAY_AFTER)
    assert await sweep_finished_programs(session_factory(db), clock, batch_size=1) == 2
    coordinator = w.as_coordinator(settings)
    ended = (await client.get(f"/v1/matches/{active['match_id']}", headers=coordinator)).json()
    assert (ended["state"], ended["end_reason_category"], ended["closed_by"]) == (
        "ended",
        "planned_end_reached",
        "system",
    )
    lapsed = (await client.get(f"/v1/matches/{waiting['match_id']}", headers=coordinator)).json()
    assert (lapsed["state"], lapsed["decline_reason"]) == ("expired", "expired")
    for party in ("amara", "lukas"):
        seen = (await client.get(f"/v1/matches/{active['match_id']}", headers=w.as_person(settings, party))).json()
        assert seen["end_reason_category"] == "planned_end_reached", f"{party} is told the program's end ended it"
    (end_event,) = await outbox_payloads(db, ENDED)
    assert (end_event["reason_category"], end_event["ended_by"], end_event["rematch_offered"]) == (
        "planned_end_reached",
        "system",
        False,
    ), "the program is over: nobody is offered a new match in it"
    assert [(d["reason"], d["declined_by"]) for d in await outbox_payloads(db, DECLINED)] == [("expired", "system")]
    assert await sweep_finished_programs(session_factory(db), clock, batch_size=10) == 0, "each closes once"


async def test_a_program_still_running_keeps_its_matches_when_another_ends(
    client, settings: MatchingSettings, feed: Feeder, clock: MovableClock, db: AsyncEngine
) -> None:
    running = World()
    await feed(running.program().model_copy(update={"ends_on": datetime(2027, 6, 30).date()}))
    await feed(*running.mentee("amara"), *running.mentor("lukas"))
    match = await request(client, settings, running, "amara", "lukas")
    await client.post(f"/v1/matches/{match['match_id']}/accept", headers=running.as_person(settings, "lukas"))
    clock.set(DAY_AFTER)
    assert await sweep_finished_programs(session_factory(db), clock, batch_size=10) == 0
    seen = (await client.get(f"/v1/matches/{match['match_id']}", headers=running.as_coordinator(settings))).json()
    assert seen["state"] == "active"


async def test_nothing_new_starts_in_a_program_after_its_last_day_and_the_409_says_when_it_ended(
    client, settings: MatchingSettings, feed: Feeder, clock: MovableClock
) -> None:
    w = await seeded(feed)
    coordinator = w.as_coordinator(settings)
    waiting_round = (await client.post(f"/v1/programs/{w.program_id}/rounds", headers=coordinator)).json()
    clock.set(DAY_AFTER)
    attempts = {
        "request": await client.post(
            f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests",
            json={"mentor_person_id": str(w.id("lukas"))},
            headers=w.as_person(settings, "amara"),
        ),
        "coordinator match": await client.post(
            "/v1/matches",
            json={
                "program_id": str(w.program_id),
                "mentee_person_id": str(w.id("bea")),
                "mentor_person_id": str(w.id("nora")),
            },
            headers=coordinator,
        ),
        "round": await client.post(f"/v1/programs/{w.program_id}/rounds", headers=coordinator),
        "approval": await client.post(f"/v1/rounds/{waiting_round['round_id']}/approve", json={}, headers=coordinator),
    }
    for what, response in attempts.items():
        assert response.status_code == 409, (what, response.text)
        assert "ended on 2026-06-30" in response.json()["detail"]["error_description"], what


async def test_a_closed_or_archived_program_takes_no_new_round_naming_its_status(
    client, settings: MatchingSettings, feed: Feeder
) -> None:
    w = await seeded(feed)
    for version, status in ((2, ProgramStatus.CLOSED), (3, ProgramStatus.ARCHIVED)):
        await feed(w.program(version=version).model_copy(update={"status": status}))
        response = await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
        assert response.status_code == 409, response.text
        assert f"program is {status.value}" in response.json()["detail"]["error_description"]


async def test_a_round_awaiting_approval_when_the_program_ends_expires_and_approving_it_is_a_409_saying_so(
    client, settings: MatchingSettings, feed: Feeder, clock: MovableClock, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    coordinator = w.as_coordinator(settings)
    waiting_round = (await client.post(f"/v1/programs/{w.program_id}/rounds", headers=coordinator)).json()
    assert waiting_round["status"] == "pending_approval"
    assert waiting_round["proposals"]

    clock.set(DAY_AFTER)
    await sweep_finished_programs(session_factory(db), clock, batch_size=1)

    seen = (await client.get(f"/v1/rounds/{waiting_round['round_id']}", headers=coordinator)).json()
    assert seen["status"] == "expired"
    assert {p["state"] for p in seen["proposals"]} == {"expired"}
    approval = await client.post(f"/v1/rounds/{waiting_round['round_id']}/approve", json={}, headers=coordinator)
    assert approval.status_code == 409, approval.text
    assert "this round expired" in approval.json()["detail"]["error_description"]


async def test_closing_a_program_lapses_its_open_proposals_at_once_and_active_matches_run_on_until_archived(
    client, settings: MatchingSettings, feed: Feeder, clock: MovableClock, db: AsyncEngine
) -> None:
    w = await seeded(feed)
    await feed(*w.mentee("cleo"))
    coordinator = w.as_coordinator(settings)
    active = await request(client, settings, w, "amara", "lukas")
    await client.post(f"/v1/matches/{active['match_id']}/accept", headers=w.as_person(settings, "lukas"))
    sent = await request(client, settings, w, "bea", "nora")
    waiting_round = (await client.post(f"/v1/programs/{w.program_id}/rounds", headers=coordinator)).json()
    assert [p["state"] for p in waiting_round["proposals"]] == ["pending_approval"], "cleo's"

    await feed(w.program(version=2).model_copy(update={"status": ProgramStatus.CLOSED}), at=clock.now())

    lapsed = (await client.get(f"/v1/matches/{sent['match_id']}", headers=coordinator)).json()
    assert (lapsed["state"], lapsed["decline_reason"], lapsed["closed_by"]) == ("expired", "expired", "system")
    accepting = await client.post(f"/v1/matches/{sent['match_id']}/accept", headers=w.as_person(settings, "nora"))
    assert accepting.status_code == 409, "nobody accepts into a closed program"
    assert [(d["reason"], d["declined_by"]) for d in await outbox_payloads(db, DECLINED)] == [("expired", "system")]
    seen_round = (await client.get(f"/v1/rounds/{waiting_round['round_id']}", headers=coordinator)).json()
    assert (seen_round["status"], [p["state"] for p in seen_round["proposals"]]) == ("expired", ["expired"])
    running = (await client.get(f"/v1/matches/{active['match_id']}", headers=coordinator)).json()
    assert running["state"] == "active", "a closed program's matches run to its last day"
    assert await outbox_payloads(db, ENDED) == []

    await sweep_finished_programs(session_factory(db), clock, batch_size=10)
    assert (await client.get(f"/v1/matches/{active['match_id']}", headers=coordinator)).json()["state"] == "active"
    await feed(w.program(version=3).model_copy(update={"status": ProgramStatus.ARCHIVED}), at=clock.now())

    ended = (await client.get(f"/v1/matches/{active['match_id']}", headers=coordinator)).json()
    assert (ended["state"], ended["end_reason_category"], ended["closed_by"]) == (
        "ended",
        "planned_end_reached",
        "system",
    )
    (end_event,) = await outbox_payloads(db, ENDED)
    assert (end_event["reason_category"], end_event["ended_by"], end_event["rematch_offered"]) == (
        "planned_end_reached",
        "system",
        False,
    )
