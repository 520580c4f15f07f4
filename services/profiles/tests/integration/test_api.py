"""Behaviour of the profiles API against a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.profiles.entrypoints import api as api_module
from services.profiles.tests.integration.conftest import Api, Tenant, enrolled_in, profile, program
from shared.paging import MAX_LIMIT

pytestmark = pytest.mark.integration


async def test_a_created_participant_is_read_back_with_its_etag(api: Api, tenant: Tenant) -> None:
    created = await api.client.post(
        "/v1/participants",
        json=profile("grace@example.org") | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    assert created.status_code == 201
    person = created.json()
    read = await api.client.get(f"/v1/participants/{person['id']}", headers=tenant.operator)  # not enrolled yet
    assert read.status_code == 200
    assert read.json()["email"] == "grace@example.org"
    assert read.headers["ETag"] == '"1"'


async def test_a_patch_changes_only_the_given_fields_and_bumps_the_version(api: Api, tenant: Tenant) -> None:
    url = f"/v1/participants/{tenant.person_id}"
    patched = await api.client.patch(
        url, json={"skills": ["python"]}, headers={**tenant.participant, "If-Match": '"1"'}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["skills"] == ["python"]
    assert patched.json()["interests"] == ["climbing", "statistics"]
    assert patched.headers["ETag"] == '"2"'


async def test_a_patch_of_one_consent_or_style_field_keeps_the_others_of_that_object(api: Api, tenant: Tenant) -> None:
    url = f"/v1/participants/{tenant.person_id}"
    given = await api.client.patch(
        url,
        json={
            "consent": {"affinity_matching": True, "share_email_with_partner": False},
            "affinity_attributes": ["first_generation"],
            "working_style": {"communication": "chat", "meeting_format": "virtual", "cadence": "monthly"},
            "goals": {"tags": ["writing"], "text": "Publish my first paper."},
        },
        headers={**tenant.participant, "If-Match": '"1"'},
    )
    assert given.status_code == 200, given.text

    patched = await api.client.patch(
        url,
        json={"consent": {"share_email_with_partner": True}, "working_style": {"cadence": "weekly"}},
        headers={**tenant.participant, "If-Match": '"2"'},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["consent"] == {"affinity_matching": True, "share_email_with_partner": True}
    assert body["affinity_attributes"] == ["first_generation"]
    assert body["working_style"] == {"communication": "chat", "meeting_format": "virtual", "cadence": "weekly"}
    retagged = await api.client.patch(
        url, json={"goals": {"tags": ["teaching"]}}, headers={**tenant.participant, "If-Match": '"3"'}
    )
    assert retagged.json()["goals"] == {"tags": ["teaching"], "text": "Publish my first paper."}, "lists are replaced"


async def test_a_program_patch_of_one_milestone_keeps_the_other_milestones(api: Api, tenant: Tenant) -> None:
    url = f"/v1/programs/{tenant.program_id}"
    milestones = {
        "first_meeting_within_days": 10,
        "midpoint_review": False,
        "closing_conversation": False,
        "closing_days_before_end": 5,
    }
    given = await api.client.patch(url, json={"milestones": milestones}, headers={**tenant.operator, "If-Match": '"1"'})
    assert given.json()["milestones"] == milestones, given.text
    patched = await api.client.patch(
        url, json={"milestones": {"first_meeting_within_days": 21}}, headers={**tenant.operator, "If-Match": '"2"'}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["milestones"] == milestones | {"first_meeting_within_days": 21}


async def test_a_write_with_a_stale_etag_is_refused_with_412(api: Api, tenant: Tenant) -> None:
    url = f"/v1/participants/{tenant.person_id}"
    first = await api.client.patch(url, json={"team": "A"}, headers={**tenant.coordinator, "If-Match": '"1"'})
    second = await api.client.patch(url, json={"team": "B"}, headers={**tenant.coordinator, "If-Match": '"1"'})
    assert first.status_code == 200
    assert second.status_code == 412
    assert (await api.client.get(url, headers=tenant.coordinator)).json()["team"] == "A"


async def test_a_write_without_if_match_is_refused_with_428(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/v1/participants/{tenant.person_id}", json={"team": "A"}, headers=tenant.coordinator
    )
    assert response.status_code == 428


async def test_a_second_participant_with_the_same_email_is_a_conflict(api: Api, tenant: Tenant) -> None:
    body = profile("same@example.org") | enrolled_in(tenant.program_id)
    first = await api.client.post("/v1/participants", json=body, headers=tenant.coordinator)
    second = await api.client.post("/v1/participants", json=body, headers=tenant.coordinator)
    assert first.status_code == 201
    assert second.status_code == 409


async def test_the_same_email_may_exist_in_two_organisations(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    created = [
        await api.client.post(
            "/v1/participants", json=profile("both@example.org") | enrolled_in(t.program_id), headers=t.coordinator
        )
        for t in (tenant, other_tenant)
    ]
    assert [response.status_code for response in created] == [201, 201]


async def test_list_filters_by_text_program_role_and_campus_and_pages(api: Api, tenant: Tenant) -> None:
    for i in range(5):
        extra = {"campus_id": str(tenant.campus_id)} if i % 2 == 0 else {}
        r = await api.client.post(
            "/v1/participants",
            json=profile(f"p{i}@example.org", display_name=f"Zed {i}", **extra),
            headers=tenant.operator,
        )
        assert r.status_code == 201, r.text
    search = await api.client.get("/v1/participants", params={"q": "zed"}, headers=tenant.operator)
    assert len(search.json()["items"]) == 5
    on_campus = await api.client.get(
        "/v1/participants", params={"campus_id": str(tenant.campus_id)}, headers=tenant.operator
    )
    assert len(on_campus.json()["items"]) == 3
    mentees = await api.client.get(
        "/v1/participants", params={"program_id": str(tenant.program_id), "role": "mentee"}, headers=tenant.operator
    )
    assert [p["id"] for p in mentees.json()["items"]] == [str(tenant.person_id)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.client.get("/v1/participants", params=params, headers=tenant.operator)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6


async def read_all(api: Api, path: str, headers: dict[str, str], follow: str) -> list[str]:
    """Every id of a list, two per page, following `next_offset` (as `offset`) or the deprecated `next_cursor`."""
    seen: list[str] = []
    position: dict[str, Any] = {}
    while True:
        page = (await api.client.get(path, params={"limit": 2} | position, headers=headers)).json()
        seen += [item["id"] for item in page["items"]]
        if page[f"next_{follow}"] is None:
            return seen
        position = {follow: page[f"next_{follow}"]}


async def test_the_lists_that_were_cursor_paged_page_by_offset_like_every_other_list_and_still_by_cursor(
    api: Api, tenant: Tenant
) -> None:
    for i in range(4):
        created = await api.client.post("/v1/participants", json=profile(f"o{i}@example.org"), headers=tenant.operator)
        assert created.status_code == 201, created.text
        campus = await api.client.post("/v1/campuses", json={"name": f"Campus {i}"}, headers=tenant.operator)
        assert campus.status_code == 201, campus.text

    for path in ("/v1/participants", "/v1/campuses"):
        by_offset = await read_all(api, path, tenant.operator, "offset")
        assert len(by_offset) == len(set(by_offset)) == 5, path
        assert await read_all(api, path, tenant.operator, "cursor") == by_offset, path
    last = await api.client.get("/v1/campuses", params={"limit": 2, "offset": 4}, headers=tenant.operator)
    assert last.json()["next_offset"] is None
    assert len(last.json()["items"]) == 1


async def test_a_page_of_participants_holds_at_most_the_lists_own_cap_and_names_the_next(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A participant carries every profile field (tens of KB at the fields' limits): a page of the shared limit's 1000
    # could be tens of MB built in one request, so this list serves larger limits in pages of its own cap.
    monkeypatch.setattr(api_module, "PARTICIPANTS_PAGE_MAX", 3)
    for i in range(4):
        created = await api.client.post("/v1/participants", json=profile(f"c{i}@example.org"), headers=tenant.operator)
        assert created.status_code == 201, created.text

    first = (await api.client.get("/v1/participants", params={"limit": 1000}, headers=tenant.operator)).json()
    rest = (
        await api.client.get(
            "/v1/participants", params={"limit": 1000, "offset": first["next_offset"]}, headers=tenant.operator
        )
    ).json()

    assert (len(first["items"]), first["next_offset"]) == (3, 3)
    assert (len(rest["items"]), rest["next_offset"]) == (2, None)
    assert len({p["id"] for p in first["items"] + rest["items"]}) == 5


async def test_a_coordinator_of_another_organisation_gets_404(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    for url in (
        f"/v1/participants/{tenant.person_id}",
        f"/v1/programs/{tenant.program_id}",
        f"/v1/campuses/{tenant.campus_id}",
        f"/v1/programs/{tenant.program_id}/enrolments",
    ):
        response = await api.client.get(url, headers=other_tenant.coordinator)
        assert response.status_code == 404, url


async def test_a_participant_reads_only_themselves(api: Api, tenant: Tenant) -> None:
    other = await api.client.post(
        "/v1/participants",
        json=profile("other@example.org") | enrolled_in(tenant.program_id),
        headers=tenant.coordinator,
    )
    assert (await api.client.get(f"/v1/participants/{tenant.person_id}", headers=tenant.participant)).status_code == 200
    assert (
        await api.client.get(f"/v1/participants/{other.json()['id']}", headers=tenant.participant)
    ).status_code == 404


async def test_erasure_scrubs_the_person_and_withdraws_their_enrolments(api: Api, tenant: Tenant) -> None:
    erased = await api.client.delete(
        f"/v1/participants/{tenant.person_id}", headers={**tenant.participant, "If-Match": '"1"'}
    )
    assert erased.status_code == 204
    assert (await api.client.get(f"/v1/participants/{tenant.person_id}", headers=tenant.coordinator)).status_code == 404
    async with api.runtime.engine.connect() as conn:
        from sqlalchemy import text

        row = (
            (await conn.execute(text("SELECT * FROM participants WHERE id = :id"), {"id": tenant.person_id}))
            .mappings()
            .one()
        )
        status = (
            await conn.execute(text("SELECT status FROM enrolments WHERE person_id = :id"), {"id": tenant.person_id})
        ).scalar_one()
    personal = {
        k: v for k, v in row.items() if k not in {"id", "tenant_id", "version", "created_at", "updated_at", "erased_at"}
    }
    assert all(value is None for value in personal.values()), personal
    assert row["erased_at"] is not None
    assert status == "withdrawn"


async def test_needs_must_come_from_the_programs_catalogue(api: Api, tenant: Tenant) -> None:
    url = f"/v1/participants/{tenant.person_id}/needs"
    good = await api.client.put(
        url, json={"needs": [{"function_key": "writing_publishing", "level": "critical"}]},
        headers={**tenant.participant, "If-Match": '"1"'},
    )  # fmt: skip
    assert good.status_code == 200, good.text
    bad = await api.client.put(
        url, json={"needs": [{"function_key": "astrology", "level": "critical"}]},
        headers={**tenant.participant, "If-Match": '"2"'},
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "needs", 0, "function_key"]


async def test_the_default_catalogue_marks_psychosocial_functions(api: Api, tenant: Tenant) -> None:
    catalogue = (await api.client.get("/v1/function-catalogue", headers=tenant.participant)).json()["items"]
    psychosocial = {entry["key"] for entry in catalogue if entry["is_psychosocial"]}
    assert "belonging_community" in psychosocial
    assert "job_search" not in psychosocial
    assert {entry["domain"] for entry in catalogue} == {"academic", "professional", "personal"}


async def test_withdrawing_an_enrolment_keeps_it_with_status_withdrawn(api: Api, tenant: Tenant) -> None:
    listed = (await api.client.get(f"/v1/programs/{tenant.program_id}/enrolments", headers=tenant.coordinator)).json()
    enrolment = listed["items"][0]
    withdrawn = await api.client.delete(
        f"/v1/enrolments/{enrolment['id']}", headers={**tenant.coordinator, "If-Match": f'"{enrolment["version"]}"'}
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"


async def test_an_unknown_program_is_404_not_500(api: Api, tenant: Tenant) -> None:
    response = await api.client.get(f"/v1/programs/{uuid.uuid4()}", headers=tenant.operator)
    assert response.status_code == 404


async def offset_pages(api: Api, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of an offset-paged list at limit=2, following next_offset until it is null."""
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = await api.client.get(url, params={"limit": 2, "offset": offset}, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
    return pages


async def test_a_persons_enrolments_page_by_offset_until_next_offset_is_null(api: Api, tenant: Tenant) -> None:
    for n in range(4):
        created = await api.client.post("/v1/programs", json=program(name=f"Cohort {n}"), headers=tenant.operator)
        assert created.status_code == 201, created.text
        enrolled = await api.client.post(
            f"/v1/programs/{created.json()['id']}/enrolments",
            json={"person_id": str(tenant.person_id), "role": "mentor"},
            headers=tenant.operator,
        )
        assert enrolled.status_code == 201, enrolled.text
    pages = await offset_pages(api, f"/v1/participants/{tenant.person_id}/enrolments", tenant.participant)
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [page["next_offset"] for page in pages] == [2, 4, None]
    assert len({e["program_id"] for page in pages for e in page["items"]}) == 5


async def test_both_function_catalogues_page_by_offset_until_next_offset_is_null(api: Api, tenant: Tenant) -> None:
    for url in ("/v1/function-catalogue", f"/v1/programs/{tenant.program_id}/function-catalogue"):
        whole = (await api.client.get(url, headers=tenant.participant)).json()
        assert whole["next_offset"] is None, url
        rows = len(whole["items"])
        pages = await offset_pages(api, url, tenant.participant)
        assert [len(page["items"]) for page in pages] == [2] * (rows // 2) + ([rows % 2] if rows % 2 else []), url
        assert [page["next_offset"] for page in pages] == [*range(2, rows, 2), None], url
        assert [entry for page in pages for entry in page["items"]] == whole["items"], url
    too_big = await api.client.get(
        "/v1/function-catalogue", params={"limit": MAX_LIMIT + 1}, headers=tenant.participant
    )
    assert too_big.status_code == 422
