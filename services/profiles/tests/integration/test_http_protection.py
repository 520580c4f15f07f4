"""The shared Idempotency-Key replay and per-token rate limit are wired into the profiles API."""

from __future__ import annotations

import httpx
import pytest

from services.profiles.entrypoints.api import build_app
from services.profiles.tests.integration.conftest import Api, Tenant, enrolled_in, profile
from shared.auth.principal import Role
from shared.service import Runtime

pytestmark = pytest.mark.integration


async def test_a_retried_post_with_the_same_idempotency_key_creates_one_participant(api: Api, tenant: Tenant) -> None:
    headers = {**tenant.coordinator, "Idempotency-Key": "create-kim-1"}
    first = await api.client.post(
        "/v1/participants", json=profile("kim@example.org") | enrolled_in(tenant.program_id), headers=headers
    )
    retry = await api.client.post(
        "/v1/participants", json=profile("kim@example.org") | enrolled_in(tenant.program_id), headers=headers
    )
    assert (first.status_code, retry.status_code) == (201, 201), retry.text
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers.get("Idempotent-Replayed") == "true"
    listed = await api.client.get("/v1/participants", params={"q": "kim@"}, headers=tenant.operator)
    assert len(listed.json()["items"]) == 1


async def test_a_token_past_its_rate_limit_gets_429(api: Api, tenant: Tenant, frozen_clock: None) -> None:
    settings = api.settings.model_copy(update={"rate_limit_per_minute": 3})
    runtime = Runtime.from_settings(settings)
    try:
        app = build_app(runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://profiles") as client:
            fresh = api.token(tenant.id, Role.OPERATOR)  # a subject with no requests in this window yet
            statuses = [(await client.get("/v1/campuses", headers=fresh)).status_code for _ in range(4)]
    finally:
        await runtime.close()
    assert statuses == [200, 200, 200, 429]
