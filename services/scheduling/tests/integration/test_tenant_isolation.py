"""Every route of scheduling refuses another tenant, a participant who is not a party and a coordinator of another
program (404, or 403 by role), and lists without an id show them nothing of the pair (tests/isolation.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.scheduling.entrypoints.api import build_app
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, token
from services.scheduling.tests.integration.scenario import Scenario, weekdays
from shared.auth import Role
from shared.clock import MovableClock
from shared.events.models import MatchAccepted
from shared.service import Runtime
from tests.isolation import KIT_ROUTES, Call, MakeCall, RouteKey, check_every_route

pytestmark = pytest.mark.integration

START = datetime(2026, 2, 9, 10, tzinfo=UTC)  # a Monday inside both people's windows


@pytest.fixture
def app(runtime: Runtime, clock: MovableClock) -> FastAPI:
    return build_app(runtime, clock)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduling.test") as c:
        yield c


class Scene:
    """A fresh tenant per case: a program through 2026, a matched pair available on weekdays, and a third
    participant (not a party) with a match of their own."""

    def __init__(
        self, http: httpx.AsyncClient, settings: SchedulingSettings, feed: Feeder, clock: MovableClock
    ) -> None:
        self.http, self.settings, self.feed, self.clock = http, settings, feed, clock

    async def pair(self) -> tuple[Scenario, MatchAccepted]:
        self.clock.set(datetime(2026, 2, 1, tzinfo=UTC))
        s = Scenario()
        match = s.match(datetime(2026, 2, 2, tzinfo=UTC))
        other = s.match(datetime(2026, 2, 2, tzinfo=UTC))
        days = weekdays(time(8), time(18))
        await self.feed(
            s.program(starts_on=date(2026, 2, 1), ends_on=date(2026, 12, 31)),
            *(s.person(p, "UTC", days) for p in (match.mentee_person_id, match.mentor_person_id)),
            *(s.person(p, "UTC", days) for p in (other.mentee_person_id, other.mentor_person_id)),
            match,
            other,
        )
        self.stranger = other.mentee_person_id
        return s, match

    def person(self, s: Scenario, person: uuid.UUID) -> dict[str, str]:
        return token(self.settings, s.tenant_id, person=person)

    def coordinator(self, s: Scenario) -> dict[str, str]:
        return token(self.settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[s.program_id])

    def outsiders(self, s: Scenario, match: MatchAccepted) -> dict[str, dict[str, str]]:
        elsewhere = uuid.uuid4()
        roles = [Role.COORDINATOR, Role.OPERATOR]
        return {
            "staff of another tenant naming the program": token(
                self.settings, elsewhere, roles=roles, programs=[s.program_id]
            ),
            "the mentee's person id in another tenant": token(self.settings, elsewhere, person=match.mentee_person_id),
            "the mentor's person id in another tenant": token(self.settings, elsewhere, person=match.mentor_person_id),
            "a participant who is not a party": self.person(s, self.stranger),
            "a coordinator of another program": token(
                self.settings, s.tenant_id, roles=[Role.COORDINATOR], programs=[uuid.uuid4()]
            ),
        }

    async def meeting(self, s: Scenario, match: MatchAccepted, *, accepted: bool = False) -> str:
        body = {"starts_at": START.isoformat(), "ends_at": (START + timedelta(hours=1)).isoformat()}
        proposed = await self.http.post(
            f"/v1/matches/{match.match_id}/meetings", json=body, headers=self.person(s, match.mentee_person_id)
        )
        assert proposed.status_code == 201, proposed.text
        meeting_id = str(proposed.json()["meeting_id"])
        if accepted:
            done = await self.http.post(
                f"/v1/meetings/{meeting_id}/accept", headers=self.person(s, match.mentor_person_id)
            )
            assert done.status_code == 200, done.text
        return meeting_id

    def cases(self) -> dict[RouteKey, MakeCall | None]:
        def on_match(suffix: str, **call: object) -> MakeCall:
            async def make() -> Call:
                s, match = await self.pair()
                path = f"/v1/matches/{match.match_id}{suffix}"
                return Call(path, self.person(s, match.mentee_person_id), self.outsiders(s, match), **call)  # type: ignore[arg-type]

            return make

        def on_meeting(suffix: str, *, accepted: bool = False, held: bool = False, by_mentor: bool = False,
                       **call: object) -> MakeCall:  # fmt: skip
            async def make() -> Call:
                s, match = await self.pair()
                meeting_id = await self.meeting(s, match, accepted=accepted)
                if held:
                    self.clock.set(START + timedelta(hours=2))
                who = match.mentor_person_id if by_mentor else match.mentee_person_id
                path = f"/v1/meetings/{meeting_id}{suffix}"
                return Call(path, self.person(s, who), self.outsiders(s, match), **call)  # type: ignore[arg-type]

            return make

        def on_program(suffix: str) -> MakeCall:
            async def make() -> Call:
                s, match = await self.pair()
                await self.meeting(s, match)
                return Call(f"/v1/programs/{s.program_id}{suffix}", self.coordinator(s), self.outsiders(s, match))

            return make

        def mine(suffix: str, method_setup: bool = False) -> MakeCall:
            async def make() -> Call:
                s, match = await self.pair()
                meeting_id = await self.meeting(s, match)
                me = self.person(s, match.mentee_person_id)
                if method_setup:  # a feed to revoke
                    assert (await self.http.post("/v1/me/calendar-feed", headers=me)).status_code == 201
                secrets = (meeting_id, str(match.match_id))
                return Call(f"/v1/me/{suffix}", me, self.outsiders(s, match), secrets=secrets)

            return make

        moved = {"starts_at": (START + timedelta(days=1)).isoformat(), "ends_at": (START + timedelta(days=1, hours=1)).isoformat()}  # fmt: skip
        proposal = {"starts_at": START.isoformat(), "ends_at": (START + timedelta(hours=1)).isoformat()}
        return {
            **KIT_ROUTES,
            # The feed URL is the credential (no bearer token): tests/test_api.py covers unknown and revoked ones.
            ("GET", "/v1/calendar-feeds/{token}"): None,
            ("GET", "/v1/matches/{match_id}/slots"): on_match("/slots", params={"start": START.isoformat()}),
            ("GET", "/v1/matches/{match_id}/check-ins"): on_match("/check-ins"),
            ("GET", "/v1/matches/{match_id}/meetings"): on_match("/meetings"),
            ("POST", "/v1/matches/{match_id}/meetings"): on_match("/meetings", json=proposal),
            ("GET", "/v1/meetings/{meeting_id}"): on_meeting(""),
            ("GET", "/v1/meetings/{meeting_id}/ics"): on_meeting("/ics"),
            ("POST", "/v1/meetings/{meeting_id}/accept"): on_meeting("/accept", by_mentor=True),
            ("POST", "/v1/meetings/{meeting_id}/reschedule"): on_meeting("/reschedule", json=moved),
            ("POST", "/v1/meetings/{meeting_id}/cancel"): on_meeting("/cancel"),
            ("POST", "/v1/meetings/{meeting_id}/held"): on_meeting("/held", accepted=True, held=True),
            ("POST", "/v1/meetings/{meeting_id}/missed"): on_meeting("/missed", accepted=True, held=True),
            ("GET", "/v1/me/meetings"): mine("meetings"),
            ("GET", "/v1/me/reminders"): mine("reminders"),
            ("POST", "/v1/me/calendar-feed"): mine("calendar-feed"),
            ("DELETE", "/v1/me/calendar-feed"): mine("calendar-feed", method_setup=True),
            ("GET", "/v1/programs/{program_id}/check-ins"): on_program("/check-ins"),
            ("GET", "/v1/programs/{program_id}/overdue-check-ins"): on_program("/overdue-check-ins"),
            ("GET", "/v1/programs/{program_id}/meeting-overlaps"): on_program("/meeting-overlaps"),
        }


async def test_every_route_refuses_another_tenant_a_non_party_and_another_programs_coordinator(
    app: FastAPI, http: httpx.AsyncClient, settings: SchedulingSettings, feed: Feeder, clock: MovableClock
) -> None:
    assert await check_every_route(http, app, Scene(http, settings, feed, clock).cases()) == []


async def test_a_calendar_feed_made_in_another_tenant_under_the_same_person_id_leaves_theirs_working(
    http: httpx.AsyncClient, settings: SchedulingSettings, feed: Feeder, clock: MovableClock
) -> None:
    scene = Scene(http, settings, feed, clock)
    s, match = await scene.pair()
    await scene.meeting(s, match)
    mine = scene.person(s, match.mentee_person_id)
    feed_path = httpx.URL((await http.post("/v1/me/calendar-feed", headers=mine)).json()["url"]).path
    impostor = token(settings, uuid.uuid4(), person=match.mentee_person_id)

    made = await http.post("/v1/me/calendar-feed", headers=impostor)
    revoked = await http.delete("/v1/me/calendar-feed", headers=impostor)

    assert made.status_code == 201, made.text  # a feed of their own tenant (empty), not the mentee's
    assert revoked.status_code == 204, revoked.text
    still = await http.get(feed_path)
    assert still.status_code == 200, still.text
    assert "BEGIN:VEVENT" in still.text
    again = await http.post("/v1/me/calendar-feed", headers=mine)
    assert again.status_code == 201, again.text
