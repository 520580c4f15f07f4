"""Every route of feedback refuses another tenant, a participant who is not a party and a coordinator of another
program (404, or 403 by role), and lists without an id show them nothing of the pair (tests/isolation.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from services.feedback.entrypoints.api import build_app
from services.feedback.tests.integration.support import People, accepted, apply, check_in_due, program, token
from services.feedback.tests.integration.test_agreement_api import answers as agreement_answers
from shared.service import Runtime
from tests.isolation import KIT_ROUTES, Call, MakeCall, RouteKey, check_every_route

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
PULSE = {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 60}


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return build_app(runtime)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://feedback") as c:
        yield c


async def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


class Scene:
    """A fresh tenant per case: a program, a pair matched 20 days ago with a check-in due (so a pulse each), and
    another pair of the program (the participant who is not a party is its mentee)."""

    def __init__(self, http: httpx.AsyncClient, runtime: Runtime) -> None:
        self.http, self.runtime = http, runtime

    async def pair(self) -> People:
        people = People.fresh()
        others = People.fresh(people.tenant, people.program)
        await apply(self.runtime, program(people), accepted(people, NOW - timedelta(days=20)), accepted(others))
        await apply(self.runtime, check_in_due(people, NOW - timedelta(hours=1)))
        self.stranger = others.mentee
        return people

    def mentee(self, p: People) -> dict[str, str]:
        return token(self.runtime, p.tenant, person=p.mentee)

    def mentor(self, p: People) -> dict[str, str]:
        return token(self.runtime, p.tenant, person=p.mentor)

    def coordinator(self, p: People) -> dict[str, str]:
        return token(self.runtime, p.tenant, coordinator_of=(p.program,))

    def outsiders(self, p: People) -> dict[str, dict[str, str]]:
        elsewhere = uuid4()
        return {
            "staff of another tenant naming the program": token(
                self.runtime, elsewhere, coordinator_of=(p.program,), operator=True
            ),
            "the mentee's person id in another tenant": token(self.runtime, elsewhere, person=p.mentee),
            "the mentor's person id in another tenant": token(self.runtime, elsewhere, person=p.mentor),
            "a participant who is not a party": token(self.runtime, p.tenant, person=self.stranger),
            "a coordinator of another program": token(self.runtime, p.tenant, coordinator_of=(uuid4(),)),
        }

    async def pulse_of_mentee(self, p: People, *, answered: dict[str, Any] | None = None) -> str:
        [pulse] = (await ok(await self.http.get("/v1/me/pulses", headers=self.mentee(p))))["items"]
        if answered is not None:
            url = f"/v1/pulses/{pulse['pulse_id']}/answers"
            await ok(await self.http.post(url, json=answered, headers=self.mentee(p)))
        return str(pulse["pulse_id"])

    async def agreed(self, p: People) -> str:
        """Both submitted their expectations and the mentee recorded a plan: its first goal's id."""
        url = f"/v1/matches/{p.match}/agreement"
        for who in (self.mentee(p), self.mentor(p)):
            await ok(await self.http.put(f"{url}/answers", json=agreement_answers(), headers=who))
        plan = await ok(await self.http.put(f"{url}/plan", json={"goals": ["Submit"]}, headers=self.mentee(p)))
        return str(plan["plan"]["goals"][0]["goal_id"])

    def cases(self) -> dict[RouteKey, MakeCall | None]:
        def on_match(suffix: str, *, insider: str = "mentee", setup: str = "", **call: Any) -> MakeCall:
            async def make() -> Call:
                p = await self.pair()
                path = f"/v1/matches/{p.match}{suffix}"
                if setup == "answers":
                    for who in (self.mentee(p), self.mentor(p)):
                        await ok(await self.http.put(path.replace("/plan", "/answers"), json=agreement_answers(),
                                                     headers=who))  # fmt: skip
                elif setup == "goal":
                    path = path.format(goal_id=await self.agreed(p))
                elif setup == "concern":
                    await self.pulse_of_mentee(p, answered={"answers": PULSE, "concern_flagged": True})
                headers = {"mentee": self.mentee, "coordinator": self.coordinator}[insider](p)
                return Call(path, headers, self.outsiders(p), **call)

            return make

        def on_pulse(suffix: str, **call: Any) -> MakeCall:
            async def make() -> Call:
                p = await self.pair()
                path = f"/v1/pulses/{await self.pulse_of_mentee(p)}{suffix}"
                return Call(path, self.mentee(p), self.outsiders(p), **call)

            return make

        def on_program(suffix: str) -> MakeCall:
            async def make() -> Call:
                p = await self.pair()
                return Call(f"/v1/programs/{p.program}{suffix}", self.coordinator(p), self.outsiders(p))

            return make

        def mine(suffix: str) -> MakeCall:
            async def make() -> Call:
                p = await self.pair()
                await self.agreed(p)
                pulse = await self.pulse_of_mentee(p, answered={"answers": PULSE})
                survey = {"kind": "before", "answers": {"confidence": 2}}
                await ok(await self.http.post(f"/v1/matches/{p.match}/surveys", json=survey, headers=self.mentee(p)))
                secrets = (str(p.match), pulse)
                return Call(f"/v1/me/{suffix}", self.mentee(p), self.outsiders(p), secrets=secrets)

            return make

        survey = {"kind": "before", "answers": {"confidence": 2, "belonging": 3}}
        return {
            **KIT_ROUTES,
            ("GET", "/v1/matches/{match_id}/agreement"): on_match("/agreement"),
            ("PUT", "/v1/matches/{match_id}/agreement/answers"): on_match(
                "/agreement/answers", json=agreement_answers()
            ),
            ("PUT", "/v1/matches/{match_id}/agreement/plan"): on_match(
                "/agreement/plan", setup="answers", json={"goals": ["Submit the first paper"]}
            ),
            ("POST", "/v1/matches/{match_id}/agreement/goals/{goal_id}/progress"): on_match(
                "/agreement/goals/{goal_id}/progress", setup="goal", json={"percent": 40}
            ),
            ("POST", "/v1/matches/{match_id}/concerns/resolve"): on_match(
                "/concerns/resolve", insider="coordinator", setup="concern"
            ),
            ("GET", "/v1/matches/{match_id}/pulses"): on_match("/pulses"),
            ("POST", "/v1/matches/{match_id}/surveys"): on_match("/surveys", json=survey),
            ("GET", "/v1/me/agreement-answers"): mine("agreement-answers"),
            ("GET", "/v1/me/pulses"): mine("pulses"),
            ("GET", "/v1/me/surveys"): mine("surveys"),
            ("GET", "/v1/programs/{program_id}/at-risk"): on_program("/at-risk"),
            ("GET", "/v1/programs/{program_id}/report"): on_program("/report"),
            ("GET", "/v1/programs/{program_id}/report.csv"): on_program("/report.csv"),
            ("GET", "/v1/pulses/{pulse_id}"): on_pulse(""),
            ("POST", "/v1/pulses/{pulse_id}/answers"): on_pulse("/answers", json={"answers": PULSE}),
        }


async def test_every_route_refuses_another_tenant_a_non_party_and_another_programs_coordinator(
    app: FastAPI, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert await check_every_route(http, app, Scene(http, runtime).cases()) == []
