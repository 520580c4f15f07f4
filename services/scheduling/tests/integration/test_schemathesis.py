"""Property test of the whole API with schemathesis: no 5xx, and every response conforms to the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.scheduling.bootstrap import DEFINITION
from services.scheduling.entrypoints.api import build_app
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import START, token
from shared.auth import Role
from shared.clock import MovableClock
from shared.db import session_factory
from shared.migrations import upgrade_to_head
from shared.service import Runtime

pytestmark = pytest.mark.integration

_TENANT = __import__("uuid").uuid4()


@pytest.fixture
def api_schema(database_url: str, redis_url: str, kafka_bootstrap: str) -> Iterator[Any]:
    upgrade_to_head(DEFINITION.migrations_dir, database_url)
    config = SchedulingSettings(database_url=database_url, redis_url=redis_url, kafka_bootstrap=kafka_bootstrap)
    # NullPool: schemathesis drives the ASGI app from its own event loop, so no connection may outlive a request.
    engine = create_async_engine(database_url, poolclass=NullPool)
    runtime = Runtime(config, engine, session_factory(engine), aioredis.from_url(redis_url))
    app = build_app(runtime, MovableClock(START))
    app.state.schemathesis_headers = token(
        config, _TENANT, person=_TENANT, roles=[Role.PARTICIPANT, Role.COORDINATOR], programs=[_TENANT]
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema.exclude(path="/readyz")
    asyncio.run(engine.dispose())


def test_the_api_never_fails_with_a_server_error_and_answers_as_documented(api_schema: Any) -> None:
    # Driven by hand rather than with schemathesis' pytest plugin (``from_fixture`` does not run under this
    # pytest): every operation gets its own bounded hypothesis run with a valid token.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 10
    headers = api_schema.app.state.schemathesis_headers
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            # Cross-field rules (ends after it starts, at most 24 h; not in the past) cannot be said in JSON
            # Schema, so a schema-valid body may rightly get a 422: that one check does not apply here.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        exercise()
