"""The embedded PostgreSQL server: extra settings (a benchmark preloads pg_stat_statements with them), and the two
ways to reach it (TCP for anyone, its Unix socket for the platform's processes on the same machine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from deploy.local.servers import EmbeddedPostgres
from shared.db import asyncpg_dsn, create_engine

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


async def _server_address(url: str) -> tuple[str | None, str | None]:
    """(inet_server_addr() through SQLAlchemy, the same through a plain asyncpg DSN as the outbox relay connects)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            via_sqlalchemy = (await conn.execute(text("SELECT host(inet_server_addr())"))).scalar_one()
    finally:
        await engine.dispose()
    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        via_asyncpg = await raw.fetchval("SELECT host(inet_server_addr())")
    finally:
        await raw.close()
    return via_sqlalchemy, via_asyncpg


def test_local_url_reaches_the_server_through_its_unix_socket_and_url_through_tcp(tmp_path: Path):
    server = EmbeddedPostgres(tmp_path / "pgdata", fast_unsafe=True)
    server.start()
    try:
        assert server.socket_path.is_socket()
        # inet_server_addr() is NULL exactly for a Unix-socket connection.
        assert asyncio.run(_server_address(server.local_url())) == (None, None)
        assert asyncio.run(_server_address(server.url())) == ("127.0.0.1", "127.0.0.1")
    finally:
        server.stop()


def test_a_data_dir_too_deep_for_a_unix_socket_gets_a_short_socket_dir_and_still_starts(tmp_path: Path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "pgdata"
    server = EmbeddedPostgres(deep, fast_unsafe=True)
    assert len(str(deep / f".s.PGSQL.{server.port}")) > 108  # past the limit on every platform
    assert server.socket_dir != deep
    server.start()
    try:
        assert server.socket_path.is_socket()
        assert asyncio.run(_server_address(server.local_url())) == (None, None)
    finally:
        server.stop()
    assert not server.socket_dir.exists()  # removed with the server
