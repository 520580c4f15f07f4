"""Each validation rule answers 422 and names the offending field."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from services.profiles.adapters.orm import participants
from services.profiles.tests.integration.conftest import Api, Tenant, enrolled_in, profile, program

pytestmark = pytest.mark.integration

LONG_NAME = "x" * 201
WINDOW = {"weekday": "monday", "start": "09:00:00", "end": "11:00:00"}

PROFILE_RULES: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    ("display name empty", {"display_name": ""}, ("display_name",)),
    ("display name over 200 characters", {"display_name": LONG_NAME}, ("display_name",)),
    ("email without a domain", {"email": "ada@localhost"}, ("email",)),
    ("email that is not an address", {"email": "not an email"}, ("email",)),
    ("email over 254 characters", {"email": "a" * 250 + "@example.org"}, ("email",)),
    ("time zone that does not exist", {"time_zone": "Mars/Olympus_Mons"}, ("time_zone",)),
    ("role level above 100", {"role_level": 101}, ("role_level",)),
    ("role level below 0", {"role_level": -1}, ("role_level",)),
    ("tenure start in the year 3020", {"tenure_start": "3020-01-01"}, ("tenure_start",)),
    ("tenure start over a year ahead", {"tenure_start": (date.today() + timedelta(days=400)).isoformat()}, ("tenure_start",)),
    ("tenure start before 1900", {"tenure_start": "1899-12-31"}, ("tenure_start",)),
    ("more than 50 interests", {"interests": [f"tag{i}" for i in range(51)]}, ("interests",)),
    ("duplicate interests", {"interests": ["chess", "chess"]}, ("interests",)),
    ("interest tag over 64 characters", {"interests": ["x" * 65]}, ("interests", 0)),
    ("language tag that is not BCP 47", {"languages": ["english!"]}, ("languages", 0)),
    ("goal text over 2000 characters", {"goals": {"text": "x" * 2001}}, ("goals", "text")),
    ("availability ending before it starts", {"availability": [WINDOW | {"end": "08:00:00"}]}, ("availability", 0)),
    ("overlapping availability", {"availability": [WINDOW, WINDOW | {"start": "10:00:00", "end": "12:00:00"}]}, ("availability",)),
    ("availability on a day that does not exist", {"availability": [WINDOW | {"weekday": "caturday"}]}, ("availability", 0, "weekday")),
    ("more than 100 availability windows", {"availability": [WINDOW] * 101}, ("availability",)),
    ("affinity attributes without consent", {"affinity_attributes": ["caregiver"]}, ("affinity_attributes",)),
    ("an unknown field", {"shoe_size": 42}, ("shoe_size",)),
    ("a campus of no one", {"campus_id": str(uuid.uuid4())}, ("campus_id",)),
    ("a manager who is no participant", {"manager_person_id": str(uuid.uuid4())}, ("manager_person_id",)),
    ("blocking someone who is no participant", {"blocked_person_ids": [str(uuid.uuid4())]}, ("blocked_person_ids", 0)),
]  # fmt: skip


def names_field(response: Any, loc: tuple[str | int, ...]) -> bool:
    expected = ["body", *loc]
    return any(detail["loc"][: len(expected)] == expected for detail in response.json()["detail"])


@pytest.mark.parametrize(("rule", "change", "loc"), PROFILE_RULES, ids=[r[0] for r in PROFILE_RULES])
async def test_an_invalid_profile_is_refused_naming_the_field(
    api: Api, tenant: Tenant, rule: str, change: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    response = await api.client.post(
        "/v1/participants",
        json=profile("v@example.org") | change | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    assert response.status_code == 422, rule
    assert names_field(response, loc), response.json()


async def test_a_person_cannot_block_themselves(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/v1/participants/{tenant.person_id}",
        json={"blocked_person_ids": [str(tenant.person_id)]},
        headers={**tenant.participant, "If-Match": '"1"'},
    )
    assert response.status_code == 422
    assert names_field(response, ("blocked_person_ids",))


async def test_a_manager_or_blocked_person_erased_later_does_not_stop_other_edits(api: Api, tenant: Tenant) -> None:
    staff = tenant.operator
    manager = await api.client.post("/v1/participants", json=profile("boss@example.org"), headers=staff)
    manager_id = manager.json()["id"]
    named = await api.client.post(
        "/v1/participants",
        json=profile("report@example.org", manager_person_id=manager_id, blocked_person_ids=[manager_id]),
        headers=staff,
    )
    assert named.status_code == 201, named.text
    erased = await api.client.delete(f"/v1/participants/{manager_id}", headers={**staff, "If-Match": '"1"'})
    assert erased.status_code == 204
    renamed = await api.client.patch(
        f"/v1/participants/{named.json()['id']}",
        json={"display_name": "Ada Renamed"},
        headers={**staff, "If-Match": named.headers["ETag"]},
    )
    assert renamed.status_code == 200, renamed.text
    # Naming the erased person anew is refused like any unknown id.
    again = await api.client.post(
        "/v1/participants", json=profile("new@example.org", manager_person_id=manager_id), headers=staff
    )
    assert again.status_code == 422
    assert names_field(again, ("manager_person_id",))


async def test_a_patch_breaking_a_rule_across_fields_names_the_field(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/v1/participants/{tenant.person_id}",
        json={"affinity_attributes": ["first_generation"]},
        headers={**tenant.participant, "If-Match": '"1"'},
    )
    assert response.status_code == 422
    assert names_field(response, ("affinity_attributes",))


async def test_a_coordinators_patch_of_tenure_start_into_the_future_is_refused_naming_it(
    api: Api, tenant: Tenant
) -> None:
    url = f"/v1/participants/{tenant.person_id}"
    response = await api.client.patch(
        url, json={"tenure_start": "3020-01-01"}, headers={**tenant.coordinator, "If-Match": '"1"'}
    )
    assert response.status_code == 422
    assert names_field(response, ("tenure_start",))
    today = await api.client.patch(
        url, json={"tenure_start": date.today().isoformat()}, headers={**tenant.coordinator, "If-Match": '"1"'}
    )
    assert today.status_code == 200, today.text


async def test_a_coordinator_registers_an_upcoming_starter_up_to_a_year_ahead(api: Api, tenant: Tenant) -> None:
    # Onboarding ("buddy") programs match new hires with peers before their first day.
    starts = (date.today() + timedelta(days=300)).isoformat()
    created = await api.client.post(
        "/v1/participants",
        json=profile("starter@example.org", tenure_start=starts) | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    assert created.status_code == 201, created.text
    assert created.json()["tenure_start"] == starts
    moved = await api.client.patch(
        f"/v1/participants/{tenant.person_id}",
        json={"tenure_start": starts},
        headers={**tenant.coordinator, "If-Match": '"1"'},
    )
    assert moved.status_code == 200, moved.text


async def _store_tenure_start(api: Api, person_id: uuid.UUID, value: date) -> None:
    """Writes around the API, as a row stored before today's rule would be."""
    async with api.runtime.sessions() as session, session.begin():
        await session.execute(update(participants).where(participants.c.id == person_id).values(tenure_start=value))


@pytest.mark.parametrize("stored", [date(3020, 1, 1), date(1850, 6, 1)], ids=["far future", "before 1900"])
async def test_a_stored_tenure_start_outside_the_rule_does_not_block_a_save_that_sends_it_back_unchanged(
    api: Api, tenant: Tenant, stored: date
) -> None:
    await _store_tenure_start(api, tenant.person_id, stored)
    url = f"/v1/participants/{tenant.person_id}"
    read = (await api.client.get(url, headers=tenant.participant)).json()
    body = {k: v for k, v in read.items() if k not in ("id", "tenant_id", "version", "needs", "offers")}
    # The participant may not change tenure_start, so they must send it back as stored: that cannot be refused.
    replaced = await api.client.put(
        url, json=body | {"interests": ["chess"]}, headers={**tenant.participant, "If-Match": '"1"'}
    )
    assert replaced.status_code == 200, replaced.text
    patched = await api.client.patch(
        url,
        json={"tenure_start": stored.isoformat(), "languages": ["de"]},
        headers={**tenant.participant, "If-Match": '"2"'},
    )
    assert patched.status_code == 200, patched.text
    by_staff = await api.client.put(
        url, json=body | {"display_name": "Ada R."}, headers={**tenant.coordinator, "If-Match": '"3"'}
    )
    assert by_staff.status_code == 200, by_staff.text
    # Setting another value outside the rule is still refused, to a coordinator too.
    moved = await api.client.patch(
        url, json={"tenure_start": "3021-01-01"}, headers={**tenant.coordinator, "If-Match": '"4"'}
    )
    assert moved.status_code == 422
    assert names_field(moved, ("tenure_start",))


async def test_a_tenure_start_stored_before_the_rule_still_reads_back_and_can_be_corrected(
    api: Api, tenant: Tenant
) -> None:
    await _store_tenure_start(api, tenant.person_id, date(3020, 1, 1))
    url = f"/v1/participants/{tenant.person_id}"
    read = await api.client.get(url, headers=tenant.participant)
    assert read.status_code == 200, read.text
    assert read.json()["tenure_start"] == "3020-01-01"
    listed = await api.client.get("/v1/participants", headers=tenant.coordinator)
    assert listed.status_code == 200, listed.text
    fixed = await api.client.patch(
        url, json={"tenure_start": "2022-09-01"}, headers={**tenant.coordinator, "If-Match": '"1"'}
    )
    assert fixed.status_code == 200, fixed.text


PROGRAM_RULES: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    ("name over 200 characters", {"name": LONG_NAME}, ("name",)),
    ("ending before it starts", {"ends_on": "2025-01-01"}, ("ends_on",)),
    ("ending at the end of the calendar", {"ends_on": "9999-12-31"}, ("ends_on",)),
    ("starting before 2000", {"starts_on": "1999-12-31"}, ("starts_on",)),
    ("running over ten years", {"ends_on": "2036-07-11"}, ("ends_on",)),
    ("short lists of 9 proposals", {"matching_policy": {"proposals_per_mentee": 9}}, ("matching_policy", "proposals_per_mentee")),
    ("all factor weights zero", {"matching_policy": {"weights": dict.fromkeys(
        ["needs_coverage", "interests", "goals", "skills", "working_style", "availability", "background_similarity",
         "seniority"], 0)}}, ("matching_policy", "weights")),
    ("an empty function catalogue", {"function_catalogue": []}, ("function_catalogue",)),
    ("a function listed twice", {"function_catalogue": [
        {"key": "a", "label": "A", "domain": "academic", "is_psychosocial": False},
        {"key": "a", "label": "A again", "domain": "personal", "is_psychosocial": True}]}, ("function_catalogue",)),
    ("a function key with spaces", {"function_catalogue": [
        {"key": "A B", "label": "A", "domain": "academic", "is_psychosocial": False}]}, ("function_catalogue", 0, "key")),
    ("mentor capacity above 20", {"default_mentor_capacity": 21}, ("default_mentor_capacity",)),
    ("a campus of another organisation", {"campus_ids": [str(uuid.uuid4())]}, ("campus_ids",)),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "change", "loc"), PROGRAM_RULES, ids=[r[0] for r in PROGRAM_RULES])
async def test_an_invalid_program_is_refused_naming_the_field(
    api: Api, tenant: Tenant, rule: str, change: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    response = await api.client.post("/v1/programs", json=program() | change, headers=tenant.operator)
    assert response.status_code == 422, rule
    assert names_field(response, loc), response.json()


ENROLMENT_RULES: list[tuple[str, dict[str, Any], tuple[str | int, ...]]] = [
    ("a mentee taking mentees", {"role": "mentee", "capacity": 2}, ("capacity",)),
    ("capacity above 20", {"role": "mentor", "capacity": 21}, ("capacity",)),
    ("an unknown role", {"role": "guru"}, ("role",)),
    ("a person of no one", {"role": "mentor", "person_id": str(uuid.uuid4())}, ("person_id",)),
]


@pytest.mark.parametrize(("rule", "change", "loc"), ENROLMENT_RULES, ids=[r[0] for r in ENROLMENT_RULES])
async def test_an_invalid_enrolment_is_refused_naming_the_field(
    api: Api, tenant: Tenant, rule: str, change: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    person = await api.client.post("/v1/participants", json=profile("e@example.org"), headers=tenant.operator)
    body = {"person_id": person.json()["id"]} | change
    response = await api.client.post(
        f"/v1/programs/{tenant.program_id}/enrolments", json=body, headers=tenant.coordinator
    )
    assert response.status_code == 422, rule
    assert names_field(response, loc), response.json()
