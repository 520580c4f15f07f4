"""The HTTP API against real PostgreSQL and Redis: DST-correct slots, meeting lifecycle, calendars, access rules."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import text
from structlog.testing import capture_logs

from services.scheduling.application.sweeper import sweep
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, outbox_types, scalar, token
from services.scheduling.tests.integration.scenario import Scenario
from shared.auth import Role
from shared.clock import MovableClock
from shared.db import session_factory
from shared.paging import MAX_LIMIT

pytestmark = pytest.mark.integration

SYDNEY, NEW_YORK = ZoneInfo("Australia/Sydney"), ZoneInfo("America/New_York")
SYDNEY_MORNINGS = [(d, time(7), time(10)) for d in ("tuesday", "wednesday", "thursday", "friday", "saturday")]
NEW_YORK_AFTERNOONS = [(d, time(15), time(18)) for d in ("monday", "tuesday", "wednesday", "thursday", "friday")]


@pytest.fixture
async def pair(feed: Feeder, clock: MovableClock) -> tuple[Scenario, object]:
    """A mentee in Sydney and a mentor in New York, matched in a program running through 2026."""
    s = Scenario()
    mentee, mentor = uuid.uuid4(), uuid.uuid4()
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    match = s.match(datetime(2026, 2, 2, tzinfo=UTC), mentee=mentee, mentor=mentor)
    await feed(
        s.person(mentee, "Australia/Sydney", SYDNEY_MORNINGS),
        s.person(mentor, "America/New_York", NEW_YORK_AFTERNOONS),
        s.program(starts_on=datetime(2026, 2, 1).date(), ends_on=datetime(2026, 12, 31).date()),
        match,
    )
    return s, match


def inside(slot_start: datetime, slot_end: datetime, zone: ZoneInfo, windows: list[tuple[str, time, time]]) -> bool:
    local_start, local_end = slot_start.astimezone(zone), slot_end.astimezone(zone)
    day = local_start.strftime("%A").lower()
    return any(
        d == day and s <= local_start.time() and local_end.time() <= e and local_start.date() == local_end.date()
        for d, s, e in windows
    )


async def test_slots_for_sydney_and_new_york_follow_both_dst_switches_of_both_cities(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings
):
    s, match = pair
    headers = token(settings, s.tenant_id, person=match.mentee_person_id)
    # Before any switch; New York on summer time; Sydney on winter time; Sydney back on summer time; New York
    # back on winter time. Each week the first common hour moves in UTC as the offsets between the cities change.
    weeks = {"2026-02-15": 20, "2026-03-15": 20, "2026-04-12": 21, "2026-10-11": 20, "2026-11-08": 20}
    for week, expected_utc_hour in weeks.items():
        response = await client.get(
            f"/v1/matches/{match.match_id}/slots",
            params={"start": f"{week}T00:00:00Z", "days": 7, "duration_minutes": 60, "limit": 4},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        slots = [
            (datetime.fromisoformat(x["starts_at"]), datetime.fromisoformat(x["ends_at"]))
            for x in response.json()["slots"]
        ]
        assert slots, week
        assert slots[0][0].astimezone(UTC).hour == expected_utc_hour, week
        for start, end in slots:
            assert inside(start, end, SYDNEY, SYDNEY_MORNINGS), (week, start)
            assert inside(start, end, NEW_YORK, NEW_YORK_AFTERNOONS), (week, start)


async def test_a_meeting_goes_from_proposal_to_held_and_completes_its_check_in(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock, db
):
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)
    start = datetime(2026, 2, 9, 20, 0, tzinfo=UTC)
    body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}

    proposed = await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee)
    assert proposed.status_code == 201, proposed.text
    meeting = proposed.json()
    assert meeting["check_in_id"] is not None, "linked to the earliest open check-in"
    mid = meeting["meeting_id"]
    assert (await client.post(f"/v1/meetings/{mid}/accept", headers=mentee)).status_code == 403
    accepted = await client.post(f"/v1/meetings/{mid}/accept", headers=mentor)
    assert accepted.json()["state"] == "accepted"

    moved = {
        "starts_at": (start + timedelta(days=1)).isoformat(),
        "ends_at": (start + timedelta(days=1, hours=1)).isoformat(),
    }
    rescheduled = (await client.post(f"/v1/meetings/{mid}/reschedule", json=moved, headers=mentor)).json()
    assert (rescheduled["state"], rescheduled["sequence"]) == ("proposed", 2)  # accepted 1, moved 2
    assert (await client.post(f"/v1/meetings/{mid}/accept", headers=mentee)).status_code == 200
    assert (await client.post(f"/v1/meetings/{mid}/held", headers=mentee)).status_code == 409, "not started yet"

    clock.set(start + timedelta(days=1, hours=2))
    held = await client.post(f"/v1/meetings/{mid}/held", headers=mentor)
    assert held.json()["state"] == "held"
    state = await scalar(db, "SELECT state FROM check_ins WHERE check_in_id = :c", c=uuid.UUID(meeting["check_in_id"]))
    assert state == "completed"
    types = await outbox_types(db)
    assert types.count("org.mentorloom.meeting.scheduled.v1") == 3  # accept, reschedule of accepted, re-accept
    assert types.count("org.mentorloom.meeting.completed.v1") == 1
    assert (await client.post(f"/v1/meetings/{mid}/cancel", headers=mentor)).status_code == 409


async def proposed_by_mentee(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, start: datetime
) -> tuple[dict[str, str], dict[str, str], str]:
    """The pair's tokens (mentee, mentor) and a one-hour meeting at `start` the mentee proposed."""
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)
    body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}
    proposed = await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee)
    assert proposed.status_code == 201, proposed.text
    return mentee, mentor, proposed.json()["meeting_id"]


async def test_two_participants_acting_on_the_same_read_of_a_meeting_cannot_overwrite_each_other(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, db
):
    start = datetime(2026, 2, 9, 20, 0, tzinfo=UTC)
    mentee, mentor, mid = await proposed_by_mentee(client, pair, settings, start)
    read = await client.get(f"/v1/meetings/{mid}", headers=mentor)
    assert (read.headers["ETag"], read.json()["version"]) == ('"1"', 1)

    def moved_by(days: int) -> dict[str, str]:
        return {
            "starts_at": (start + timedelta(days=days)).isoformat(),
            "ends_at": (start + timedelta(days=days, hours=1)).isoformat(),
        }

    # Both send their change at once, naming the version they read: one lands, the other is told to read again.
    by_mentee, by_mentor = await asyncio.gather(
        client.post(f"/v1/meetings/{mid}/reschedule", json=moved_by(1), headers={**mentee, "If-Match": '"1"'}),
        client.post(f"/v1/meetings/{mid}/reschedule", json=moved_by(2), headers={**mentor, "If-Match": '"1"'}),
    )
    assert sorted([by_mentee.status_code, by_mentor.status_code]) == [200, 412]
    winner, loser = (by_mentee, by_mentor) if by_mentee.status_code == 200 else (by_mentor, by_mentee)
    assert winner.headers["ETag"] == '"2"'
    assert loser.json()["detail"]["error"] == "precondition_failed"
    stored = await client.get(f"/v1/meetings/{mid}", headers=mentor)
    assert (stored.json()["starts_at"], stored.json()["version"]) == (winner.json()["starts_at"], 2)

    stale_cancel = await client.post(f"/v1/meetings/{mid}/cancel", headers={**mentee, "If-Match": '"1"'})
    assert stale_cancel.status_code == 412
    assert await scalar(db, "SELECT state FROM meetings WHERE meeting_id = :m", m=uuid.UUID(mid)) == "proposed"
    # Without If-Match a write still goes through (the state machine alone guards it), as it always did.
    cancelled = await client.post(f"/v1/meetings/{mid}/cancel", headers=mentee)
    assert (cancelled.status_code, cancelled.json()["state"], cancelled.headers["ETag"]) == (200, "cancelled", '"3"')


async def test_meeting_ics_and_private_feed_parse_back_with_stable_uid_sequence_and_status(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings
):
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    mentee, mentor, mid = await proposed_by_mentee(client, pair, settings, start)
    await client.post(f"/v1/meetings/{mid}/accept", headers=mentor)

    ics = await client.get(f"/v1/meetings/{mid}/ics", headers=mentee)
    assert ics.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(ics.content)
    event = calendar.walk("VEVENT")[0]
    assert str(event["UID"]) == f"{mid}@mentorloom"
    assert (event.decoded("SEQUENCE"), str(event["STATUS"])) == (1, "CONFIRMED"), "acceptance raises it"
    assert "METHOD" not in calendar, "a download to add to one's own calendar, not an iTIP invitation"
    assert event.decoded("DTSTART") == start
    assert event.decoded("DTSTART").tzinfo is not None
    assert str(event.decoded("DTSTART").tzinfo) == "Australia/Sydney", "in the mentee's own zone, with a VTIMEZONE"
    assert calendar.walk("VTIMEZONE")

    feed_url = (await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]
    feed_path = httpx.URL(feed_url).path
    await client.post(f"/v1/meetings/{mid}/cancel", headers=mentor)
    feed = await client.get(feed_path)  # no bearer token: the URL is the credential
    assert feed.status_code == 200
    feed_event = Calendar.from_ical(feed.content).walk("VEVENT")[0]
    assert (str(feed_event["UID"]), feed_event.decoded("SEQUENCE"), str(feed_event["STATUS"])) == (
        f"{mid}@mentorloom",
        2,
        "CANCELLED",
    )
    cancelled_ics = Calendar.from_ical((await client.get(f"/v1/meetings/{mid}/ics", headers=mentor)).content)
    cancelled_event = cancelled_ics.walk("VEVENT")[0]
    assert ("METHOD" in cancelled_ics, cancelled_event.decoded("SEQUENCE"), str(cancelled_event["STATUS"])) == (
        False,
        2,
        "CANCELLED",
    )

    rotated_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path
    assert (await client.get(feed_path)).status_code == 404, "rotation retires the old URL"
    assert (await client.get(rotated_path)).status_code == 200
    assert (await client.delete("/v1/me/calendar-feed", headers=mentee)).status_code == 204
    assert (await client.get(rotated_path)).status_code == 404, "revoked"


async def test_a_stored_time_zone_that_no_longer_loads_serves_the_feed_and_the_ics_in_utc_and_logs_it(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, db
):
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    mentee, _, mid = await proposed_by_mentee(client, pair, settings, start)
    feed_path = httpx.URL((await client.post("/v1/me/calendar-feed", headers=mentee)).json()["url"]).path
    _, match = pair
    # A zone tzdata removed later, or a row written before validation: the name is kept, it just cannot be loaded.
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE people SET time_zone = 'Mars/Olympus_Mons' WHERE person_id = :p"),
            {"p": match.mentee_person_id},
        )

    with capture_logs() as logs:
        feed = await client.get(feed_path)
        ics = await client.get(f"/v1/meetings/{mid}/ics", headers=mentee)

    for response in (feed, ics):
        assert response.status_code == 200, response.text
        calendar = Calendar.from_ical(response.content)
        starts = calendar.walk("VEVENT")[0].decoded("DTSTART")
        assert (starts, starts.utcoffset(), calendar.walk("VTIMEZONE")) == (start, timedelta(0), [])
        assert "X-WR-TIMEZONE" not in calendar
    unloadable = [entry for entry in logs if entry["event"] == "time_zone_unloadable_calendar_in_utc"]
    assert [entry["time_zone"] for entry in unloadable] == ["Mars/Olympus_Mons"] * 2


async def test_participants_see_only_their_matches_and_coordinators_only_their_programs(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, db
):
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}
    mid = (await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee)).json()["meeting_id"]

    stranger = token(settings, s.tenant_id, person=uuid.uuid4())
    other_tenant_mentee = token(settings, uuid.uuid4(), person=match.mentee_person_id)
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    other_coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[uuid.uuid4()])
    foreign_coordinator = token(settings, uuid.uuid4(), roles=[Role.COORDINATOR], programs=[s.program_id])

    for headers in (stranger, other_tenant_mentee, other_coordinator, foreign_coordinator):
        assert (await client.get(f"/v1/matches/{match.match_id}/meetings", headers=headers)).status_code == 404
        assert (await client.get(f"/v1/meetings/{mid}", headers=headers)).status_code == 404
        assert (await client.post(f"/v1/meetings/{mid}/accept", headers=headers)).status_code == 404
    for headers in (mentee, stranger, other_coordinator, foreign_coordinator):
        assert (await client.get(f"/v1/programs/{s.program_id}/check-ins", headers=headers)).status_code == 404

    assert (await client.get(f"/v1/meetings/{mid}", headers=coordinator)).status_code == 200
    assert (await client.post(f"/v1/meetings/{mid}/accept", headers=coordinator)).status_code == 403
    schedule = await client.get(f"/v1/programs/{s.program_id}/check-ins", headers=coordinator)
    assert schedule.status_code == 200
    assert {c["match_id"] for c in schedule.json()["items"]} == {str(match.match_id)}
    overdue = await client.get(f"/v1/programs/{s.program_id}/overdue-check-ins", headers=coordinator)
    assert overdue.json() == {"items": [], "next_offset": None}
    assert (await client.get(f"/v1/matches/{match.match_id}/meetings")).status_code == 401


async def test_bad_input_is_a_422_naming_the_field(client: httpx.AsyncClient, pair, settings: SchedulingSettings):
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    too_long = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=30)).isoformat()}
    response = await client.post(f"/v1/matches/{match.match_id}/meetings", json=too_long, headers=mentee)
    assert response.status_code == 422
    unknown = {**too_long, "ends_at": (start + timedelta(hours=1)).isoformat(), "colour": "red"}
    response = await client.post(f"/v1/matches/{match.match_id}/meetings", json=unknown, headers=mentee)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "colour"]
    past = {"starts_at": "2020-01-01T10:00:00Z", "ends_at": "2020-01-01T11:00:00Z"}
    assert (await client.post(f"/v1/matches/{match.match_id}/meetings", json=past, headers=mentee)).status_code == 422


async def pages_of_two(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a list endpoint at limit=2, following next_offset until it is null."""
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get(url, params={"limit": 2, "offset": offset}, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
    return pages


async def test_every_list_endpoint_pages_by_offset_until_next_offset_is_null(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock, db
):
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    for week in range(5):
        start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC) + timedelta(weeks=week)
        body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}
        proposed = await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee)
        assert proposed.status_code == 201, proposed.text
    for url in (f"/v1/matches/{match.match_id}/meetings", "/v1/me/meetings"):
        pages = await pages_of_two(client, url, mentee)
        assert [len(page["items"]) for page in pages] == [2, 2, 1], url
        assert [page["next_offset"] for page in pages] == [2, 4, None], url
        assert len({m["meeting_id"] for page in pages for m in page["items"]}) == 5, url

    # The sweeper reminds of each check-in an hour before it is due; a year on, every one is overdue.
    planned = (
        await client.get(f"/v1/matches/{match.match_id}/check-ins", params={"limit": 500}, headers=mentee)
    ).json()
    for check_in in planned["items"]:
        clock.set(datetime.fromisoformat(check_in["due_at"]) - timedelta(hours=1))
        await sweep(session_factory(db), clock, batch_size=100)
    clock.set(datetime(2027, 6, 1, tzinfo=UTC))
    await sweep(session_factory(db), clock, batch_size=100)
    for url, headers in (
        (f"/v1/matches/{match.match_id}/check-ins", mentee),
        (f"/v1/programs/{s.program_id}/check-ins", coordinator),
        (f"/v1/programs/{s.program_id}/overdue-check-ins", coordinator),
        ("/v1/me/reminders", mentee),
    ):
        whole = await client.get(url, params={"limit": 500}, headers=headers)
        assert whole.json()["next_offset"] is None, url
        rows = len(whole.json()["items"])
        assert rows > 4, url
        pages = await pages_of_two(client, url, headers)
        assert [len(page["items"]) for page in pages] == [2] * (rows // 2) + ([rows % 2] if rows % 2 else []), url
        assert [page["next_offset"] for page in pages][-1] is None, url
        assert [item for page in pages for item in page["items"]] == whole.json()["items"], url
    too_big = await client.get(
        f"/v1/programs/{s.program_id}/check-ins", params={"limit": MAX_LIMIT + 1}, headers=coordinator
    )
    assert too_big.status_code == 422


async def test_a_participants_reminders_say_where_each_check_in_stands_now(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings, clock: MovableClock, db
) -> None:
    s, match = pair
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    planned = (await client.get(f"/v1/matches/{match.match_id}/check-ins", params={"limit": 3}, headers=mentee)).json()[
        "items"
    ]
    for check_in in planned:  # each reminded an hour before it is due
        clock.set(datetime.fromisoformat(check_in["due_at"]) - timedelta(hours=1))
        await sweep(session_factory(db), clock, batch_size=100)
    clock.set(datetime.fromisoformat(planned[-1]["due_at"]) + timedelta(days=30))  # all three missed by now
    await sweep(session_factory(db), clock, batch_size=100)

    listed = (await client.get("/v1/me/reminders", headers=mentee)).json()["items"]
    states = (await client.get(f"/v1/matches/{match.match_id}/check-ins", headers=mentee)).json()["items"]

    reminded = {c["check_in_id"]: c["state"] for c in states if c["check_in_id"] in {r["check_in_id"] for r in listed}}
    assert len(listed) == 3
    assert {r["check_in_id"]: r["check_in_state"] for r in listed} == reminded
    assert set(reminded.values()) == {"missed"}


async def test_a_coordinator_lists_one_milestone_of_every_match_by_kind(
    client: httpx.AsyncClient, pair, settings: SchedulingSettings
) -> None:
    s, match = pair
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    url = f"/v1/programs/{s.program_id}/check-ins"
    for kind in ("first_meeting", "midpoint_review", "closing"):
        listed = (await client.get(url, params={"kind": kind}, headers=coordinator)).json()["items"]
        assert [(c["match_id"], c["kind"]) for c in listed] == [(str(match.match_id), kind)], kind
    regular = (await client.get(url, params={"kind": "regular", "limit": 500}, headers=coordinator)).json()["items"]
    assert regular
    assert {c["kind"] for c in regular} == {"regular"}
    unknown = await client.get(url, params={"kind": "kickoff"}, headers=coordinator)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["query", "kind"]
