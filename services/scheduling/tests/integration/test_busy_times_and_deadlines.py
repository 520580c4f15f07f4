"""Meetings already set count: suggested slots avoid them, and a cancelled or moved meeting gives a check-in back its
own deadline. A mentee in Berlin and a mentor in New York, across the weeks both cities change their clocks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduling.application import meetings as meeting_cases
from services.scheduling.application.access import OVERLAPS_SHOWN, OverlappingMeetingError
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, token
from services.scheduling.tests.integration.scenario import Scenario
from shared.auth import Principal, Role
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events.values import MeetingFormat

pytestmark = pytest.mark.integration

BERLIN_EVENINGS = [(d, time(17), time(19)) for d in ("monday", "tuesday")]
NEW_YORK_MORNINGS = [(d, time(9), time(13)) for d in ("monday", "tuesday")]
GRACE = timedelta(days=7)  # Scenario.program's missed_grace_days


@pytest.fixture
async def berlin_and_new_york(feed: Feeder, clock: MovableClock) -> tuple[Scenario, Any, Any]:
    """The pair's match, and a second match of the same mentor with someone else."""
    s = Scenario()
    mentee, mentor, other_mentee = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    clock.set(datetime(2027, 3, 1, tzinfo=UTC))
    match = s.match(datetime(2027, 3, 1, tzinfo=UTC), mentee=mentee, mentor=mentor)
    other = s.match(datetime(2027, 3, 1, tzinfo=UTC), mentee=other_mentee, mentor=mentor)
    await feed(
        s.person(mentee, "Europe/Berlin", BERLIN_EVENINGS),
        s.person(mentor, "America/New_York", NEW_YORK_MORNINGS),
        s.person(other_mentee, "America/New_York", NEW_YORK_MORNINGS),
        s.program(starts_on=datetime(2027, 3, 1).date(), ends_on=datetime(2027, 12, 31).date()),
        match,
        other,
    )
    return s, match, other


def _tokens(settings: SchedulingSettings, s: Scenario, match: Any, other: Any) -> tuple[dict[str, str], ...]:
    """Bearer headers of the pair's mentee, its mentor, and the mentor's other mentee."""
    people = (match.mentee_person_id, match.mentor_person_id, other.mentee_person_id)
    return tuple(token(settings, s.tenant_id, person=p) for p in people)


def hour(day: int, at: int) -> datetime:
    return datetime(2027, 3, day, at, tzinfo=UTC)


def _hour_from(start: datetime) -> dict[str, str]:
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}


async def _propose(
    client: httpx.AsyncClient, match_id: uuid.UUID, headers: dict[str, str], start: datetime, **extra: Any
) -> httpx.Response:
    return await client.post(f"/v1/matches/{match_id}/meetings", json={**_hour_from(start), **extra}, headers=headers)


async def _meeting(
    client: httpx.AsyncClient, match_id: uuid.UUID, headers: dict[str, str], start: datetime, **extra: Any
) -> dict[str, Any]:
    response = await _propose(client, match_id, headers, start, **extra)
    assert response.status_code == 201, response.text
    meeting: dict[str, Any] = response.json()
    return meeting


async def test_suggested_slots_leave_out_the_times_either_person_already_has_a_meeting(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, other_mentee = _tokens(settings, s, match, other)

    async def slots() -> list[datetime]:
        response = await client.get(
            f"/v1/matches/{match.match_id}/slots",
            params={"start": "2027-03-08T00:00:00Z", "days": 22, "limit": 20},
            headers=mentee,
        )
        assert response.status_code == 200, response.text
        return [datetime.fromisoformat(x["starts_at"]) for x in response.json()["slots"]]

    # Berlin's 17:00-19:00 is 16:00-18:00 UTC, New York's 09:00-13:00 is 14:00-18:00 UTC; from 14 March New York
    # is on summer time (13:00-17:00 UTC), from 28 March Berlin too (15:00-17:00 UTC).
    free = await slots()
    assert free == [
        *(hour(8, 16), hour(8, 17), hour(9, 16), hour(9, 17)),
        *(hour(15, 16), hour(16, 16), hour(22, 16), hour(23, 16)),
        *(hour(29, 15), hour(29, 16)),
    ]

    await _meeting(client, match.match_id, mentee, hour(9, 16))  # proposed, not accepted yet: still taken
    elsewhere = await _meeting(client, other.match_id, other_mentee, hour(16, 16))
    await client.post(f"/v1/meetings/{elsewhere['meeting_id']}/accept", headers=mentor)
    await _meeting(client, other.match_id, other_mentee, hour(8, 16) + timedelta(minutes=30))  # overlaps both
    dropped = await _meeting(client, match.match_id, mentor, hour(22, 16))
    await client.post(f"/v1/meetings/{dropped['meeting_id']}/cancel", headers=mentee)

    taken = (hour(8, 16), hour(8, 17), hour(9, 16), hour(16, 16))
    assert await slots() == [x for x in free if x not in taken], "a cancelled meeting frees its time again"


def _refused(response: httpx.Response) -> tuple[str, str]:
    """The error code and description of a 409."""
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    return detail["error"], detail["error_description"]


def _conflict(response: httpx.Response) -> dict[str, Any]:
    """The meeting in the way, as data: ``detail.conflict`` of a 409 meeting_overlap."""
    assert response.status_code == 409, response.text
    conflict: dict[str, Any] = response.json()["detail"]["conflict"]
    return conflict


async def _move(client: httpx.AsyncClient, meeting_id: str, headers: dict[str, str], start: datetime) -> Any:
    return await client.post(f"/v1/meetings/{meeting_id}/reschedule", json=_hour_from(start), headers=headers)


async def test_a_proposal_or_move_into_a_time_the_pair_already_has_an_open_meeting_is_a_409_naming_that_meeting(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, _ = _tokens(settings, s, match, other)
    first = await _meeting(client, match.match_id, mentee, hour(9, 16))
    half_past = hour(9, 16) + timedelta(minutes=30)

    refused = await _propose(client, match.match_id, mentor, half_past)
    error, description = _refused(refused)
    assert error == "meeting_overlap", "a proposed meeting holds its time"
    assert first["meeting_id"] in description, description
    assert "from 2027-03-09T16:00:00+00:00 to 2027-03-09T17:00:00+00:00" in description, description
    assert _conflict(refused) == {
        "meeting_id": first["meeting_id"],
        "starts_at": "2027-03-09T16:00:00Z",
        "ends_at": "2027-03-09T17:00:00Z",
    }, "and names it as data too"

    await client.post(f"/v1/meetings/{first['meeting_id']}/accept", headers=mentor)
    assert (await _propose(client, match.match_id, mentee, half_past)).status_code == 409, "an accepted one too"

    second = await _meeting(client, match.match_id, mentor, hour(9, 17))  # back to back: no overlap
    refused = await _move(client, second["meeting_id"], mentee, half_past)
    error, description = _refused(refused)
    assert error == "meeting_overlap"
    assert first["meeting_id"] in description, description
    assert _conflict(refused)["meeting_id"] == first["meeting_id"]
    moved = await _move(client, second["meeting_id"], mentee, hour(9, 17) + timedelta(minutes=30))
    assert moved.status_code == 200, "a meeting moved by less than its length does not collide with itself"

    await client.post(f"/v1/meetings/{first['meeting_id']}/cancel", headers=mentor)
    assert (await _propose(client, match.match_id, mentee, hour(9, 16))).status_code == 201, "cancelling frees it"


async def test_a_proposal_into_a_time_either_person_has_a_meeting_in_another_match_is_a_409(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, other_mentee = _tokens(settings, s, match, other)
    elsewhere = await _meeting(client, other.match_id, other_mentee, hour(16, 16))

    refused = await _propose(client, match.match_id, mentee, hour(16, 16))
    error, description = _refused(refused)
    assert error == "meeting_overlap", "the mentor is busy with another mentee"
    assert "2027-03-16T16:00:00+00:00" in description, description
    assert elsewhere["meeting_id"] not in description, "the id of a meeting the caller may not see is not given"
    assert _conflict(refused) == {
        "meeting_id": None,
        "starts_at": "2027-03-16T16:00:00Z",
        "ends_at": "2027-03-16T17:00:00Z",
    }, "neither in the data"

    refused = await _propose(client, match.match_id, mentor, hour(16, 16))
    error, description = _refused(refused)
    assert error == "meeting_overlap"
    assert elsewhere["meeting_id"] in description, "the mentor is told which of their own meetings it is"
    assert _conflict(refused)["meeting_id"] == elsewhere["meeting_id"]

    mine = await _meeting(client, match.match_id, mentee, hour(15, 16))
    assert (await _move(client, mine["meeting_id"], mentor, hour(16, 16))).status_code == 409


async def test_a_cancelled_meeting_or_one_moved_before_the_due_time_gives_the_check_in_back_its_own_deadline(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings
) -> None:
    s, match, _ = berlin_and_new_york
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)

    async def check_in(check_in_id: str) -> dict[str, Any]:
        listed = await client.get(f"/v1/matches/{match.match_id}/check-ins", headers=mentee)
        found: list[dict[str, Any]] = [c for c in listed.json()["items"] if c["check_in_id"] == check_in_id]
        assert len(found) == 1, listed.text
        return found[0]

    late = await _meeting(client, match.match_id, mentee, hour(29, 15))
    first = await check_in(late["check_in_id"])
    due = datetime.fromisoformat(first["due_at"])
    assert due < hour(29, 15)
    assert datetime.fromisoformat(first["missed_after"]) == hour(29, 15) + GRACE, "a later meeting defers it"

    cancelled = await client.post(f"/v1/meetings/{late['meeting_id']}/cancel", headers=mentor)
    assert cancelled.json()["state"] == "cancelled"
    after_cancel = await check_in(late["check_in_id"])
    assert (after_cancel["deferred_until"], datetime.fromisoformat(after_cancel["missed_after"])) == (None, due + GRACE)

    again = await _meeting(client, match.match_id, mentee, hour(29, 15), check_in_id=late["check_in_id"])
    assert datetime.fromisoformat((await check_in(again["check_in_id"]))["missed_after"]) == hour(29, 15) + GRACE
    early = due - timedelta(days=2)
    moved = await client.post(
        f"/v1/meetings/{again['meeting_id']}/reschedule",
        json={"starts_at": early.isoformat(), "ends_at": (early + timedelta(hours=1)).isoformat()},
        headers=mentor,
    )
    assert moved.status_code == 200, moved.text
    after_move = await check_in(again["check_in_id"])
    assert (after_move["deferred_until"], datetime.fromisoformat(after_move["missed_after"])) == (None, due + GRACE)


async def test_a_second_booking_of_a_person_waits_until_the_first_commits_and_then_sees_it(
    berlin_and_new_york, db: AsyncEngine, clock: MovableClock
) -> None:
    """Two transactions booking the mentor at the same time from two matches: without the per-person lock both
    pass the overlap check before either commits."""
    s, match, other = berlin_and_new_york
    sessions = session_factory(db)

    async def book(session: Any, match_: Any, person: uuid.UUID) -> Any:
        caller = Principal(
            subject=str(person),
            tenant=s.tenant_id,
            roles=frozenset({Role.PARTICIPANT}),
            person_id=person,
            expires_at=clock.now() + timedelta(hours=1),
        )
        return await meeting_cases.propose(
            session,
            caller,
            match_.match_id,
            starts_at=hour(16, 16),
            ends_at=hour(16, 17),
            meeting_format=MeetingFormat.VIRTUAL,
            check_in_id=None,
            now=clock.now(),
        )

    async with sessions() as first, first.begin():
        await book(first, other, other.mentee_person_id)  # not committed yet
        async with sessions() as second, second.begin():
            # Bounds the wait, so that waiting shows as an error instead of a hang.
            await second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await book(second, match, match.mentee_person_id)
    async with sessions() as third, third.begin():
        with pytest.raises(OverlappingMeetingError):
            await book(third, match, match.mentee_person_id)


async def _stored_overlapping(db: AsyncEngine, meeting: dict[str, Any], start: datetime) -> None:
    """Move a meeting in the database itself, as overlaps were stored before the overlap check existed."""
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE meetings SET starts_at = :starts_at, ends_at = :ends_at WHERE meeting_id = :meeting_id"),
            {"starts_at": start, "ends_at": start + timedelta(hours=1), "meeting_id": meeting["meeting_id"]},
        )


async def test_accepting_a_proposal_that_overlaps_an_accepted_meeting_of_either_person_is_a_409(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings, db: AsyncEngine
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, other_mentee = _tokens(settings, s, match, other)
    # The mentor holds two overlapping proposals from two mentees, and two in the pair's own match.
    ours = await _meeting(client, match.match_id, mentee, hour(16, 16))
    theirs = await _meeting(client, other.match_id, other_mentee, hour(15, 16))
    await _stored_overlapping(db, theirs, hour(16, 16) + timedelta(minutes=30))
    first = await _meeting(client, match.match_id, mentee, hour(22, 16))
    second = await _meeting(client, match.match_id, mentee, hour(23, 16))
    await _stored_overlapping(db, second, hour(22, 16))

    accepted = await client.post(f"/v1/meetings/{ours['meeting_id']}/accept", headers=mentor)
    assert accepted.status_code == 200, "a proposal overlapping only another proposal can be accepted"
    refused = await client.post(f"/v1/meetings/{theirs['meeting_id']}/accept", headers=mentor)
    error, description = _refused(refused)
    assert error == "meeting_overlap", "the mentor's meeting in another match is accepted already"
    assert ours["meeting_id"] in description, description
    assert _conflict(refused) == {k: ours[k] for k in ("meeting_id", "starts_at", "ends_at")}

    assert (await client.post(f"/v1/meetings/{first['meeting_id']}/accept", headers=mentor)).status_code == 200
    error, description = _refused(await client.post(f"/v1/meetings/{second['meeting_id']}/accept", headers=mentor))
    assert error == "meeting_overlap", "the pair's own meeting at that time is accepted already"
    assert first["meeting_id"] in description, description
    still = await client.get(f"/v1/meetings/{second['meeting_id']}", headers=mentor)
    assert still.json()["state"] == "proposed"

    await client.post(f"/v1/meetings/{first['meeting_id']}/cancel", headers=mentee)
    again = await client.post(f"/v1/meetings/{second['meeting_id']}/accept", headers=mentor)
    assert again.status_code == 200, "once the accepted one is cancelled the time is free"


async def test_two_concurrent_accepts_of_overlapping_proposals_let_only_one_through(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings, db: AsyncEngine, clock: MovableClock
) -> None:
    """The mentor accepts two overlapping proposals of two mentees at once: without the per-person lock both
    accepts pass the overlap check before either commits."""
    s, match, other = berlin_and_new_york
    mentee, mentor, other_mentee = _tokens(settings, s, match, other)
    ours = await _meeting(client, match.match_id, mentee, hour(16, 16))
    theirs = await _meeting(client, other.match_id, other_mentee, hour(15, 16))
    await _stored_overlapping(db, theirs, hour(16, 16))
    caller = Principal(
        subject=str(match.mentor_person_id),
        tenant=s.tenant_id,
        roles=frozenset({Role.PARTICIPANT}),
        person_id=match.mentor_person_id,
        expires_at=clock.now() + timedelta(hours=1),
    )
    sessions = session_factory(db)

    async with sessions() as first, first.begin():
        await meeting_cases.accept(first, caller, uuid.UUID(ours["meeting_id"]), clock.now())  # not committed yet
        async with sessions() as second, second.begin():
            # Bounds the wait, so that waiting shows as an error instead of a hang.
            await second.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await meeting_cases.accept(second, caller, uuid.UUID(theirs["meeting_id"]), clock.now())
    async with sessions() as third, third.begin():
        with pytest.raises(OverlappingMeetingError):
            await meeting_cases.accept(third, caller, uuid.UUID(theirs["meeting_id"]), clock.now())

    # And through the API, both at once: one is accepted, the other refused.
    await client.post(f"/v1/meetings/{ours['meeting_id']}/cancel", headers=mentor)
    late = await _meeting(client, match.match_id, mentee, hour(23, 16))
    early = await _meeting(client, other.match_id, other_mentee, hour(22, 16))
    await _stored_overlapping(db, late, hour(22, 16))
    answers = await asyncio.gather(
        *(client.post(f"/v1/meetings/{m['meeting_id']}/accept", headers=mentor) for m in (late, early))
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]


async def _double_booking(
    client: httpx.AsyncClient, db: AsyncEngine, settings: SchedulingSettings, berlin_and_new_york: Any
) -> tuple[dict[str, Any], ...]:
    """The mentor double-booked on 16 March (ours with the pair's mentee, theirs with the other mentee, stored
    overlapping), a cancelled meeting stored at the same time, and a meeting overlapping nothing."""
    s, match, other = berlin_and_new_york
    mentee, mentor, other_mentee = _tokens(settings, s, match, other)
    ours = await _meeting(client, match.match_id, mentee, hour(16, 16))
    theirs = await _meeting(client, other.match_id, other_mentee, hour(15, 16))
    await _stored_overlapping(db, theirs, hour(16, 16) + timedelta(minutes=30))
    dropped = await _meeting(client, match.match_id, mentee, hour(9, 16))
    await _stored_overlapping(db, dropped, hour(16, 16))
    await client.post(f"/v1/meetings/{dropped['meeting_id']}/cancel", headers=mentor)
    alone = await _meeting(client, match.match_id, mentee, hour(23, 16))
    return ours, theirs, dropped, alone


async def test_each_listed_meeting_names_the_open_meetings_of_either_person_that_overlap_it(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings, db: AsyncEngine
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, _ = _tokens(settings, s, match, other)
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    ours, theirs, dropped, alone = await _double_booking(client, db, settings, berlin_and_new_york)

    async def overlaps(url: str, headers: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        return {m["meeting_id"]: m["overlaps_with"] for m in response.json()["items"]}

    def named(meeting: dict[str, Any], meeting_id: str | None) -> dict[str, Any]:
        return {"meeting_id": meeting_id, "starts_at": meeting["starts_at"], "ends_at": meeting["ends_at"]}

    theirs = (await client.get(f"/v1/meetings/{theirs['meeting_id']}", headers=mentor)).json()
    assert await overlaps("/v1/me/meetings", mentor) == {
        ours["meeting_id"]: [named(theirs, theirs["meeting_id"])],
        theirs["meeting_id"]: [named(ours, ours["meeting_id"])],
        dropped["meeting_id"]: [],  # cancelled: it holds no time, and nothing overlaps it
        alone["meeting_id"]: [],
    }, "the mentor sees both of their meetings and which is in the way of which"
    mine = await overlaps("/v1/me/meetings", mentee)
    assert mine[ours["meeting_id"]] == [named(theirs, None)], "the mentee sees the mentor's other meeting's time only"
    read = await client.get(f"/v1/meetings/{ours['meeting_id']}", headers=mentee)
    assert read.json()["overlaps_with"] == [named(theirs, None)]
    coordinated = await overlaps(f"/v1/matches/{match.match_id}/meetings", coordinator)
    assert coordinated[ours["meeting_id"]] == [named(theirs, theirs["meeting_id"])], "a coordinator of both matches"

    await client.post(f"/v1/meetings/{theirs['meeting_id']}/cancel", headers=mentor)
    assert (await overlaps("/v1/me/meetings", mentee))[ours["meeting_id"]] == []


async def test_a_meeting_double_booked_many_times_names_its_first_overlaps_earliest_first_and_says_how_many(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings, db: AsyncEngine
) -> None:
    s, match, other = berlin_and_new_york
    mentee, mentor, _ = _tokens(settings, s, match, other)
    ours = await _meeting(client, match.match_id, mentee, hour(16, 16))
    stored_later_first = []
    for n in range(OVERLAPS_SHOWN + 2, 0, -1):  # 12 more meetings, each stored overlapping ours
        meeting = await _meeting(client, match.match_id, mentee, hour(n, 8))
        await _stored_overlapping(db, meeting, hour(16, 15) + timedelta(minutes=n))
        stored_later_first.append(meeting["meeting_id"])

    for url in ("/v1/me/meetings", f"/v1/meetings/{ours['meeting_id']}"):
        response = await client.get(url, headers=mentor)
        assert response.status_code == 200, response.text
        body = response.json()
        (read,) = [m for m in body["items"] if m["meeting_id"] == ours["meeting_id"]] if "items" in body else [body]
        assert [o["meeting_id"] for o in read["overlaps_with"]] == stored_later_first[::-1][:OVERLAPS_SHOWN], url
        assert read["overlaps_total"] == OVERLAPS_SHOWN + 2, url


async def test_a_coordinator_lists_the_double_booked_meetings_of_their_program(
    client: httpx.AsyncClient, berlin_and_new_york, settings: SchedulingSettings, db: AsyncEngine
) -> None:
    s, _, _ = berlin_and_new_york
    mentor = token(settings, s.tenant_id, person=berlin_and_new_york[1].mentor_person_id)
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    url = f"/v1/programs/{s.program_id}/meeting-overlaps"
    ours, theirs, _, _ = await _double_booking(client, db, settings, berlin_and_new_york)

    listed = await client.get(url, headers=coordinator)
    assert listed.status_code == 200, listed.text
    assert [(m["meeting_id"], [o["meeting_id"] for o in m["overlaps_with"]]) for m in listed.json()["items"]] == [
        (ours["meeting_id"], [theirs["meeting_id"]]),
        (theirs["meeting_id"], [ours["meeting_id"]]),
    ], "each double-booked open meeting once, earliest first, with what it overlaps"
    first_page = await client.get(url, params={"limit": 1}, headers=coordinator)
    assert [m["meeting_id"] for m in first_page.json()["items"]] == [ours["meeting_id"]]
    assert first_page.json()["next_offset"] == 1

    other_coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[uuid.uuid4()])
    for outsider in (other_coordinator, mentor):
        assert (await client.get(url, headers=outsider)).status_code == 404

    await client.post(f"/v1/meetings/{theirs['meeting_id']}/cancel", headers=mentor)
    assert (await client.get(url, headers=coordinator)).json() == {"items": [], "next_offset": None}
