"""Schemathesis runs the whole profiles API with valid tokens: no 5xx, nothing outside the documented schema."""

from __future__ import annotations

import pytest

from services.profiles.tests.integration.conftest import Api, Tenant
from shared.auth.principal import Role
from tests.schemathesis_support import format_failures, run_schemathesis

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_5xx_or_an_undocumented_response(api: Api, tenant: Tenant) -> None:
    token = api.token(tenant.id, Role.OPERATOR, Role.COORDINATOR, programs=(tenant.program_id,))
    app = api.client._transport.app  # type: ignore[attr-defined]
    report = await run_schemathesis(
        app,
        token,
        max_examples=15,
        path_parameters={
            "program_id": str(tenant.program_id),
            "campus_id": str(tenant.campus_id),
            "organisation_id": str(tenant.id),
        },
    )
    assert not report.failures, format_failures(report.failures)
    assert not report.untested
    successes = {label for label, seen in report.statuses.items() if any(200 <= s < 300 for s in seen)}
    # Pinned ids get generated requests past the 404s, so the run exercises real reads and writes too.
    assert {"GET /v1/participants", "GET /v1/programs/{program_id}", "POST /v1/organisations"} <= successes
