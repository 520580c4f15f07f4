"""Right to be forgotten in profiles, on a real PostgreSQL and Redis: after a participant is erased no table, outbox
row or cached response holds anything they gave (name, e-mail, their own words, tags, reporting line, ids from HR)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from services.profiles.tests.integration.conftest import Api, Tenant, enrolled_in, profile
from tests.erasure_scan import stored_anywhere, text_values

pytestmark = pytest.mark.integration

# Each value is unusual enough that finding it anywhere can only mean it is the erased person's.
PERSONAL: dict[str, Any] = {
    "display_name": "Zephyrine Quillfeather",
    "external_id": "hr-zq-4711",
    "department": "dept-zq-astronomy",
    "team": "team-zq-comets",
    "reporting_line_id": "line-zq-0042",
    "time_zone": "Pacific/Chatham",
    "interests": ["zq-interest-lichen"],
    "skills": ["zq-skill-bookbinding"],
    "goals": {"tags": ["zq-goal-tag"], "text": "zq goal words: I want to learn to lead"},
    "desired_outcomes": {"tags": [], "text": "zq outcome words: a calmer team"},
    "consent": {"affinity_matching": True},
    "affinity_attributes": ["zq-affinity-first-generation"],
}


def personal_values(email: str) -> list[str]:
    """The erased person's values as a scan looks for them: every string, each tag, each text on its own."""
    return text_values(email, PERSONAL)


async def enter_person(api: Api, tenant: Tenant) -> tuple[uuid.UUID, str, int]:
    """A participant created (with an Idempotency-Key, so the answer is kept for a retry), enrolled and edited:
    (person id, e-mail, current version)."""
    email = f"zq-{uuid.uuid4().hex[:6]}@example.org"
    created = await api.client.post(
        "/v1/participants",
        json=profile(email, **PERSONAL) | enrolled_in(tenant.program_id, "mentor"),
        headers={**tenant.coordinator, "Idempotency-Key": f"create-{uuid.uuid4().hex}"},
    )
    assert created.status_code == 201, created.text
    person_id = uuid.UUID(created.json()["id"])
    edited = await api.client.patch(
        f"/v1/participants/{person_id}",
        json={"team": PERSONAL["team"]},
        headers={**tenant.coordinator, "If-Match": '"1"'},
    )
    assert edited.status_code == 200, edited.text
    return person_id, email, 2


async def erase(api: Api, tenant: Tenant, person_id: uuid.UUID, version: int) -> None:
    erased = await api.client.delete(
        f"/v1/participants/{person_id}", headers={**tenant.coordinator, "If-Match": f'"{version}"'}
    )
    assert erased.status_code == 204, erased.text


async def test_after_erasure_no_table_outbox_row_or_cached_response_holds_the_persons_data(
    api: Api, tenant: Tenant
) -> None:
    person_id, email, version = await enter_person(api, tenant)
    values = personal_values(email)
    before = await stored_anywhere(api.runtime.engine, api.runtime.redis, values)
    # The scan sees the person where profiles keeps them: the row, the snapshots waiting in the outbox, the answer
    # kept for an Idempotency-Key retry.
    assert "participants.display_name" in before[PERSONAL["display_name"]]
    assert "outbox.value" in before[email]
    assert any(place.startswith("redis:idem:profiles:") for place in before[email])
    assert set(before) == set(values)

    await erase(api, tenant, person_id, version)

    assert await stored_anywhere(api.runtime.engine, api.runtime.redis, values) == {}


async def test_after_erasure_an_earlier_imports_rejected_row_naming_the_person_leaves_none_of_their_data(
    api: Api, tenant: Tenant
) -> None:
    person_id, email, version = await enter_person(api, tenant)
    # A later import (its answer kept for an Idempotency-Key retry) with a row naming them that is refused: the
    # import report keeps the row's number, column and message, which must not carry their e-mail, name or HR ids.
    header = "external_id,email,display_name,department,team,tenure_start,time_zone,role\n"
    named = [PERSONAL["external_id"], email, PERSONAL["display_name"], PERSONAL["department"], PERSONAL["team"]]
    rejected = ",".join([*named, "2021-09-01", "Mars/Olympus", "mentor"]) + "\n"
    imported = await api.client.post(
        f"/v1/programs/{tenant.program_id}/imports",
        content=(header + rejected).encode(),
        headers={**tenant.coordinator, "Content-Type": "text/csv", "Idempotency-Key": f"import-{uuid.uuid4().hex}"},
    )
    assert imported.status_code == 201, imported.text
    assert [(e["row_number"], e["column"]) for e in imported.json()["errors"]] == [(2, "time_zone")]

    await erase(api, tenant, person_id, version)

    assert await stored_anywhere(api.runtime.engine, api.runtime.redis, personal_values(email)) == {}


async def test_the_erasure_itself_still_leaves_for_the_other_services(api: Api, tenant: Tenant) -> None:
    person_id, _, version = await enter_person(api, tenant)
    await erase(api, tenant, person_id, version)
    async with api.runtime.engine.connect() as conn:
        waiting = (
            await conn.execute(
                text("SELECT headers::jsonb->>'ce_type' FROM outbox WHERE key = :key ORDER BY id"),
                {"key": str(person_id)},
            )
        ).scalars()
        kinds = list(waiting)
    # The snapshots that named the person are gone; their enrolment (no personal data) and the erasure still leave.
    assert kinds == ["org.mentorloom.enrollment.changed.v1", "org.mentorloom.profile.erased.v1"]


async def test_another_persons_cached_answers_and_waiting_snapshots_stay(api: Api, tenant: Tenant) -> None:
    other_email = f"other-{uuid.uuid4().hex[:6]}@example.org"
    other = await api.client.post(
        "/v1/participants",
        json=profile(other_email, display_name="Other Keeper") | enrolled_in(tenant.program_id),
        headers={**tenant.coordinator, "Idempotency-Key": f"other-{uuid.uuid4().hex}"},
    )
    assert other.status_code == 201, other.text
    person_id, _, version = await enter_person(api, tenant)

    await erase(api, tenant, person_id, version)

    kept: dict[str, Any] = await stored_anywhere(api.runtime.engine, api.runtime.redis, [other_email])
    assert "outbox.value" in kept[other_email]
    assert any(place.startswith("redis:idem:profiles:") for place in kept[other_email])


async def test_an_erasure_stands_when_redis_fails_to_forget_the_cached_answers(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id, _, version = await enter_person(api, tenant)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Redis is not reachable")

    monkeypatch.setattr(api.runtime.redis, "scan_iter", unreachable)

    await erase(api, tenant, person_id, version)

    # Erased all the same: the records expire with the idempotency TTL.
    assert (await api.client.get(f"/v1/participants/{person_id}", headers=tenant.coordinator)).status_code == 404


async def test_an_erasure_leaves_the_answers_another_tenant_keeps_naming_the_same_id(api: Api, tenant: Tenant) -> None:
    person_id, _, version = await enter_person(api, tenant)
    redis = api.runtime.redis
    ours = [key async for key in redis.scan_iter(match=f"idem:profiles:{tenant.id}:*")]
    assert ours, "the creation's answer is kept for a retry"
    # Another organisation's kept answer naming the same id (ids are the caller's business there): theirs to keep.
    theirs = ours[0].decode().replace(str(tenant.id), str(uuid.uuid4()), 1)
    kept = await redis.get(ours[0])
    assert kept is not None
    await redis.set(theirs, kept)

    await erase(api, tenant, person_id, version)

    assert await redis.exists(ours[0]) == 0
    assert await redis.exists(theirs) == 1
