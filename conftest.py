"""Root conftest: the shared server fixtures are available to tests/ and to each service's own tests."""

from hypothesis import settings

pytest_plugins = ["tests.fixtures"]

# No per-example deadline anywhere: on a shared 2-core machine one example can be descheduled for longer than
# Hypothesis' default 200 ms, which it reports as a flaky failure although the code is correct.
settings.register_profile("mentorloom", deadline=None)
settings.load_profile("mentorloom")
