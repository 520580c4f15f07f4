"""Every route of matching refuses another tenant, a participant who is not a party and a coordinator of another
program (404, or 403 by role), and lists without an id show them nothing of the match (tests/isolation.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.matching.entrypoints.api import build_app
from services.matching.settings import MatchingSettings
from services.matching.tests.integration.conftest import Feeder, World, token
from shared.auth import Role
from shared.clock import MovableClock
from shared.service import Runtime
from tests.isolation import KIT_ROUTES, Call, MakeCall, RouteKey, check_every_route

pytestmark = pytest.mark.integration


@pytest.fixture
def app(runtime: Runtime, clock: MovableClock) -> FastAPI:
    return build_app(runtime, clock)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://matching.test") as c:
        yield c


class Scene:
    """A fresh tenant per case: a program with two mentees (amara, bea) and two mentors (lukas, nora)."""

    def __init__(self, http: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder) -> None:
        self.http, self.settings, self.feed = http, settings, feed

    async def world(self) -> World:
        w = World()
        await self.feed(w.program())
        for name in ("amara", "bea"):
            await self.feed(*w.mentee(name))
        for name in ("lukas", "nora"):
            await self.feed(*w.mentor(name))
        return w

    def outsiders(self, w: World) -> dict[str, dict[str, str]]:
        elsewhere = uuid.uuid4()
        roles = [Role.COORDINATOR, Role.OPERATOR]
        return {
            "staff of another tenant naming the program": token(
                self.settings, elsewhere, roles=roles, programs=[w.program_id]
            ),
            "the mentee's person id in another tenant": token(self.settings, elsewhere, person=w.id("amara")),
            "the mentor's person id in another tenant": token(self.settings, elsewhere, person=w.id("lukas")),
            "a participant who is not a party": w.as_person(self.settings, "bea"),
            "a coordinator of another program": token(
                self.settings, w.tenant, roles=[Role.COORDINATOR], programs=[uuid.uuid4()]
            ),
        }

    async def requested(self, w: World) -> str:
        """A match amara requested of lukas (proposed, sent to both)."""
        response = await self.http.post(
            f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests",
            json={"mentor_person_id": str(w.id("lukas"))},
            headers=w.as_person(self.settings, "amara"),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["match_id"])

    async def active(self, w: World) -> str:
        match_id = await self.requested(w)
        accepted = await self.http.post(f"/v1/matches/{match_id}/accept", headers=w.as_person(self.settings, "lukas"))
        assert accepted.status_code == 200, accepted.text
        return match_id

    async def round(self, w: World) -> str:
        ran = await self.http.post(f"/v1/programs/{w.program_id}/rounds", headers=w.as_coordinator(self.settings))
        assert ran.status_code == 201, ran.text
        return str(ran.json()["round_id"])

    def cases(self) -> dict[RouteKey, MakeCall | None]:
        s = self.settings

        async def read_match() -> Call:
            w = await self.world()
            return Call(f"/v1/matches/{await self.requested(w)}", w.as_person(s, "amara"), self.outsiders(w))

        async def accept() -> Call:
            w = await self.world()
            match_id = await self.requested(w)
            return Call(f"/v1/matches/{match_id}/accept", w.as_person(s, "lukas"), self.outsiders(w))

        async def decline() -> Call:
            w = await self.world()
            match_id = await self.requested(w)
            return Call(f"/v1/matches/{match_id}/decline", w.as_person(s, "lukas"), self.outsiders(w))

        async def end() -> Call:
            w = await self.world()
            match_id = await self.active(w)
            return Call(
                f"/v1/matches/{match_id}/end",
                w.as_person(s, "amara"),
                self.outsiders(w),
                json={"reason_category": "no_time", "private_reason": "private words"},
            )

        async def my_matches() -> Call:
            w = await self.world()
            match_id = await self.requested(w)
            return Call("/v1/me/matches", w.as_person(s, "amara"), self.outsiders(w), secrets=(match_id, "Lukas"))

        async def program_matches() -> Call:
            w = await self.world()
            await self.requested(w)
            return Call(f"/v1/programs/{w.program_id}/matches", w.as_coordinator(s), self.outsiders(w))

        async def request_mentor() -> Call:
            w = await self.world()
            return Call(
                f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/requests",
                w.as_person(s, "amara"),
                self.outsiders(w),
                json={"mentor_person_id": str(w.id("lukas"))},
            )

        async def shortlist() -> Call:
            w = await self.world()
            path = f"/v1/programs/{w.program_id}/mentees/{w.id('amara')}/shortlist"
            return Call(path, w.as_person(s, "amara"), self.outsiders(w))

        async def pool() -> Call:
            w = await self.world()
            return Call(f"/v1/programs/{w.program_id}/pool", w.as_coordinator(s), self.outsiders(w))

        async def run_round() -> Call:
            w = await self.world()
            return Call(f"/v1/programs/{w.program_id}/rounds", w.as_coordinator(s), self.outsiders(w))

        async def read_round() -> Call:
            w = await self.world()
            return Call(f"/v1/rounds/{await self.round(w)}", w.as_coordinator(s), self.outsiders(w))

        async def approve() -> Call:
            w = await self.world()
            path = f"/v1/rounds/{await self.round(w)}/approve"
            return Call(path, w.as_coordinator(s), self.outsiders(w), json={})

        async def create_match() -> Call:
            w = await self.world()
            body = {
                "program_id": str(w.program_id),
                "mentee_person_id": str(w.id("amara")),
                "mentor_person_id": str(w.id("lukas")),
            }
            # No id in the path, but the body names the program: a write into it.
            return Call("/v1/matches", w.as_coordinator(s), self.outsiders(w), json=body, must_refuse=True)

        return {
            **KIT_ROUTES,
            ("POST", "/v1/matches"): create_match,
            ("GET", "/v1/matches/{match_id}"): read_match,
            ("POST", "/v1/matches/{match_id}/accept"): accept,
            ("POST", "/v1/matches/{match_id}/decline"): decline,
            ("POST", "/v1/matches/{match_id}/end"): end,
            ("GET", "/v1/me/matches"): my_matches,
            ("GET", "/v1/programs/{program_id}/matches"): program_matches,
            ("POST", "/v1/programs/{program_id}/mentees/{person_id}/requests"): request_mentor,
            ("GET", "/v1/programs/{program_id}/mentees/{person_id}/shortlist"): shortlist,
            ("GET", "/v1/programs/{program_id}/pool"): pool,
            ("POST", "/v1/programs/{program_id}/rounds"): run_round,
            ("GET", "/v1/rounds/{round_id}"): read_round,
            ("POST", "/v1/rounds/{round_id}/approve"): approve,
        }


async def test_every_route_refuses_another_tenant_a_non_party_and_another_programs_coordinator(
    app: FastAPI, http: httpx.AsyncClient, settings: MatchingSettings, feed: Feeder
) -> None:
    assert await check_every_route(http, app, Scene(http, settings, feed).cases()) == []
