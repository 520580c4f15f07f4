"""The embedded PostgreSQL server takes extra settings (a benchmark preloads pg_stat_statements with them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.servers import EmbeddedPostgres

pytestmark = pytest.mark.integration


def test_extra_settings_reach_the_running_server(tmp_path: Path):
    server = EmbeddedPostgres(
        tmp_path / "pgdata",
        fast_unsafe=True,
        settings={"shared_preload_libraries": "pg_stat_statements", "work_mem": "7MB"},
    )
    server.start()
    try:
        assert server.psql("SHOW work_mem").strip() == "7MB"
        # A preload-only library: its view errors unless the server loaded it at start, and then it has counted
        # the statement above.
        server.psql("CREATE EXTENSION pg_stat_statements")
        counted = server.psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query = 'SHOW work_mem'")
        assert int(counted) >= 1
    finally:
        server.stop()
