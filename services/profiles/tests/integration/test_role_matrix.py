"""Every endpoint × every kind of caller: allowed (2xx) or refused with the documented status.

Callers: no token; the organisation's operator; the program's coordinator; a coordinator of another program of
the same organisation; the participant the request is about ("self"); and a coordinator and an operator of
ANOTHER organisation whose token even lists the program's id: tenant isolation must win over claims (404).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.profiles.entrypoints.api import build_app
from services.profiles.tests.integration.conftest import Api, Tenant, enrolled_in, make_tenant, profile, program
from shared.auth.principal import Role
from tests.isolation import KIT_ROUTES, RouteKey, api_routes

pytestmark = pytest.mark.integration

ROLES = ("anonymous", "operator", "coordinator", "other_coordinator", "participant", "foreign_coordinator",
         "foreign_operator", "foreign_participant")  # fmt: skip
OK = "ok"


@dataclass
class Scene:
    api: Api
    a: Tenant
    b: Tenant
    other_program_id: uuid.UUID


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    if_match: str | None = None
    self_person: uuid.UUID | None = None  # who "participant" is for this call
    headers: dict[str, str] = field(default_factory=dict)


def caller(scene: Scene, role: str, call: Call) -> dict[str, str]:
    api, a, b = scene.api, scene.a, scene.b
    tokens: dict[str, Callable[[], dict[str, str]]] = {
        "anonymous": dict,
        "operator": lambda: a.operator,
        "coordinator": lambda: a.coordinator,
        "other_coordinator": lambda: api.token(a.id, Role.COORDINATOR, programs=(scene.other_program_id,)),
        "participant": lambda: api.token(a.id, Role.PARTICIPANT, person_id=call.self_person or a.person_id),
        "foreign_coordinator": lambda: api.token(b.id, Role.COORDINATOR, programs=(b.program_id, a.program_id)),
        "foreign_operator": lambda: b.operator,
        # A participant of B whose token carries the person id of A's participant: the tenant decides, not the id.
        "foreign_participant": lambda: api.token(b.id, Role.PARTICIPANT, person_id=call.self_person or a.person_id),
    }
    return tokens[role]()


async def fresh_person(scene: Scene) -> tuple[uuid.UUID, uuid.UUID]:
    """A new participant of organisation A enrolled in the program: (person id, enrolment id)."""
    api, a = scene.api, scene.a
    person = await api.client.post(
        "/v1/participants", json=profile(f"{uuid.uuid4().hex[:8]}@example.org"), headers=a.operator
    )
    person_id = uuid.UUID(person.json()["id"])
    enrolment = await api.client.post(
        f"/v1/programs/{a.program_id}/enrolments",
        json={"person_id": str(person_id), "role": "mentor"},
        headers=a.operator,
    )
    return person_id, uuid.UUID(enrolment.json()["id"])


async def enrol(api: Api, program_id: uuid.UUID, person_id: uuid.UUID, headers: dict[str, str]) -> uuid.UUID:
    """Enrol the person as a mentee: the new enrolment's id."""
    enrolled = await api.client.post(
        f"/v1/programs/{program_id}/enrolments", json={"person_id": str(person_id), "role": "mentee"}, headers=headers
    )
    assert enrolled.status_code == 201, enrolled.text
    return uuid.UUID(enrolled.json()["id"])


async def fresh_organisation(scene: Scene) -> str:
    root = scene.api.token(uuid.uuid4(), Role.OPERATOR)
    return str((await scene.api.client.post("/v1/organisations", json={"name": "Empty"}, headers=root)).json()["id"])


async def fresh_campus(scene: Scene) -> str:
    created = await scene.api.client.post("/v1/campuses", json={"name": uuid.uuid4().hex}, headers=scene.a.operator)
    return str(created.json()["id"])


async def an_import(scene: Scene) -> str:
    response = await scene.api.client.post(
        f"/v1/programs/{scene.a.program_id}/imports",
        content=b"email,display_name,tenure_start,time_zone\nz@example.org,Z,2020-01-01,UTC\n",
        headers={**scene.a.operator, "Content-Type": "text/csv"},
    )
    return str(response.json()["id"])


CSV = b"email,display_name,tenure_start,time_zone\nm@example.org,M,2020-01-01,UTC\n"
Maker = Callable[[Scene], Awaitable[Call]]


async def _person_call(scene: Scene, method: str, suffix: str = "", json: Any = None) -> Call:
    person_id, _ = await fresh_person(scene)
    return Call(method, f"/v1/participants/{person_id}{suffix}", json=json, if_match='"1"', self_person=person_id)


async def _replace_person(scene: Scene, **changes: Any) -> Call:
    """PUT of a fresh person's whole profile as read, with `changes`: the organisation's fields kept unless changed."""
    person_id, _ = await fresh_person(scene)
    read = await scene.api.client.get(f"/v1/participants/{person_id}", headers=scene.a.operator)
    body = {k: v for k, v in read.json().items() if k not in ("id", "tenant_id", "version", "needs", "offers")}
    return Call("PUT", f"/v1/participants/{person_id}", json=body | changes, if_match='"1"', self_person=person_id)


async def _enrolment_call(scene: Scene, method: str, json: Any = None) -> Call:
    person_id, enrolment_id = await fresh_person(scene)
    return Call(method, f"/v1/enrolments/{enrolment_id}", json=json, if_match='"1"', self_person=person_id)


def fixed(method: str, path: str, **kw: Any) -> Maker:
    async def make(scene: Scene) -> Call:
        values = {"a": scene.a, "b": scene.b}
        return Call(method, path.format(**values), **kw)

    return make


def made(factory: Callable[[Scene], Awaitable[Call]]) -> Maker:
    return factory


async def _org(scene: Scene, method: str, json: Any = None) -> Call:
    return Call(method, f"/v1/organisations/{await fresh_organisation(scene)}", json=json, if_match='"1"')


async def _campus(scene: Scene, method: str, json: Any = None) -> Call:
    return Call(method, f"/v1/campuses/{await fresh_campus(scene)}", json=json, if_match='"1"')


async def _program(scene: Scene, method: str, json: Any = None) -> Call:
    created = await scene.api.client.post("/v1/programs", json=program(), headers=scene.a.operator)
    program_id = created.json()["id"]
    # The coordinator of the matrix coordinates this fresh program too: re-point the scene's tenant at it.
    scene.a.program_id = uuid.UUID(program_id)
    scene.a.coordinator = scene.api.token(scene.a.id, Role.COORDINATOR, programs=(scene.a.program_id,))
    person_id, _ = await fresh_person(scene)
    return Call(method, f"/v1/programs/{program_id}", json=json, if_match='"1"', self_person=person_id)


def allowed(*refusals: tuple[str, int | str]) -> dict[str, str | int]:
    """Everyone but the anonymous caller is allowed, except the given (role, status) refusals; a participant of
    another tenant is refused as A's participant is (403 by role), else with a 404."""
    table: dict[str, str | int] = {"anonymous": 401} | dict.fromkeys(ROLES[1:], OK) | dict(refusals)
    if "foreign_participant" not in dict(refusals):
        table["foreign_participant"] = 403 if table["participant"] == 403 else 404
    return table


OPERATORS_ONLY = allowed(
    ("coordinator", 403), ("other_coordinator", 403), ("participant", 403), ("foreign_coordinator", 403)
)
STAFF_OF_A = allowed(("participant", 403), ("foreign_coordinator", 404), ("foreign_operator", 404))
SELF_OR_STAFF_OF_A = allowed(("foreign_coordinator", 404), ("foreign_operator", 404))
# A person's own routes: a coordinator reaches only people enrolled in their programs (a 404 for the others).
SELF_OR_PROGRAM_STAFF_OF_A = SELF_OR_STAFF_OF_A | {"other_coordinator": 404}
ANY_OF_A = allowed(("foreign_coordinator", 404), ("foreign_operator", 404))
PROGRAM_STAFF = allowed(
    ("other_coordinator", 404), ("participant", 403), ("foreign_coordinator", 404), ("foreign_operator", 404)
)
PROGRAM_READERS = allowed(("other_coordinator", 404), ("foreign_coordinator", 404), ("foreign_operator", 404))
STAFF_OWN_TENANT = allowed(("participant", 403))

PATCH_ME = {"interests": ["chess"], "goals": {"tags": ["writing"]}}
# Fields the organisation sets (HR import or a coordinator): the participant may not change them, staff may.
PATCH_ORGANISATION_FIELDS = {"role_level": 99, "team": "Chemistry"}
ORGANISATION_FIELDS_OF_A = SELF_OR_PROGRAM_STAFF_OF_A | {"participant": 403}
MATRIX: list[tuple[str, Maker, dict[str, str | int]]] = [
    ("create organisation", fixed("POST", "/v1/organisations", json={"name": "New"}), OPERATORS_ONLY),
    ("list organisations", fixed("GET", "/v1/organisations"), OPERATORS_ONLY),
    ("read organisation", fixed("GET", "/v1/organisations/{a.id}"), OPERATORS_ONLY),
    ("update organisation", lambda s: _org(s, "PATCH", {"name": "Renamed"}), OPERATORS_ONLY),
    ("delete organisation", lambda s: _org(s, "DELETE"), OPERATORS_ONLY),
    ("create campus", lambda s: _post("/v1/campuses", {"name": uuid.uuid4().hex}), STAFF_OWN_TENANT),
    ("list campuses", fixed("GET", "/v1/campuses"), allowed(("foreign_participant", OK))),
    ("read campus", fixed("GET", "/v1/campuses/{a.campus_id}"), ANY_OF_A),
    ("replace campus", lambda s: _campus(s, "PUT", {"name": uuid.uuid4().hex}), STAFF_OF_A),
    ("delete campus", lambda s: _campus(s, "DELETE"), STAFF_OF_A),
    ("create program", fixed("POST", "/v1/programs", json=program()), OPERATORS_ONLY),
    ("list programs", fixed("GET", "/v1/programs"), allowed(("foreign_participant", OK))),
    ("read program", lambda s: _program(s, "GET"), PROGRAM_READERS),
    ("read program catalogue", lambda s: _program(s, "GET"), PROGRAM_READERS),
    ("replace program", lambda s: _program(s, "PUT", program(name="Replaced")), PROGRAM_STAFF),
    ("update program", lambda s: _program(s, "PATCH", {"check_in_cadence_days": 21}), PROGRAM_STAFF),
    ("archive program", lambda s: _program(s, "DELETE"),
     allowed(("coordinator", 403), ("other_coordinator", 403), ("participant", 403), ("foreign_coordinator", 403),
             ("foreign_operator", 404))),
    ("default catalogue", fixed("GET", "/v1/function-catalogue"), allowed(("foreign_participant", OK))),
    # Into program A (required of a coordinator): only A's staff may name it.
    ("create participant", lambda s: _post("/v1/participants", profile(f"{uuid.uuid4().hex[:8]}@example.org") | enrolled_in(s.a.program_id)),
     allowed(("participant", 403), ("other_coordinator", 422), ("foreign_coordinator", 422), ("foreign_operator", 422))),
    ("list participants", fixed("GET", "/v1/participants"), STAFF_OWN_TENANT),
    ("read participant", lambda s: _person_call(s, "GET"), SELF_OR_PROGRAM_STAFF_OF_A),
    ("read another participant", fixed("GET", "/v1/participants/{a.person_id}", self_person=uuid.uuid4()),
     allowed(("other_coordinator", 404), ("participant", 404), ("foreign_coordinator", 404),
             ("foreign_operator", 404))),
    ("replace participant", lambda s: _replace_person(s, display_name="Ada Replaced", interests=["chess"]), SELF_OR_PROGRAM_STAFF_OF_A),
    ("replace participant's organisation fields", lambda s: _replace_person(s, email=f"{uuid.uuid4().hex[:6]}@example.org"), ORGANISATION_FIELDS_OF_A),
    ("update participant", lambda s: _person_call(s, "PATCH", json=PATCH_ME), SELF_OR_PROGRAM_STAFF_OF_A),
    ("update participant's organisation fields", lambda s: _person_call(s, "PATCH", json=PATCH_ORGANISATION_FIELDS), ORGANISATION_FIELDS_OF_A),
    ("erase participant", lambda s: _person_call(s, "DELETE"), SELF_OR_PROGRAM_STAFF_OF_A),
    ("read needs", lambda s: _person_call(s, "GET", "/needs"), SELF_OR_PROGRAM_STAFF_OF_A),
    ("replace needs", lambda s: _person_call(s, "PUT", "/needs", {"needs": [{"function_key": "job_search", "level": "important"}]}), SELF_OR_PROGRAM_STAFF_OF_A),
    ("read offers", lambda s: _person_call(s, "GET", "/offers"), SELF_OR_PROGRAM_STAFF_OF_A),
    ("replace offers", lambda s: _person_call(s, "PUT", "/offers", {"offers": ["job_search"]}), SELF_OR_PROGRAM_STAFF_OF_A),
    ("list a person's enrolments", lambda s: _person_call(s, "GET", "/enrolments"), SELF_OR_PROGRAM_STAFF_OF_A),
    ("enrol", lambda s: _new_enrolment(s), PROGRAM_STAFF),
    ("list program enrolments", fixed("GET", "/v1/programs/{a.program_id}/enrolments"), PROGRAM_STAFF),
    ("read enrolment", lambda s: _enrolment_call(s, "GET"), PROGRAM_READERS),
    ("update enrolment", lambda s: _enrolment_call(s, "PATCH", {"capacity": 3}), PROGRAM_STAFF),
    ("withdraw enrolment", lambda s: _enrolment_call(s, "DELETE"), PROGRAM_STAFF),
    ("import CSV", fixed("POST", "/v1/programs/{a.program_id}/imports", content=CSV), PROGRAM_STAFF),
    ("list imports", fixed("GET", "/v1/programs/{a.program_id}/imports"), PROGRAM_STAFF),
    ("read import", lambda s: _import_call(s, ""), PROGRAM_STAFF),
    ("read import errors", lambda s: _import_call(s, "/errors"), PROGRAM_STAFF),
]  # fmt: skip


async def _post(path: str, json: Any) -> Call:
    return Call("POST", path, json=json)


async def _new_enrolment(scene: Scene) -> Call:
    person = await scene.api.client.post(
        "/v1/participants", json=profile(f"{uuid.uuid4().hex[:8]}@example.org"), headers=scene.a.operator
    )
    return Call(
        "POST",
        f"/v1/programs/{scene.a.program_id}/enrolments",
        json={"person_id": person.json()["id"], "role": "mentee"},
    )


async def _import_call(scene: Scene, suffix: str) -> Call:
    return Call("GET", f"/v1/imports/{await an_import(scene)}{suffix}")


@pytest.fixture
async def scene(api: Api) -> Scene:
    a = await make_tenant(api, "A")
    b = await make_tenant(api, "B")
    other = await api.client.post("/v1/programs", json=program(name="Other"), headers=a.operator)
    return Scene(api, a, b, uuid.UUID(other.json()["id"]))


@pytest.mark.parametrize(("endpoint", "make_call", "expected"), MATRIX, ids=[row[0] for row in MATRIX])
async def test_each_caller_is_allowed_or_refused_as_the_table_says(
    scene: Scene, endpoint: str, make_call: Maker, expected: dict[str, str | int]
) -> None:
    outcomes: dict[str, str | int] = {}
    for role in ROLES:
        call = await make_call(scene)  # a fresh target per caller, so one caller's write never hides another's
        if endpoint == "read program catalogue":
            call.path += "/function-catalogue"
        headers = caller(scene, role, call) | call.headers
        if call.if_match:
            headers["If-Match"] = call.if_match
        if call.content is not None:
            headers["Content-Type"] = "text/csv"
        response = await scene.api.client.request(
            call.method, call.path, json=call.json, content=call.content, headers=headers
        )
        outcomes[role] = OK if 200 <= response.status_code < 300 else response.status_code
    assert outcomes == expected


def _route_of(routes: set[RouteKey], method: str, path: str) -> RouteKey | None:
    for route in routes:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route[1]))
        if route[0] == method and re.fullmatch(pattern, path):
            return route
    return None


async def test_every_route_of_the_app_has_a_row_in_the_table(scene: Scene) -> None:
    routes = api_routes(build_app(scene.api.runtime)) - set(KIT_ROUTES)
    covered = set()
    for endpoint, make_call, _ in MATRIX:
        call = await make_call(scene)
        if endpoint == "read program catalogue":
            call.path += "/function-catalogue"
        covered.add(_route_of(routes, call.method, call.path))
    assert sorted(routes - covered) == []


# One new value per field the organisation sets; "{manager}" and "{campus}" are filled in by the test.
ORGANISATION_FIELD_CHANGES: list[tuple[str, Any]] = [
    ("external_id", "HR-424242"),
    ("email", "someone-else@example.org"),
    ("campus_id", "{campus}"),
    ("department", "Chemistry"),
    ("team", "Lab 7"),
    ("manager_person_id", None),  # the walkthrough's case: removing one's manager to be matched with them
    ("reporting_line_id", "line-elsewhere"),
    ("role_level", 99),
    ("tenure_start", "2001-01-01"),
]


async def _managed_person(api: Api, tenant: Tenant) -> tuple[uuid.UUID, dict[str, str]]:
    """A participant whose coordinator set a manager, reporting line and level: (person id, their token)."""
    manager = await api.client.post(
        "/v1/participants",
        json=profile("boss@example.org") | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    person = await api.client.post(
        "/v1/participants",
        json=profile(
            "report@example.org", manager_person_id=manager.json()["id"], reporting_line_id="line-1", role_level=2
        )
        | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    assert person.status_code == 201, person.text
    person_id = uuid.UUID(person.json()["id"])
    return person_id, api.token(tenant.id, Role.PARTICIPANT, person_id=person_id)


@pytest.mark.parametrize(
    ("field_name", "value"), ORGANISATION_FIELD_CHANGES, ids=[c[0] for c in ORGANISATION_FIELD_CHANGES]
)
async def test_a_participant_changing_a_field_the_organisation_sets_is_refused_naming_it(
    api: Api, tenant: Tenant, field_name: str, value: Any
) -> None:
    person_id, me = await _managed_person(api, tenant)
    url = f"/v1/participants/{person_id}"
    value = str(tenant.campus_id) if value == "{campus}" else value
    refused = await api.client.patch(
        url, json={field_name: value, "interests": ["chess"]}, headers={**me, "If-Match": '"1"'}
    )
    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert detail["error"] == "forbidden"
    assert field_name in detail["error_description"]
    assert "coordinator" in detail["error_description"]
    stored = await api.client.get(url, headers=me)
    assert stored.headers["ETag"] == '"1"'  # nothing of the refused write was kept, not even the interests
    by_staff = await api.client.patch(url, json={field_name: value}, headers={**tenant.coordinator, "If-Match": '"1"'})
    assert by_staff.status_code == 200, by_staff.text


async def test_a_participant_refused_for_several_fields_hears_of_each(api: Api, tenant: Tenant) -> None:
    person_id, me = await _managed_person(api, tenant)
    refused = await api.client.patch(
        f"/v1/participants/{person_id}",
        json={"role_level": 99, "manager_person_id": None, "tenure_start": "2001-01-01"},
        headers={**me, "If-Match": '"1"'},
    )
    assert refused.status_code == 403
    description = refused.json()["detail"]["error_description"]
    assert all(name in description for name in ("manager_person_id", "role_level", "tenure_start"))


async def test_a_participant_sending_back_the_organisations_fields_unchanged_may_edit_their_own(
    api: Api, tenant: Tenant
) -> None:
    person_id, me = await _managed_person(api, tenant)
    url = f"/v1/participants/{person_id}"
    read = (await api.client.get(url, headers=me)).json()
    body = {k: v for k, v in read.items() if k not in ("id", "tenant_id", "version", "needs", "offers")}
    replaced = await api.client.put(
        url, json=body | {"interests": ["chess"], "display_name": "Ada R."}, headers={**me, "If-Match": '"1"'}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["interests"] == ["chess"]
    # The same value in another spelling (the email's domain in capitals) is no change either.
    patched = await api.client.patch(
        url,
        json={"role_level": 2, "manager_person_id": read["manager_person_id"], "email": "report@EXAMPLE.org",
              "languages": ["de"]},
        headers={**me, "If-Match": '"2"'},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.json()["languages"] == ["de"]


async def _enrolled_elsewhere(scene: Scene) -> uuid.UUID:
    """A participant of organisation A enrolled as a mentor only in the program the matrix's coordinator does not
    run."""
    api, a = scene.api, scene.a
    person = await api.client.post(
        "/v1/participants", json=profile(f"{uuid.uuid4().hex[:8]}@example.org"), headers=a.operator
    )
    person_id = uuid.UUID(person.json()["id"])
    enrolled = await api.client.post(
        f"/v1/programs/{scene.other_program_id}/enrolments",
        json={"person_id": str(person_id), "role": "mentor"},
        headers=a.operator,
    )
    assert enrolled.status_code == 201, enrolled.text
    return person_id


async def test_a_coordinator_filtering_participants_by_a_program_they_do_not_run_is_refused_naming_it(
    scene: Scene,
) -> None:
    person_id = await _enrolled_elsewhere(scene)
    url = f"/v1/participants?program_id={scene.other_program_id}"

    refused = await scene.api.client.get(url, headers=scene.a.coordinator)
    foreign = await scene.api.client.get(f"/v1/participants?program_id={scene.a.program_id}", headers=scene.b.operator)

    assert refused.status_code == 404, refused.text
    assert "program" in refused.json()["detail"]["error_description"]
    assert foreign.status_code == 404, foreign.text
    by_operator = await scene.api.client.get(url, headers=scene.a.operator)
    assert [item["id"] for item in by_operator.json()["items"]] == [str(person_id)]


async def test_a_coordinators_role_and_status_filters_look_only_at_the_enrolments_of_their_programs(
    scene: Scene,
) -> None:
    person_id = await _enrolled_elsewhere(scene)

    mentors = await scene.api.client.get("/v1/participants?role=mentor", headers=scene.a.coordinator)
    active = await scene.api.client.get("/v1/participants?status=active", headers=scene.a.coordinator)

    assert mentors.status_code == 200, mentors.text
    assert mentors.json()["items"] == []
    assert [item["id"] for item in active.json()["items"]] == [str(scene.a.person_id)]  # enrolled in their program
    by_operator = await scene.api.client.get("/v1/participants?role=mentor", headers=scene.a.operator)
    assert [item["id"] for item in by_operator.json()["items"]] == [str(person_id)]


async def test_a_coordinator_lists_only_people_enrolled_in_their_programs(scene: Scene) -> None:
    api, a = scene.api, scene.a
    elsewhere = await _enrolled_elsewhere(scene)
    email = (await api.client.get(f"/v1/participants/{elsewhere}", headers=a.operator)).json()["email"]

    listed = await api.client.get("/v1/participants", headers=a.coordinator)
    searched = await api.client.get("/v1/participants", params={"q": email}, headers=a.coordinator)

    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [str(a.person_id)]
    assert searched.json()["items"] == []
    by_operator = await api.client.get("/v1/participants", params={"q": email}, headers=a.operator)
    assert [item["id"] for item in by_operator.json()["items"]] == [str(elsewhere)]


async def test_a_coordinator_sees_only_the_enrolments_of_a_person_in_their_own_programs(scene: Scene) -> None:
    api, a = scene.api, scene.a
    person_id, enrolment_id = await fresh_person(scene)
    await enrol(api, scene.other_program_id, person_id, a.operator)
    url = f"/v1/participants/{person_id}/enrolments"

    by_coordinator = await api.client.get(url, headers=a.coordinator)
    by_operator = await api.client.get(url, headers=a.operator)
    by_self = await api.client.get(url, headers=api.token(a.id, Role.PARTICIPANT, person_id=person_id))

    assert [item["id"] for item in by_coordinator.json()["items"]] == [str(enrolment_id)]
    assert len(by_operator.json()["items"]) == 2
    assert len(by_self.json()["items"]) == 2


@pytest.fixture
async def elsewhere(scene: Scene) -> uuid.UUID:
    """A participant of A enrolled only in the program the matrix's coordinator does not run."""
    return await _enrolled_elsewhere(scene)


async def test_a_coordinator_reaches_a_person_of_another_program_once_they_enrol_them_in_their_own(
    scene: Scene, elsewhere: uuid.UUID
) -> None:
    api, a, person_id = scene.api, scene.a, elsewhere
    url = f"/v1/participants/{person_id}"
    before = await api.client.get(url, headers=a.coordinator)

    enrolled = await api.client.post(
        f"/v1/programs/{a.program_id}/enrolments",
        json={"person_id": str(person_id), "role": "mentee"},
        headers=a.coordinator,
    )

    assert before.status_code == 404, before.text
    assert enrolled.status_code == 201, enrolled.text
    # The answer is the new enrolment alone: nothing of the profile, nothing of the person's other programs.
    assert set(enrolled.json()) == {"id", "tenant_id", "program_id", "person_id", "role", "capacity", "status",
                                    "cohort", "version"}  # fmt: skip
    assert (await api.client.get(url, headers=a.coordinator)).status_code == 200


async def test_a_coordinator_importing_a_person_of_another_program_by_email_enrols_them_and_hears_nothing_of_them(
    scene: Scene, elsewhere: uuid.UUID
) -> None:
    api, a, person_id = scene.api, scene.a, elsewhere
    url = f"/v1/participants/{person_id}"
    stored = await api.client.patch(
        url, json={"team": "Secret team", "department": "Secret department"}, headers={**a.operator, "If-Match": '"1"'}
    )
    assert stored.status_code == 200, stored.text
    before = await api.client.get(url, headers=a.coordinator)

    csv = f"email,display_name,tenure_start,time_zone,role\n{stored.json()['email']},M,2020-01-01,UTC,mentee\n"
    imported = await api.client.post(
        f"/v1/programs/{a.program_id}/imports",
        content=csv.encode(),
        headers={**a.coordinator, "Content-Type": "text/csv"},
    )

    assert before.status_code == 404, before.text
    assert imported.status_code == 201, imported.text
    assert imported.json()["errors"] == []
    assert "Secret" not in imported.text
    assert str(person_id) not in imported.text
    assert str(scene.other_program_id) not in imported.text
    after = await api.client.get(url, headers=a.coordinator)
    assert after.status_code == 200, after.text
    assert after.json()["display_name"] == "Ada Example"  # enrolled, their stored profile kept


async def test_a_coordinator_still_reaches_a_person_whose_enrolment_in_their_program_was_withdrawn(
    scene: Scene,
) -> None:
    api, a = scene.api, scene.a
    person_id, enrolment_id = await fresh_person(scene)
    withdrawn = await api.client.delete(f"/v1/enrolments/{enrolment_id}", headers={**a.operator, "If-Match": '"1"'})
    assert withdrawn.status_code == 200, withdrawn.text

    read = await api.client.get(f"/v1/participants/{person_id}", headers=a.coordinator)

    assert read.status_code == 200, read.text


async def test_a_coordinators_import_without_a_role_changes_only_people_of_their_programs(scene: Scene) -> None:
    api, a = scene.api, scene.a
    person_id = await _enrolled_elsewhere(scene)
    url = f"/v1/participants/{person_id}"
    elsewhere = (await api.client.get(url, headers=a.operator)).json()["email"]
    mine = (await api.client.get(f"/v1/participants/{a.person_id}", headers=a.operator)).json()["email"]
    csv = (
        "email,display_name,tenure_start,time_zone\n"
        f"{elsewhere},Renamed,2020-01-01,UTC\n"  # a person of another program only
        "nobody@example.org,New,2020-01-01,UTC\n"  # a new person, in no program
        f"{mine},Mine Renamed,2020-01-01,UTC\n"  # enrolled in the coordinator's program
    ).encode()

    imported = await api.client.post(
        f"/v1/programs/{a.program_id}/imports", content=csv, headers={**a.coordinator, "Content-Type": "text/csv"}
    )

    assert imported.status_code == 201, imported.text
    assert (imported.json()["rows_imported"], imported.json()["rows_failed"]) == (1, 2)
    assert [(e["row_number"], e["column"]) for e in imported.json()["errors"]] == [(2, "role"), (3, "role")]
    assert (await api.client.get(url, headers=a.operator)).json()["display_name"] == "Ada Example"
    nobody = await api.client.get("/v1/participants", params={"q": "nobody@"}, headers=a.operator)
    assert nobody.json()["items"] == []
    by_operator = await api.client.post(
        f"/v1/programs/{a.program_id}/imports", content=csv, headers={**a.operator, "Content-Type": "text/csv"}
    )
    assert (by_operator.json()["rows_imported"], by_operator.json()["rows_failed"]) == (2, 0)


async def test_a_coordinator_may_not_erase_a_person_also_enrolled_in_a_program_they_do_not_coordinate(
    scene: Scene,
) -> None:
    api, a = scene.api, scene.a
    person_id, _ = await fresh_person(scene)
    await enrol(api, scene.other_program_id, person_id, a.operator)
    url = f"/v1/participants/{person_id}"

    refused = await api.client.delete(url, headers={**a.coordinator, "If-Match": '"1"'})

    assert refused.status_code == 403, refused.text
    message = refused.json()["detail"]["error_description"]
    assert "also enrolled in programs you do not coordinate" in message
    assert "operator" in message
    assert (await api.client.get(url, headers=a.operator)).json()["display_name"] == "Ada Example"
    # The coordinator of every program the person is in, an operator and the person keep erasing.
    both = api.token(a.id, Role.COORDINATOR, programs=(a.program_id, scene.other_program_id))
    assert (await api.client.delete(url, headers={**both, "If-Match": '"1"'})).status_code == 204
    for by_self in (False, True):
        other_id, _ = await fresh_person(scene)
        await enrol(api, scene.other_program_id, other_id, a.operator)
        headers = api.token(a.id, Role.PARTICIPANT, person_id=other_id) if by_self else a.operator
        erased = await api.client.delete(f"/v1/participants/{other_id}", headers={**headers, "If-Match": '"1"'})
        assert erased.status_code == 204, erased.text


async def test_a_coordinators_import_enrols_a_person_of_another_program_but_keeps_their_stored_profile(
    scene: Scene, elsewhere: uuid.UUID
) -> None:
    api, a = scene.api, scene.a
    url = f"/v1/participants/{elsewhere}"
    theirs = (await api.client.get(url, headers=a.operator)).json()
    mine = (await api.client.get(f"/v1/participants/{a.person_id}", headers=a.operator)).json()["email"]
    csv = (
        "email,display_name,tenure_start,time_zone,goal_text,role\n"
        f"{theirs['email']},Overwritten,2021-02-03,UTC,not their goals,mentee\n"  # of another program only
        f"{mine},Mine Renamed,2020-01-01,UTC,,mentee\n"  # already in the coordinator's program
        "newcomer@example.org,New,2020-01-01,UTC,,mentee\n"  # a new person
    ).encode()

    imported = await api.client.post(
        f"/v1/programs/{a.program_id}/imports", content=csv, headers={**a.coordinator, "Content-Type": "text/csv"}
    )

    assert imported.status_code == 201, imported.text
    report = imported.json()
    assert report["errors"] == []
    assert (report["rows_imported"], report["rows_profile_kept"], report["rows_failed"]) == (2, 1, 0)
    assert report["profile_kept_rows"] == [2]
    kept = (await api.client.get(url, headers=a.coordinator)).json()  # enrolled: the coordinator reaches them now
    assert {k: kept[k] for k in ("display_name", "tenure_start", "goals", "version")} == {
        k: theirs[k] for k in ("display_name", "tenure_start", "goals", "version")
    }
    mine_after = await api.client.get(f"/v1/participants/{a.person_id}", headers=a.coordinator)
    assert mine_after.json()["display_name"] == "Mine Renamed"
    by_operator = await api.client.post(
        f"/v1/programs/{a.program_id}/imports", content=csv, headers={**a.operator, "Content-Type": "text/csv"}
    )
    assert (by_operator.json()["rows_imported"], by_operator.json()["rows_profile_kept"]) == (1, 0)
    assert (await api.client.get(url, headers=a.operator)).json()["display_name"] == "Overwritten"


async def test_a_coordinator_creates_a_person_into_a_program_they_run_and_reaches_them_after(scene: Scene) -> None:
    api, a = scene.api, scene.a

    unnamed = await api.client.post("/v1/participants", json=profile("unnamed@example.org"), headers=a.coordinator)
    not_theirs = await api.client.post(
        "/v1/participants",
        json=profile("elsewhere@example.org")
        | {"enrolment": {"program_id": str(scene.other_program_id), "role": "mentee"}},
        headers=a.coordinator,
    )
    created = await api.client.post(
        "/v1/participants",
        json=profile("created@example.org") | {"enrolment": {"program_id": str(a.program_id), "role": "mentor"}},
        headers=a.coordinator,
    )

    assert unnamed.status_code == 422, unnamed.text
    assert unnamed.json()["detail"][0]["loc"] == ["body", "enrolment"]
    assert not_theirs.status_code == 422, not_theirs.text
    assert not_theirs.json()["detail"][0]["loc"] == ["body", "enrolment", "program_id"]
    operator_lists = await api.client.get("/v1/participants", params={"q": "@example.org"}, headers=a.operator)
    emails = {item["email"] for item in operator_lists.json()["items"]}
    assert {"unnamed@example.org", "elsewhere@example.org"}.isdisjoint(emails)  # refused: nothing stored
    assert created.status_code == 201, created.text
    person_id = created.json()["id"]
    read = await api.client.get(f"/v1/participants/{person_id}", headers=a.coordinator)
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == created.headers["ETag"]
    enrolments = await api.client.get(f"/v1/participants/{person_id}/enrolments", headers=a.coordinator)
    assert [(e["program_id"], e["role"]) for e in enrolments.json()["items"]] == [(str(a.program_id), "mentor")]
    by_operator = await api.client.post("/v1/participants", json=profile("op@example.org"), headers=a.operator)
    assert by_operator.status_code == 201, by_operator.text


async def test_a_coordinators_row_withdrawing_consent_from_a_person_of_another_program_enrols_them_consent_kept(
    scene: Scene, elsewhere: uuid.UUID
) -> None:
    api, a = scene.api, scene.a
    url = f"/v1/participants/{elsewhere}"
    theirs = await api.client.patch(
        url,
        json={"consent": {"affinity_matching": True}, "affinity_attributes": ["caregiver"]},
        headers={**a.operator, "If-Match": '"1"'},
    )
    assert theirs.status_code == 200, theirs.text
    csv = (
        "email,display_name,tenure_start,time_zone,consent_affinity_matching,role\n"
        f"{theirs.json()['email']},M,2020-01-01,UTC,false,mentee\n"
    ).encode()

    imported = await api.client.post(
        f"/v1/programs/{a.program_id}/imports", content=csv, headers={**a.coordinator, "Content-Type": "text/csv"}
    )

    # The row writes nothing of the profile, so the stored attributes and their consent are no reason to refuse it.
    assert imported.status_code == 201, imported.text
    assert imported.json()["errors"] == []
    assert imported.json()["profile_kept_rows"] == [2]
    kept = (await api.client.get(url, headers=a.coordinator)).json()
    assert (kept["consent"]["affinity_matching"], kept["affinity_attributes"]) == (True, ["caregiver"])
