"""Right to be forgotten: after ProfileErased no row of the feedback database leads back to the person, nor any
answer its API keeps in Redis for Idempotency-Key retries, on a real PostgreSQL and Redis; the program's report is
unchanged and the partner sees nothing the erased person wrote."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import httpx
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback import application as app
from services.feedback.adapters import repository as repo
from services.feedback.bootstrap import DEFINITION, projection_handler
from services.feedback.domain.agreement import (
    AgreedPlan,
    AgreementAnswers,
    ExpectationsAgreement,
    PlanGoal,
    ProgressUpdate,
    erase_text_of,
    forget_party,
    submit_answers,
)
from services.feedback.domain.reports import MENTEE, MENTOR
from services.feedback.entrypoints.handlers import make_handler
from services.feedback.tests.integration.support import (
    People,
    accepted,
    apply,
    check_in_due,
    count,
    migrated_runtime,
    program,
    token,
)
from shared.db import create_engine
from shared.events import samples
from shared.events.envelope import EventEnvelope
from shared.events.models import EventData
from shared.migrations import alembic_config
from shared.service import Runtime
from tests.erasure_scan import columns_containing, kept_answers_naming

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
CAMPUS_A, CAMPUS_B = uuid4(), uuid4()
GOOD = {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 60}
# Pulse ids were once uuid5(this, "{check-in id}:{person id}"): anyone knowing both could compute one.
PULSE_ID_NAMESPACE_BEFORE = UUID("6f1c1c55-1f7e-4a53-9c39-0c1f2f0d6a01")
# Everything the erased person writes carries one of these, so a scan can tell whether any of it is left.
SECRETS = ("secret-note", "secret-hopes", "secret-boundary", "secret-goal", "secret-plan", "secret-progress")


@pytest.fixture
async def runtime(database_url: str, redis_url: str) -> AsyncIterator[Runtime]:
    """On a real Redis, so the API keeps its answers for Idempotency-Key retries there (as deployed)."""
    built = await migrated_runtime(database_url, redis_url=redis_url)
    try:
        yield built
    finally:
        await built.close()


def once(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with a fresh Idempotency-Key: the answer to the POST is kept in Redis for a retry."""
    return {**headers, "Idempotency-Key": uuid4().hex}


def agreement_answers(marker: str) -> dict[str, Any]:
    return {
        "aspirations": {"hopes": f"{marker}-hopes", "commitment": 4},
        "communication": {"channel": "video", "frequency": "fortnightly", "response_time": "within_two_days"},
        "well_being": {"openness_to_personal_topics": 4, "boundaries": f"{marker}-boundary"},
        "work_feedback": {"wants_feedback_on_work": 4, "style": "direct"},
        "conflict_resolution": {"approach": "raise_immediately", "comfort_raising_issues": 2},
        "career_development": {"importance": 3},
        "goals": {"goals": [f"{marker}-goal"]},
    }


@dataclass
class Program:
    """A mentee with two mentors (two matches, one ended), each party with pulses, surveys and an agreement."""

    base: People
    mentee: UUID
    first: People  # running: both answered pulses, surveys and the agreement; the mentee recorded the plan
    second: People  # ended after the mentee flagged a concern in it
    check_ins: tuple[UUID, UUID]  # the one due check-in of each match, in that order

    @property
    def coordinator(self) -> UUID:
        return self.base.program


def profile(tenant: UUID, person_id: UUID, campus: UUID) -> EventData:
    return samples.profile_updated(tenant_id=tenant, person_id=person_id, campus_id=campus)


def enrolment(base: People, person_id: UUID, role: str) -> EventData:
    return samples.enrollment_changed(
        tenant_id=base.tenant,
        enrollment_id=uuid4(),
        person_id=person_id,
        program_id=base.program,
        role=role,
        capacity=2 if role == "mentor" else 0,
        cohort="2026-spring",
    )


async def answer_open_pulse(
    client: httpx.AsyncClient, headers: dict[str, str], match: UUID, note: str | None, concern: bool = False
) -> None:
    items = (await client.get("/v1/me/pulses", params={"status": "open"}, headers=headers)).json()["items"]
    [pulse] = [item for item in items if item["match_id"] == str(match)]
    answers: dict[str, Any] = {**GOOD, "private_note": note} if note else dict(GOOD)
    response = await client.post(
        f"/v1/pulses/{pulse['pulse_id']}/answers",
        json={"answers": answers, "concern_flagged": concern},
        headers=once(headers),
    )
    assert response.status_code == 200, response.text


async def ok(response: Any) -> dict[str, Any]:
    awaited = await response
    assert awaited.status_code in (200, 201), awaited.text
    body: dict[str, Any] = awaited.json()
    return body


async def seeded(runtime: Runtime, client: httpx.AsyncClient) -> Program:
    base = People.fresh()
    mentee, mentor_one, mentor_two = uuid4(), uuid4(), uuid4()
    first = People(base.tenant, base.program, mentor_one, mentee, uuid4())
    second = People(base.tenant, base.program, mentor_two, mentee, uuid4())
    check_ins = (uuid4(), uuid4())
    await apply(
        runtime,
        program(base, min_report_group_size=2),
        profile(base.tenant, mentee, CAMPUS_A),
        profile(base.tenant, mentor_one, CAMPUS_B),
        profile(base.tenant, mentor_two, CAMPUS_B),
        enrolment(base, mentee, "mentee"),
        enrolment(base, mentor_one, "mentor"),
        enrolment(base, mentor_two, "mentor"),
        accepted(first, NOW - timedelta(days=20)),
        accepted(second, NOW - timedelta(days=20)),
        check_in_due(first, NOW - timedelta(hours=2), check_ins[0]),
        check_in_due(second, NOW - timedelta(hours=2), check_ins[1]),
    )
    mentee_token = token(runtime, base.tenant, person=mentee)
    mentor_token = token(runtime, base.tenant, person=mentor_one)
    await answer_open_pulse(client, mentee_token, first.match, "secret-note in the first match")
    await answer_open_pulse(client, mentor_token, first.match, "the mentor's own note")
    await answer_open_pulse(client, mentee_token, second.match, "secret-note: please step in", concern=True)
    surveys = f"/v1/matches/{first.match}/surveys"
    await ok(client.post(surveys, json={"kind": "before", "answers": {"q1": 2, "q2": 3}}, headers=once(mentee_token)))
    await ok(client.post(surveys, json={"kind": "after", "answers": {"q1": 4, "q2": 5}}, headers=once(mentee_token)))
    await ok(client.post(surveys, json={"kind": "before", "answers": {"q1": 3}}, headers=once(mentor_token)))
    await ok(client.post(surveys, json={"kind": "after", "answers": {"q1": 4}}, headers=once(mentor_token)))
    agreement = f"/v1/matches/{first.match}/agreement"
    await ok(client.put(f"{agreement}/answers", json=agreement_answers("secret"), headers=mentee_token))
    await ok(client.put(f"{agreement}/answers", json=agreement_answers("mentor"), headers=mentor_token))
    plan = await ok(
        client.put(
            f"{agreement}/plan",
            json={"goals": ["secret-plan goal"], "agreements": {"communication": "secret-plan words"}},
            headers=mentee_token,
        )
    )
    goal = plan["plan"]["goals"][0]["goal_id"]
    progress = f"{agreement}/goals/{goal}/progress"
    await ok(client.post(progress, json={"percent": 20, "note": "secret-progress"}, headers=once(mentee_token)))
    await ok(client.post(progress, json={"percent": 40, "note": "mentor progress"}, headers=once(mentor_token)))
    await apply(runtime, samples.match_ended(**second.pair, ended_at=NOW - timedelta(hours=1)))
    return Program(base, mentee, first, second, check_ins)


def erased(scenario: Program, version: int = 10) -> EventData:
    return samples.profile_erased(
        tenant_id=scenario.base.tenant, person_id=scenario.mentee, version=version, erased_at=NOW
    )


async def rows_containing(runtime: Runtime | AsyncEngine, needle: str) -> list[str]:
    """Every table.column of the database (uuid, text, json, binary) holding `needle` in some row."""
    return await columns_containing(runtime if isinstance(runtime, AsyncEngine) else runtime.engine, needle)


async def report(client: httpx.AsyncClient, runtime: Runtime, scenario: Program) -> dict[str, Any]:
    coordinator = token(runtime, scenario.base.tenant, coordinator_of=(scenario.base.program,))
    return await ok(client.get(f"/v1/programs/{scenario.base.program}/report", headers=coordinator))


async def test_after_erasure_no_row_of_any_table_carries_the_person_id_or_their_text(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    before = await rows_containing(runtime, str(scenario.mentee))
    # The scan finds the person where feedback keeps them, the ended match's at-risk reason among them.
    assert {"pulses.respondent_id", "surveys.respondent_id", "agreements.document", "matches.mentee_id"} <= set(before)
    assert "matches.health_reasons" in before
    for secret in SECRETS:
        assert await rows_containing(runtime, secret), secret
    # And among the answers kept for Idempotency-Key retries: the partner's progress answer holds the agreement.
    assert await kept_answers_naming(runtime.redis, str(scenario.mentee))
    assert await kept_answers_naming(runtime.redis, "secret-progress")

    answered = "SELECT count(*) FROM surveys WHERE before_answers IS NOT NULL AND after_answers IS NOT NULL"
    assert await count(runtime, answered) == 2

    await apply(runtime, erased(scenario), handle=projection_handler(runtime))

    assert await rows_containing(runtime, str(scenario.mentee)) == []
    # A survey id once derived from (match id, person id) let anyone knowing both find their answers again (here in
    # the outbox, downstream in every copy of the FeedbackSubmitted events): no such id may be left anywhere.
    for kind in ("before_survey", "after_survey"):
        derived = uuid5(scenario.first.match, f"{scenario.mentee}:{kind}")
        assert await rows_containing(runtime, str(derived)) == [], kind
    # So did a pulse id derived from (check-in id, person id): in the pulses, and in their FeedbackSubmitted
    # events still waiting in the outbox (feedback_id in the data, ce_subject in the headers).
    for check_in in scenario.check_ins:
        derived = uuid5(PULSE_ID_NAMESPACE_BEFORE, f"{check_in}:{scenario.mentee}")
        assert await rows_containing(runtime, str(derived)) == [], check_in
        assert await kept_answers_naming(runtime.redis, str(derived)) == [], check_in
    for needle in (str(scenario.mentee), *SECRETS):
        assert await kept_answers_naming(runtime.redis, needle) == [], needle
    # Their per-question survey answers go (the reports count the scores); the partner's stay.
    assert await count(runtime, answered) == 1
    assert await rows_containing(runtime, scenario.mentee.hex) == []
    for secret in SECRETS:
        assert await rows_containing(runtime, secret) == [], secret


async def test_the_programs_report_gives_the_same_figures_before_and_after_an_erasure(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    before = await report(client, runtime, scenario)
    # Three people: the erased mentee is in two matches and must stay one person, not become two (or none).
    [total] = [row for row in before["rows"] if row["breakdown"] == []]
    assert total["participants"] == 3
    assert total["metrics"]["survey_change"] is not None

    await apply(runtime, erased(scenario))

    assert await report(client, runtime, scenario) == before


async def table_contents(runtime: Runtime) -> dict[str, list[str]]:
    async with runtime.engine.connect() as conn:
        tables = (
            await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))
        ).scalars()
        contents = {}
        for table in list(tables):
            rows = await conn.execute(text(f'SELECT t::text FROM "{table}" AS t'))
            contents[table] = sorted(rows.scalars())
    return contents


async def test_a_redelivered_erasure_raises_nothing_and_changes_nothing_more(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    await apply(runtime, erased(scenario))
    once = await table_contents(runtime)
    # Straight through the handler, so the inbox does not stop it: the handler itself must have nothing left to do.
    await apply(runtime, erased(scenario))
    await apply(runtime, erased(scenario, version=9))
    assert await table_contents(runtime) == once


async def test_erasing_a_person_feedback_never_saw_succeeds_and_projects_nothing_about_them(
    runtime: Runtime,
) -> None:
    stranger = uuid4()
    await apply(runtime, samples.profile_erased(tenant_id=uuid4(), person_id=stranger, erased_at=NOW))
    assert await rows_containing(runtime, str(stranger)) == []


async def test_the_partner_sees_nothing_the_erased_person_wrote(runtime: Runtime, client: httpx.AsyncClient) -> None:
    scenario = await seeded(runtime, client)
    partner = token(runtime, scenario.base.tenant, person=scenario.first.mentor)
    url = f"/v1/matches/{scenario.first.match}/agreement"

    await apply(runtime, erased(scenario))

    view = await ok(client.get(url, headers=partner))
    seen = str(view)
    assert not [secret for secret in SECRETS if secret in seen]
    # The partner's own answers stay as they were.
    assert view["own"]["aspirations"]["hopes"] == "mentor-hopes"
    assert view["own"]["goals"]["goals"] == ["mentor-goal"]
    assert view["partner"]["aspirations"] == {"hopes": "", "commitment": 4}  # choices and scales stay
    assert view["comparison"] is not None
    [goal] = view["plan"]["goals"]
    assert [update["note"] for update in goal["updates"]] == ["", "mentor progress"]
    assert view["plan"]["agreements"] == {"communication": ""}
    # The erased person's id is gone from what the partner sees too.
    assert str(scenario.mentee) not in str(view)
    # And the erased person's own token no longer finds anything of theirs.
    former = token(runtime, scenario.base.tenant, person=scenario.mentee)
    assert (await ok(client.get("/v1/me/pulses", headers=former)))["items"] == []
    assert (await client.get(url, headers=former)).status_code == 404


async def test_late_events_naming_an_erased_person_bring_nothing_of_theirs_back(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    await apply(runtime, erased(scenario))
    tenant, mentee = scenario.base.tenant, scenario.mentee
    # A match feedback had not seen yet, a check-in of a known one, a replayed snapshot and enrolment.
    unseen = People(tenant, scenario.base.program, uuid4(), mentee, uuid4())
    await apply(
        runtime,
        samples.profile_updated(tenant_id=tenant, person_id=mentee, campus_id=CAMPUS_A, version=2),
        enrolment(scenario.base, mentee, "mentee"),
        accepted(unseen, NOW - timedelta(days=1)),
        check_in_due(unseen, NOW - timedelta(hours=1)),
        check_in_due(scenario.first, NOW - timedelta(hours=1)),
    )
    assert await rows_containing(runtime, str(mentee)) == []
    # The mentor of the new match still has their pulse; the erased side's stands for nobody.
    mentor = token(runtime, tenant, person=unseen.mentor)
    assert len((await ok(client.get("/v1/me/pulses", headers=mentor)))["items"]) == 1


async def late_matches_of_the_erased(runtime: Runtime, scenario: Program) -> list[People]:
    """Two matches of the erased mentee that feedback sees only after the erasure (matching's topic lagged behind
    profiles'), with two new mentors; one gets a check-in too."""
    late = [People(scenario.base.tenant, scenario.base.program, uuid4(), scenario.mentee, uuid4()) for _ in range(2)]
    await apply(
        runtime,
        *(accepted(match, NOW - timedelta(days=1)) for match in late),
        check_in_due(late[0], NOW - timedelta(hours=1)),
    )
    return late


async def mentee_ids_of(runtime: Runtime, matches: list[People]) -> set[UUID]:
    engine = runtime.engine
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT mentee_id FROM matches WHERE match_id = ANY(:ids)"), {"ids": [m.match for m in matches]}
        )
        return set(found.scalars())


async def test_late_matches_of_an_erased_person_stand_under_their_erasures_one_replacement_id(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    await apply(runtime, erased(scenario))

    late = await late_matches_of_the_erased(runtime, scenario)

    assert await rows_containing(runtime, str(scenario.mentee)) == []
    # The mentee of all four matches is one person: the erasure's replacement id in each.
    assert len(await mentee_ids_of(runtime, [scenario.first, scenario.second, *late])) == 1
    # So the report counts five people (the mentee and four mentors), not a new person per late match.
    [total] = [row for row in (await report(client, runtime, scenario))["rows"] if row["breakdown"] == []]
    assert total["participants"] == 5


async def test_late_matches_of_a_person_erased_before_tombstones_kept_the_replacement_share_one_id(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    await apply(runtime, erased(scenario))
    async with runtime.engine.begin() as conn:  # as a tombstone written before revision 0008 is
        await conn.execute(text("UPDATE erasures SET replaced_by = NULL"))

    late = await late_matches_of_the_erased(runtime, scenario)

    assert await rows_containing(runtime, str(scenario.mentee)) == []
    # The erasure's own id is lost; the late matches are still one person between them, not one each.
    [replacement] = await mentee_ids_of(runtime, late)
    assert replacement not in await mentee_ids_of(runtime, [scenario.first])


async def test_a_check_in_due_after_the_erasure_opens_no_pulse_for_the_erased_side(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    scenario = await seeded(runtime, client)
    await apply(runtime, erased(scenario))
    later = uuid4()
    # The same check-in again under a new event id (the inbox lets it through), and a new check-in of the match.
    await apply(
        runtime,
        check_in_due(scenario.first, NOW - timedelta(hours=2), scenario.check_ins[0]),
        check_in_due(scenario.first, NOW - timedelta(hours=1), later),
    )
    sql = "SELECT count(*) FROM pulses WHERE check_in_id = :check_in AND role = :role"
    assert await count(runtime, sql, check_in=scenario.check_ins[0], role=MENTEE) == 1
    assert await count(runtime, sql, check_in=scenario.check_ins[0], role=MENTOR) == 1
    # The erased side's pulse would stand for nobody: only the mentor's opens.
    assert await count(runtime, sql, check_in=later, role=MENTEE) == 0
    assert await count(runtime, sql, check_in=later, role=MENTOR) == 1


@pytest.mark.parametrize("domain", ["as at the revision", "erasure changed later"])
async def test_people_erased_before_erasure_forgot_them_are_forgotten_by_the_migration_whatever_the_domain_becomes(
    database_url: str, domain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if domain == "erasure changed later":
        # A later domain that forgets agreements differently (here: not at all) must not change what 0006 does.
        monkeypatch.setattr("services.feedback.domain.agreement.forget_party", lambda agreement, *_: agreement)
    config = alembic_config(DEFINITION.migrations_dir, database_url)
    await asyncio.to_thread(command.upgrade, config, "0005")
    tenant, program_id, match_id, person, partner = uuid4(), uuid4(), uuid4(), uuid4(), uuid4()
    # What the old erasure left: the people row marked erased, the id everywhere, the plan they recorded.
    agreement = ExpectationsAgreement(match_id=match_id, party_ids=(partner, person))
    for party in (partner, person):
        answers = AgreementAnswers.model_validate(agreement_answers("old"))
        agreement = submit_answers(agreement, party, answers, NOW)
    updates = tuple(ProgressUpdate(percent=10, recorded_at=NOW, recorded_by=party) for party in (person, partner))
    goal = PlanGoal(goal_id=uuid4(), text="secret-plan goal", updates=updates)
    plan = AgreedPlan(goals=(goal,), recorded_at=NOW, recorded_by=person)
    agreement = erase_text_of(agreement.model_copy(update={"plan": plan}), person)
    rows = {
        "people": {"person_id": person, "tenant_id": tenant, "version": 4, "erased": True},
        "matches": {
            "match_id": match_id,
            "tenant_id": tenant,
            "program_id": program_id,
            "mentor_id": partner,
            "mentee_id": person,
            "started_on": NOW.date(),
            "health_reasons": f'[{{"code": "partner_silent", "detail": "", "party_id": "{person}"}}]',
        },
        "pulses": {
            "pulse_id": uuid4(),
            "tenant_id": tenant,
            "program_id": program_id,
            "match_id": match_id,
            "check_in_id": uuid4(),
            "respondent_id": person,
            "role": 1,
            "opened_at": NOW,
            "closes_at": NOW,
            "submitted_at": NOW,
            "scores": '{"usefulness": 4}',
        },
        "surveys": {"match_id": match_id, "respondent_id": person, "tenant_id": tenant, "role": 1, "before_score": 3.0},
        "agreements": {
            "match_id": match_id,
            "tenant_id": tenant,
            "document": agreement.model_dump_json(),
            "version": 3,
        },
    }
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for table, values in rows.items():
                columns = ", ".join(values)
                await conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES (:{', :'.join(values)})"), values)
        assert "agreements.document" in await rows_containing(engine, str(person))

        await asyncio.to_thread(command.upgrade, config, "head")

        assert await rows_containing(engine, str(person)) == []
        assert await rows_containing(engine, "secret-plan") == []
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM erasures"))).scalar_one() == 1
            mentee = (await conn.execute(text("SELECT mentee_id FROM matches"))).scalar_one()
            # One replacement id for the person across tables, so reports still count them as one person.
            assert (await conn.execute(text("SELECT respondent_id FROM pulses"))).scalar_one() == mentee
            assert (await conn.execute(text("SELECT respondent_id FROM surveys"))).scalar_one() == mentee
            document = (await conn.execute(text("SELECT document FROM agreements"))).scalar_one()
        assert document == forget_party(agreement, person, mentee).model_dump(mode="json"), "as the domain's erasure"
    finally:
        await engine.dispose()


async def test_the_migration_gives_pulses_of_people_erased_before_random_ids_and_keeps_one_pulse_per_side(
    database_url: str,
) -> None:
    config = alembic_config(DEFINITION.migrations_dir, database_url)
    await asyncio.to_thread(command.upgrade, config, "0006")
    tenant, program_id, match_id, check_in, person, partner = (uuid4() for _ in range(6))
    replacement = uuid4()  # what an erasure before 0007 left in place of `person`, the pulse id unchanged

    def pulse(pulse_id: UUID, respondent: UUID, role: int, submitted: bool) -> dict[str, Any]:
        return {
            "pulse_id": pulse_id,
            "tenant_id": tenant,
            "program_id": program_id,
            "match_id": match_id,
            "check_in_id": check_in,
            "respondent_id": respondent,
            "role": role,
            "opened_at": NOW,
            "closes_at": NOW,
            "submitted_at": NOW if submitted else None,
        }

    erased_pulse = uuid5(PULSE_ID_NAMESPACE_BEFORE, f"{check_in}:{person}")
    partners_pulse = uuid5(PULSE_ID_NAMESPACE_BEFORE, f"{check_in}:{partner}")
    rows = [
        pulse(partners_pulse, partner, MENTOR, submitted=False),
        pulse(erased_pulse, replacement, MENTEE, submitted=True),
        # A late CheckInDue opened a second one for the erased side (derived from the replacement id).
        pulse(uuid5(PULSE_ID_NAMESPACE_BEFORE, f"{check_in}:{replacement}"), replacement, MENTEE, submitted=False),
    ]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO pulses (pulse_id, tenant_id, program_id, match_id, check_in_id, respondent_id, role,"
                    " opened_at, closes_at, submitted_at) VALUES (:pulse_id, :tenant_id, :program_id, :match_id,"
                    " :check_in_id, :respondent_id, :role, :opened_at, :closes_at, :submitted_at)"
                ),
                rows,
            )

        await asyncio.to_thread(command.upgrade, config, "head")

        assert await rows_containing(engine, str(erased_pulse)) == []
        async with engine.connect() as conn:
            kept = (
                await conn.execute(text("SELECT pulse_id, role, submitted_at IS NOT NULL FROM pulses ORDER BY role"))
            ).all()
        [(mentor_pulse, _, _), (mentee_pulse, _, answered)] = kept
        assert mentor_pulse == partners_pulse  # a living person's pulse keeps the id they may hold
        assert answered, "the answered pulse stays, the duplicate goes"
        assert mentee_pulse not in {row["pulse_id"] for row in rows}
    finally:
        await engine.dispose()


async def _applied_at_the_same_time(runtime: Runtime, first: EventData, second: EventData) -> None:
    """`first` applied in a transaction left open while `second` is applied in another (two replicas of the
    consumer at once); `first` commits once `second` has had time to do all it can without waiting for it."""
    handle = make_handler()
    async with runtime.sessions() as session, session.begin():
        await handle(session, EventEnvelope.wrap(first))

        async def apply_second() -> None:
            async with runtime.sessions() as other, other.begin():
                await handle(other, EventEnvelope.wrap(second))

        later = asyncio.create_task(apply_second())
        await asyncio.wait({later}, timeout=1.0)  # done by then unless it waits for `first`
    await asyncio.wait_for(later, timeout=10)


@pytest.mark.parametrize("erasure_first", [False, True], ids=["match-event-first", "erasure-first"])
@pytest.mark.parametrize("naming", ["new match", "check-in of a known match"])
async def test_an_erasure_applied_at_the_same_time_as_an_event_naming_the_person_in_a_match_leaves_no_id(
    runtime: Runtime, erasure_first: bool, naming: str
) -> None:
    base = People.fresh()
    await apply(runtime, program(base), profile(base.tenant, base.mentee, CAMPUS_A))
    if naming == "new match":
        event = accepted(base, NOW - timedelta(days=1))
    else:  # feedback knows the match; the check-in opens a pulse for each party, with the party ids stored
        await apply(runtime, accepted(base, NOW - timedelta(days=1)))
        event = check_in_due(base, NOW - timedelta(hours=1))
    erasure = samples.profile_erased(tenant_id=base.tenant, person_id=base.mentee, erased_at=NOW)
    first, second = (erasure, event) if erasure_first else (event, erasure)

    await _applied_at_the_same_time(runtime, first, second)

    assert await rows_containing(runtime, str(base.mentee)) == []


@pytest.mark.parametrize("erasure_first", [False, True], ids=["check-in-first", "erasure-first"])
async def test_a_check_in_due_of_a_known_match_applied_at_the_same_time_as_an_erasure_leaves_no_id_or_pulse(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, erasure_first: bool
) -> None:
    """Finer than the test above: the CheckInDue stops after opening its pulses and before it locks the match row
    (its health assessment), and the erasure stops after writing its tombstone and before reading the matches.
    Whatever runs in those windows, no pulse or row may keep the erased person's id."""
    base = People.fresh()
    await apply(runtime, program(base), profile(base.tenant, base.mentee, CAMPUS_A))
    await apply(runtime, accepted(base, NOW - timedelta(days=1)))
    check_in = check_in_due(base, NOW - timedelta(hours=1))
    erasure = samples.profile_erased(tenant_id=base.tenant, person_id=base.mentee, erased_at=NOW)
    handle = make_handler()
    paused: dict[str, asyncio.Event] = {"check-in": asyncio.Event(), "erasure": asyncio.Event()}
    reached: dict[str, asyncio.Event] = {"check-in": asyncio.Event(), "erasure": asyncio.Event()}
    tasks: dict[str, asyncio.Task[None]] = {}

    def pausing(name: str, original: Any) -> Any:
        async def pause_then_run(*args: Any, **kwargs: Any) -> Any:
            if asyncio.current_task() is tasks.get(name) and not reached[name].is_set():
                reached[name].set()
                await paused[name].wait()
            return await original(*args, **kwargs)

        return pause_then_run

    monkeypatch.setattr("services.feedback.application.recompute_health", pausing("check-in", app.recompute_health))
    monkeypatch.setattr("services.feedback.adapters.repository.record_erasure", pausing("erasure", repo.record_erasure))

    async def applied(event: EventData) -> None:
        async with runtime.sessions() as session, session.begin():
            await handle(session, EventEnvelope.wrap(event))

    async def started(name: str, event: EventData) -> None:
        tasks[name] = asyncio.create_task(applied(event))
        # At its pause by then, unless it waits for the other's transaction.
        at_pause = asyncio.create_task(reached[name].wait())
        await asyncio.wait({tasks[name], at_pause}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        at_pause.cancel()

    first, second = ("erasure", "check-in") if erasure_first else ("check-in", "erasure")
    await started(first, erasure if first == "erasure" else check_in)
    await started(second, erasure if second == "erasure" else check_in)
    # The erasure goes on first, in the check-in's window: done within the second unless it waits for the check-in.
    for name in ("erasure", "check-in"):
        paused[name].set()
        await asyncio.wait({tasks[name]}, timeout=1.0)
    await asyncio.wait_for(asyncio.gather(*tasks.values()), timeout=10)

    assert await rows_containing(runtime, str(base.mentee)) == []
