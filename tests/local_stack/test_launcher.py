"""`mentorloom up` / `status` / `down` start and stop the real local stack (as a new user would run them)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from deploy.local.servers import port_is_open
from deploy.local.stack import available_services
from shared.db import asyncpg_dsn

pytestmark = pytest.mark.integration


def cli(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MENTORLOOM_STACK_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "deploy.local.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_up_starts_every_component_on_free_ports_and_down_stops_them_all(tmp_path: Path):
    data_dir = tmp_path / "stack"
    env = {**os.environ, "MENTORLOOM_STACK_DIR": str(data_dir)}
    output = (tmp_path / "launcher.log").open("w")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.cli", "up"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        state = None
        while time.monotonic() < deadline and launcher.poll() is None:
            status = cli(data_dir, "status", "--json")
            if status.returncode == 0:
                state = json.loads(status.stdout)
                if len(state.get("services", {})) == len(available_services()) and _services_ready(state):
                    break
            time.sleep(1)
        assert state is not None, (
            f"the stack never reported its state; launcher output:\n{(tmp_path / 'launcher.log').read_text()}"
        )
        pids = [
            state["postgres"]["pid"],
            state["redis"]["pid"],
            state["kafka"]["pid"],
            *(s["pid"] for s in state["services"].values()),
        ]
        assert all(psutil.pid_exists(p) for p in pids)
        assert port_is_open("127.0.0.1", state["postgres"]["port"])
        assert port_is_open("127.0.0.1", int(state["kafka"]["bootstrap"].rsplit(":", 1)[1]))
        assert set(state["postgres"]["urls"]) == {"profiles", "matching", "scheduling", "feedback"}
        unix, tcp = asyncio.run(_service_connections_by_transport(state["postgres"]["urls"]["profiles"]))
        assert (unix > 0, tcp) == (True, 0), "the services reach PostgreSQL over its Unix socket, not loopback TCP"

        down = cli(data_dir, "down", timeout=150)
        assert down.returncode == 0, down.stdout + down.stderr + (tmp_path / "launcher.log").read_text()
        launcher.wait(60)
        assert launcher.returncode == 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
        assert cli(data_dir, "status").returncode == 3, "status says clearly that nothing runs"
    finally:
        if launcher.poll() is None:
            launcher.terminate()
            launcher.wait(60)


async def _service_connections_by_transport(url: str) -> tuple[int, int]:
    """(Unix-socket, TCP) connections to the services' databases, not counting this query's own."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE client_addr IS NULL), count(*) FILTER (WHERE client_addr IS NOT NULL)"
            " FROM pg_stat_activity WHERE datname LIKE 'mentorloom\\_%' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


def _services_ready(state: dict) -> bool:  # type: ignore[type-arg]
    import httpx

    for info in state.get("services", {}).values():
        try:
            if httpx.get(f"{info['url']}/readyz", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True
