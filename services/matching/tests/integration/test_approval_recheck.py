"""Approving a round re-checks its proposals against the current projection, and mentor capacity holds under
concurrent requests and approvals (real PostgreSQL, separate transactions racing)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.application.program_data import lock_enrolments
from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import START, Feeder, World, outbox_payloads, rows
from shared.db import session_factory
from shared.events import samples

PROPOSED = "org.mentorloom.match.proposed.v1"
ROUND_COMPLETED = "org.mentorloom.match-round.completed.v1"


async def run_round(client: httpx.AsyncClient, settings: MatchingSettings, w: World) -> dict[str, Any]:
    response = await client.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(settings))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def approve(client: httpx.AsyncClient, settings: MatchingSettings, w: World, round_id: str) -> httpx.Response:
    return await client.post(f"/v1/rounds/{round_id}/approve", json={}, headers=w.as_coordinator(settings))


async def open_per_mentor(db: AsyncEngine, w: World, *states: str) -> dict[uuid.UUID, int]:
    found = await rows(
        db,
        "SELECT mentor_person_id, count(*) FROM matches WHERE program_id = :p AND state = ANY(:s) "
        "GROUP BY mentor_person_id",
        p=w.program_id,
        s=list(states),
    )
    return {r[0]: int(r[1]) for r in found}


async def test_approval_sends_only_the_proposals_that_still_pass_and_reports_the_skipped_ones_with_reasons(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program())
    for name in ("amara", "bea", "chen", "dana"):
        await feed(*w.mentee(name))
    for name in ("lukas", "nora", "omar", "quinn"):
        await feed(*w.mentor(name, capacity=1))
    body = await run_round(client, settings, w)
    names = {v: k for k, v in w.people.items()}
    pairs = {
        p["match_id"]: (names[uuid.UUID(p["mentee_person_id"])], names[uuid.UUID(p["mentor_person_id"])])
        for p in body["proposals"]
    }
    assert len(pairs) == 4
    (blocked, paused, erased, kept) = sorted(pairs, key=lambda m: pairs[m][0])
    # Between the solve and the approval: a mentor blocks their mentee, a mentee pauses, a mentee is erased.
    mentee_of, mentor_of = pairs[blocked]
    await feed(w.person(mentor_of, level=3, version=2, blocked_person_ids=(w.id(mentee_of),)))
    await feed(w.enrol(pairs[paused][0], "mentee", version=2, status="paused"))
    await feed(samples.profile_erased(tenant_id=w.tenant, person_id=w.id(pairs[erased][0]), version=2, erased_at=START))

    approved = await approve(client, settings, w, body["round_id"])

    assert approved.status_code == 200, approved.text
    result = approved.json()
    states = {p["match_id"]: p["state"] for p in result["proposals"]}
    assert states == {blocked: "declined", paused: "declined", erased: "declined", kept: "proposed"}
    approval = result["report"]["approval"]
    reasons = {s["match_id"]: s["reasons"] for s in approval["skipped"]}
    assert reasons == {
        blocked: ["blocked_by_mentor"],
        paused: ["mentee_not_active"],
        erased: ["participant_erased"],
    }
    assert (approval["sent_count"], approval["skipped_count"]) == (1, 3)
    fetched = await client.get(f"/v1/rounds/{body['round_id']}", headers=w.as_coordinator(settings))
    assert fetched.json()["report"]["approval"] == approval
    sent = [p["match_id"] for p in await outbox_payloads(db, PROPOSED) if p["round_id"] == body["round_id"]]
    assert sent == [kept]
    (completed,) = await outbox_payloads(db, ROUND_COMPLETED)
    assert (completed["proposal_count"], completed["unmatched_count"]) == (1, 3)
    assert sum(b["count"] for b in completed["distribution"]) == 1
    assert {r["reason"]: r["count"] for r in completed["unmatched_reasons"]} == {
        "blocked_or_excluded": 2,
        "no_eligible_mentor": 1,
    }


async def test_a_mentor_whose_capacity_dropped_since_the_solve_is_sent_only_the_best_proposals_that_fit(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program())
    await feed(*w.mentee("amara", interests=("glass",)))
    await feed(*w.mentee("bea"))
    await feed(*w.mentor("quinn", capacity=2, interests=("glass",)))
    body = await run_round(client, settings, w)
    assert len(body["proposals"]) == 2
    best = max(body["proposals"], key=lambda p: p["score"])
    await feed(w.enrol("quinn", "mentor", capacity=1, version=2))

    approved = (await approve(client, settings, w, body["round_id"])).json()

    states = {p["match_id"]: p["state"] for p in approved["proposals"]}
    assert states[best["match_id"]] == "proposed"
    (skipped,) = approved["report"]["approval"]["skipped"]
    assert skipped["mentee_person_id"] == str(w.id("bea"))
    assert skipped["reasons"] == ["mentor_has_no_free_slot"]
    assert await open_per_mentor(db, w, "proposed", "active") == {w.id("quinn"): 1}


async def test_concurrent_requests_for_the_same_mentors_never_exceed_their_capacity(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program())
    mentors = [f"mentor{i}" for i in range(4)]
    for name in mentors:
        await feed(*w.mentor(name, capacity=1))
    mentees = [f"mentee{i}" for i in range(12)]
    for name in mentees:
        await feed(*w.mentee(name))

    async def request(mentee: str, mentor: str) -> int:
        response = await client.post(
            f"/v1/programs/{w.program_id}/mentees/{w.id(mentee)}/requests",
            json={"mentor_person_id": str(w.id(mentor))},
            headers=w.as_person(settings, mentee),
        )
        assert response.status_code in (201, 409), response.text
        return response.status_code

    # Three mentees race for each mentor's single slot, each request in its own transaction.
    codes = await asyncio.gather(*(request(mentee, mentors[i % 4]) for i, mentee in enumerate(mentees)))

    assert sorted(codes).count(201) == 4
    assert await open_per_mentor(db, w, "pending_approval", "proposed", "active") == {w.id(m): 1 for m in mentors}


async def test_two_rounds_approved_at_once_never_send_a_mentor_more_than_their_capacity(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program())
    mentors = [f"mentor{i}" for i in range(3)]
    for name in mentors:
        await feed(*w.mentor(name, capacity=1))
    for name in ("amara", "bea", "chen"):
        await feed(*w.mentee(name))
    first = await run_round(client, settings, w)
    # More capacity for a while lets a second round propose the same mentors to other mentees; then it drops back.
    for name in mentors:
        await feed(w.enrol(name, "mentor", capacity=2, version=2))
    for name in ("dana", "emil", "fay"):
        await feed(*w.mentee(name))
    second = await run_round(client, settings, w)
    assert len(first["proposals"]) == len(second["proposals"]) == 3
    for name in mentors:
        await feed(w.enrol(name, "mentor", capacity=1, version=3))

    results = await asyncio.gather(
        approve(client, settings, w, first["round_id"]), approve(client, settings, w, second["round_id"])
    )

    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assert await open_per_mentor(db, w, "proposed", "active") == {w.id(m): 1 for m in mentors}
    sent = sum(r.json()["report"]["approval"]["sent_count"] for r in results)
    skipped = [s["reasons"] for r in results for s in r.json()["report"]["approval"]["skipped"]]
    assert sent == 3
    assert skipped == [["mentor_has_no_free_slot"]] * 3
    assert len(await outbox_payloads(db, PROPOSED)) == 3


async def _request(
    client: httpx.AsyncClient, settings: MatchingSettings, w: World, mentee: str, mentor: str
) -> httpx.Response:
    response = await client.post(
        f"/v1/programs/{w.program_id}/mentees/{w.id(mentee)}/requests",
        json={"mentor_person_id": str(w.id(mentor))},
        headers=w.as_person(settings, mentee),
    )
    assert response.status_code in (201, 409), response.text
    return response


async def test_a_mentees_concurrent_requests_never_exceed_their_open_request_limit(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program(max_open_requests_per_mentee=1))
    mentors = [f"mentor{i}" for i in range(4)]
    for name in mentors:
        await feed(*w.mentor(name, capacity=3))
    await feed(*w.mentee("amara"))

    # One mentee asks four mentors at once, each request in its own transaction.
    responses = await asyncio.gather(*(_request(client, settings, w, "amara", mentor) for mentor in mentors))

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert sum((await open_per_mentor(db, w, "proposed", "pending_approval", "active")).values()) == 1


async def test_two_mentors_accepting_one_mentees_requests_at_once_leave_the_mentee_one_mentor(
    client: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder, db: AsyncEngine
) -> None:
    w = World()
    await feed(w.program(max_open_requests_per_mentee=2))  # one mentor per mentee, the default
    for name in ("lukas", "nora"):
        await feed(*w.mentor(name, capacity=2))
    await feed(*w.mentee("amara"))
    requested = [await _request(client, settings, w, "amara", mentor) for mentor in ("lukas", "nora")]
    assert [r.status_code for r in requested] == [201, 201]

    async def accept(mentor: str, match_id: str) -> httpx.Response:
        return await client.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(settings, mentor))

    results = await asyncio.gather(
        accept("lukas", requested[0].json()["match_id"]), accept("nora", requested[1].json()["match_id"])
    )

    # The second acceptance waits for the first; by then its proposal was superseded by the first activation.
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    states = await rows(db, "SELECT state FROM matches WHERE program_id = :p ORDER BY state", p=w.program_id)
    assert [s[0] for s in states] == ["active", "declined"]


async def test_approving_a_round_of_more_people_than_one_statement_takes_still_locks_their_enrolments(
    feed: Feeder, db: AsyncEngine
) -> None:
    # A cohort round of tens of thousands of pairs locks both people of each: past asyncpg's 32,767 arguments of
    # one SELECT ... IN (...) FOR UPDATE. Made-up ids stand in for most of them.
    w = World()
    await feed(w.program(), *w.mentor("lukas"))
    many = [uuid.uuid4() for _ in range(40_000)] + [w.id("lukas")]

    async with session_factory(db)() as session, session.begin():
        await lock_enrolments(session, w.tenant, w.program_id, many)
        async with db.connect() as other:
            with pytest.raises(DBAPIError, match="could not obtain lock"):
                await other.execute(
                    text("SELECT 1 FROM enrolments WHERE person_id = :p FOR UPDATE NOWAIT"), {"p": w.id("lukas")}
                )
