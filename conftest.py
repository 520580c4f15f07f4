"""Root conftest: the shared server fixtures are available to tests/ and to each service's own tests."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins = ["tests.fixtures"]

# No per-example deadline anywhere: on a shared 2-core machine one example can be descheduled for longer than
# Hypothesis' default 200 ms, which it reports as a flaky failure although the code is correct.
settings.register_profile("mentorloom", deadline=None)
settings.load_profile("mentorloom")


@pytest.fixture(scope="session", autouse=True)
def _no_mentorloom_environment() -> Iterator[None]:
    """No test sees the developer's service settings (MENTORLOOM_*, e.g. exported to reach a running stack): a test
    sets what it needs, with monkeypatch or arguments.

    Session-wide and autouse, so it runs before every other fixture: the stack the e2e tests start copies the
    environment into its services. MENTORLOOM_TEST_* stay: they name the servers the session fixtures use instead of
    starting their own (tests/fixtures.py)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MENTORLOOM_") and not name.startswith("MENTORLOOM_TEST_"):
                patch.delenv(name)
        yield
