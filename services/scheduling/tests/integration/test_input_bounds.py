"""Dates at the ends of the calendar, meetings past the program's end, malformed If-Match: each refusal names
what is wrong (the field or header, and the rule)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, token
from services.scheduling.tests.integration.scenario import Scenario
from shared.auth import Role
from shared.clock import MovableClock
from shared.events.models import MatchAccepted

pytestmark = pytest.mark.integration

EVERY_DAY = [(d, time(0), time(23, 59)) for d in ("monday", "tuesday", "wednesday", "thursday", "friday")]
NOW = datetime(2026, 2, 1, tzinfo=UTC)


async def matched(feed: Feeder, clock: MovableClock, *, program_known: bool) -> tuple[Scenario, MatchAccepted]:
    """A match in a program whose last day is 2026-12-31, or whose program scheduling has not heard of yet."""
    s = Scenario()
    mentee, mentor = uuid.uuid4(), uuid.uuid4()
    clock.set(NOW)
    match = s.match(NOW + timedelta(days=1), mentee=mentee, mentor=mentor)
    events: list[Any] = [s.person(mentee, "Europe/Paris", EVERY_DAY), s.person(mentor, "Europe/Paris", EVERY_DAY)]
    if program_known:
        events.append(s.program(starts_on=date(2026, 2, 1), ends_on=date(2026, 12, 31)))
    await feed(*events, match)
    return s, match


def meeting_at(start: datetime) -> dict[str, str]:
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}


def refused_field(response: httpx.Response) -> tuple[list[Any], str]:
    assert response.status_code == 422, response.text
    problem = response.json()["detail"][0]
    return problem["loc"], problem["msg"]


async def test_a_slot_start_at_either_end_of_the_calendar_is_a_422_naming_start(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    for start in ("0001-01-01T00:00:00Z", "9999-12-25T00:00:00Z", "2026-03-01T10:00:00"):
        response = await client.get(f"/v1/matches/{match.match_id}/slots", params={"start": start}, headers=mentee)
        loc, _ = refused_field(response)  # was "date value out of range" naming nothing (and naive: no loc)
        assert loc == ["query", "start"], start
    fine = await client.get(
        f"/v1/matches/{match.match_id}/slots", params={"start": "2026-03-02T00:00:00Z"}, headers=mentee
    )
    assert fine.status_code == 200, fine.text


async def test_a_meeting_at_the_end_of_the_calendar_is_a_422_naming_starts_at(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    body = {"starts_at": "9999-12-31T23:00:00Z", "ends_at": "9999-12-31T23:30:00Z"}
    loc, message = refused_field(await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee))
    assert loc == ["body", "starts_at"]
    assert "2100-01-01" in message


async def test_a_meeting_after_the_program_ends_is_refused_naming_starts_at_and_the_last_day(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    url = f"/v1/matches/{match.match_id}/meetings"
    loc, message = refused_field(
        await client.post(url, json=meeting_at(datetime(2090, 1, 5, 10, tzinfo=UTC)), headers=mentee)
    )
    assert loc == ["body", "starts_at"]  # it was a 201
    assert "2090-01-05" in message
    assert "2026-12-31" in message
    # The evening of the last day in the Americas is still in the program; the next morning in Europe is not.
    last_evening = await client.post(url, json=meeting_at(datetime(2027, 1, 1, 3, tzinfo=UTC)), headers=mentee)
    assert last_evening.status_code == 201, last_evening.text
    loc, _ = refused_field(
        await client.post(url, json=meeting_at(datetime(2027, 1, 1, 13, tzinfo=UTC)), headers=mentee)
    )
    assert loc == ["body", "starts_at"]
    # Moving a meeting past the end is refused the same way.
    moved = await client.post(
        f"/v1/meetings/{last_evening.json()['meeting_id']}/reschedule",
        json=meeting_at(datetime(2027, 2, 1, 10, tzinfo=UTC)),
        headers=mentee,
    )
    loc, _ = refused_field(moved)
    assert loc == ["body", "starts_at"]
    # A meeting in the past still names the field too.
    loc, _ = refused_field(
        await client.post(url, json=meeting_at(datetime(2026, 1, 5, 10, tzinfo=UTC)), headers=mentee)
    )
    assert loc == ["body", "starts_at"]


async def test_without_the_program_a_meeting_more_than_365_days_ahead_is_refused_saying_so(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=False)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    url = f"/v1/matches/{match.match_id}/meetings"
    loc, message = refused_field(await client.post(url, json=meeting_at(NOW + timedelta(days=400)), headers=mentee))
    assert loc == ["body", "starts_at"]
    assert "365 days" in message
    within = await client.post(url, json=meeting_at(NOW + timedelta(days=300)), headers=mentee)
    assert within.status_code == 201, within.text


async def test_a_malformed_if_match_is_a_422_naming_the_header_not_a_stale_version(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)
    proposed = await client.post(
        f"/v1/matches/{match.match_id}/meetings", json=meeting_at(NOW + timedelta(days=10)), headers=mentee
    )
    accept = f"/v1/meetings/{proposed.json()['meeting_id']}/accept"
    for garbage in ("zz", '"1', "1, zz"):
        loc, message = refused_field(await client.post(accept, headers={**mentor, "If-Match": garbage}))
        assert loc == ["header", "If-Match"], garbage  # it was a 412 "changed since you read it"
        assert 'e.g. "3"' in message
    stale = await client.post(accept, headers={**mentor, "If-Match": '"7"'})
    assert stale.status_code == 412
    accepted = await client.post(accept, headers={**mentor, "If-Match": 'W/"0", "1"'})
    assert accepted.status_code == 200, accepted.text


async def test_a_program_schedules_due_window_without_an_offset_or_off_the_calendar_is_a_422_naming_the_bound(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, _ = await matched(feed, clock, program_known=True)
    coordinator = token(settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])
    schedule = f"/v1/programs/{s.program_id}/check-ins"
    for bound in ("due_from", "due_to"):
        for value in ("2026-03-01T10:00:00", "9999-12-31T00:00:00Z"):
            loc, _ = refused_field(await client.get(schedule, params={bound: value}, headers=coordinator))
            assert loc == ["query", bound], value  # a naive one was a 422 naming no field
    window = {"due_from": "2026-02-01T00:00:00Z", "due_to": "2026-12-31T00:00:00Z"}
    fine = await client.get(schedule, params=window, headers=coordinator)
    assert fine.status_code == 200, fine.text
    assert fine.json()["items"], "the match's planned check-ins fall in the window"


START = NOW + timedelta(days=30)
REFUSED_MEETINGS: list[tuple[str, dict[str, Any], str]] = [
    ("ending before it starts", {**meeting_at(START), "ends_at": (START - timedelta(hours=1)).isoformat()}, "ends_at"),
    ("longer than 24 hours", {**meeting_at(START), "ends_at": (START + timedelta(hours=30)).isoformat()}, "ends_at"),
    ("in the past", meeting_at(NOW - timedelta(days=30)), "starts_at"),
    ("after the program's last day", meeting_at(datetime(2027, 2, 1, 10, tzinfo=UTC)), "starts_at"),
    ("for a check-in of no one", {**meeting_at(START), "check_in_id": str(uuid.uuid4())}, "check_in_id"),
    ("with an unknown field", {**meeting_at(START), "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("rule", "body", "field"), REFUSED_MEETINGS, ids=[r[0] for r in REFUSED_MEETINGS])
async def test_a_refused_meeting_is_a_422_naming_its_field_in_the_validation_shape_of_every_service(
    client: httpx.AsyncClient,
    feed: Feeder,
    clock: MovableClock,
    settings: SchedulingSettings,
    rule: str,
    body: dict[str, Any],
    field: str,
) -> None:
    """Like FastAPI's own validation errors and the other services' domain rules: one problem per field, with its
    type, loc, msg and the input refused."""
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    response = await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=mentee)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field], rule
    assert {"type", "loc", "msg", "input"} <= problem.keys(), problem
    assert problem["input"] == body[field], problem


async def test_a_move_into_the_past_or_ending_before_it_starts_is_a_422_naming_the_field(
    client: httpx.AsyncClient, feed: Feeder, clock: MovableClock, settings: SchedulingSettings
) -> None:
    s, match = await matched(feed, clock, program_known=True)
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    proposed = await client.post(f"/v1/matches/{match.match_id}/meetings", json=meeting_at(START), headers=mentee)
    url = f"/v1/meetings/{proposed.json()['meeting_id']}/reschedule"
    past = meeting_at(NOW - timedelta(days=1))
    backwards = {**meeting_at(START), "ends_at": START.isoformat()}
    for body, field in ((past, "starts_at"), (backwards, "ends_at")):
        response = await client.post(url, json=body, headers=mentee)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert (problem["loc"], problem["input"]) == (["body", field], body[field])
