"""`mentorloom up` / `status` / `down` start and stop the real local stack (as a new user would run them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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

        # Once start-up (the demo included) is over, a stop signal is the normal end: exit 0. During start-up it
        # would be 128 + the signal's number (test_a_stop_signal_during_start_up_…).
        while "Mentorloom is running." not in words((tmp_path / "launcher.log").read_text()):
            assert launcher.poll() is None, (tmp_path / "launcher.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "launcher.log").read_text()
            time.sleep(0.5)
        log = words((tmp_path / "launcher.log").read_text())
        # The demo's upload bar comes while the CSV goes up: after the program is made, before the import's result.
        upload = log.index("uploading participants.csv")
        assert log.index("(active, 14-day check-ins") < upload < log.index("participants (120 mentors"), log
        # The round waits until matching has every imported participant: it covers all 240 mentees but the one
        # matched by request (a round started at the first short list covered 154).
        assert "matching knows every imported participant: 240 mentees, 120 mentors" in log, log
        assert "proposals for 239 mentees" in log, log
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


# --- the launcher's lifecycle: stop signals, failing services, a launcher that is gone -----------------------------


class Launcher:
    """`mentorloom up --no-demo` in a process of its own, its output in a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.data_dir = tmp_path / "stack"
        self.log = tmp_path / "launcher.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.cli", "up", "--no-demo", *args],
            # COLUMNS: rich folds a line longer than the console's 80 columns inside a long word (a log path under a
            # deep temp dir), and no whitespace normalisation could join it again.
            env={**os.environ, "MENTORLOOM_STACK_DIR": str(self.data_dir), "COLUMNS": "1000"},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.pids: set[int] = set()  # every server pid seen in the state file, for the checks and the clean-up

    def output(self) -> str:
        return words(self.log.read_text())

    def wait_for_output(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None or text in self.output(), f"the launcher ended:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s:\n{self.output()}"
            time.sleep(0.05)

    def state(self) -> dict:  # type: ignore[type-arg]
        with contextlib.suppress(FileNotFoundError):
            state = json.loads((self.data_dir / "state.json").read_text())
            self.pids |= {state[n]["pid"] for n in ("postgres", "redis", "kafka")}
            self.pids |= {s["pid"] for s in state["services"].values()}
            return state  # type: ignore[no-any-return]
        return {}

    def service_pid(self, service: str, timeout: float = 120) -> int:
        """The service's pid as soon as the launcher has started it (and written it down)."""
        deadline = time.monotonic() + timeout
        while service not in self.state().get("services", {}):
            assert self.process.poll() is None, f"the launcher ended:\n{self.output()}"
            assert time.monotonic() < deadline, f"{service} not started after {timeout} s:\n{self.output()}"
            time.sleep(0.02)
        return int(self.state()["services"][service]["pid"])

    def exit_code(self, timeout: float = 120) -> int:
        return self.process.wait(timeout)

    def running_pids(self) -> list[int]:
        return [p for p in self.pids if _running(p)]

    def clean_up(self) -> None:
        for pid in self.running_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a test stops a service; a stopped one would never see SIGTERM
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(120)
        cli(self.data_dir, "down", timeout=150)  # what a launcher that was killed left running
        for pid in self.running_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def words(text: str) -> str:
    """The text with its line breaks and runs of spaces as single spaces: rich wraps long lines."""
    return " ".join(text.split())


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Launcher]]:
    started: list[Launcher] = []

    def start(*args: str) -> Launcher:
        launcher = Launcher(tmp_path, *args)
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        launcher.clean_up()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_stop_signal_during_start_up_stops_everything_at_once_and_exits_128_plus_the_signal(
    launch: Callable[..., Launcher], sig: signal.Signals, code: int
) -> None:
    launcher = launch()
    profiles = launcher.service_pid("profiles")
    os.kill(profiles, signal.SIGSTOP)  # it cannot become ready: the launcher is surely still starting
    launcher.service_pid("feedback")
    launcher.process.send_signal(sig)
    launcher.wait_for_output("stopping profiles")
    os.kill(profiles, signal.SIGCONT)  # lets it see the SIGTERM the launcher sent

    assert launcher.exit_code() == code, launcher.output()
    assert f"{sig.name} received: stopping everything" in launcher.output()
    assert "is running" not in launcher.output()
    assert launcher.running_pids() == [], "every server stopped"
    assert not (launcher.data_dir / "state.json").exists()


def test_a_service_not_ready_in_time_is_named_with_its_log_and_up_stops_everything_and_exits_1(
    launch: Callable[..., Launcher],
) -> None:
    launcher = launch("--ready-timeout", "3")
    profiles = launcher.service_pid("profiles")
    os.kill(profiles, signal.SIGSTOP)
    launcher.wait_for_output("stopping profiles")
    os.kill(profiles, signal.SIGCONT)

    assert launcher.exit_code() == 1, launcher.output()
    log = launcher.data_dir / "logs" / "profiles.log"
    assert f"Service profiles was not ready within 3 s; see its log: {log}" in launcher.output()
    assert launcher.running_pids() == []


def test_a_service_that_dies_after_start_makes_up_stop_everything_and_exit_1_naming_it_and_its_log(
    launch: Callable[..., Launcher],
) -> None:
    launcher = launch()
    launcher.wait_for_output("Mentorloom is running.")
    matching = launcher.service_pid("matching")
    os.kill(matching, signal.SIGKILL)

    assert launcher.exit_code() == 1, launcher.output()
    log = launcher.data_dir / "logs" / "matching.log"
    assert f"Service matching exited (status -9); see its log: {log}. Stopping everything." in launcher.output()
    assert launcher.running_pids() == []


def test_down_stops_the_servers_of_a_launcher_that_was_killed(launch: Callable[..., Launcher]) -> None:
    launcher = launch()
    launcher.service_pid("feedback")
    launcher.process.kill()  # no chance to clean up, as after an OOM kill
    launcher.process.wait(10)
    assert launcher.running_pids(), "its servers outlive it"

    status = cli(launcher.data_dir, "status")
    assert status.returncode == 3
    assert "is gone, but service profiles, " in words(status.stderr)
    assert "stop them with: mentorloom down" in words(status.stderr)
    again = cli(launcher.data_dir, "up", "--no-demo")
    assert again.returncode == 2, "a second stack would collide with the servers still running"
    assert "stop them first with: mentorloom down" in words(again.stderr)

    down = cli(launcher.data_dir, "down", timeout=150)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "is gone; stopping what it left running" in words(down.stdout)
    assert launcher.running_pids() == []
    assert not (launcher.data_dir / "state.json").exists()
