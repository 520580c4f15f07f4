"""The local stack with all four services as separate processes, and a recorder of everything on the event stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from deploy.local.client import StackEndpoints
from deploy.local.events_tail import StreamRecord, follow
from deploy.local.servers import free_port
from deploy.local.stack import SERVICES, LocalStack

#: Scheduling's and feedback's clocks run this far ahead (MENTORLOOM_CLOCK_OFFSET_SECONDS): with a 1-day check-in
#: cadence the first check-ins of a new match are due at once, and with a 3-day grace none is missed yet. Feedback
#: moves by the same offset so that a check-in scheduling emits as due is due there too (its pulses count towards
#: the match's health).
SERVICE_CLOCK_AHEAD_SECONDS = 36 * 3600
MOVED_CLOCK_SERVICES = ("scheduling", "feedback")


@dataclass
class E2EStack(LocalStack):
    """The local stack, with scheduling's and feedback's clocks moved and scheduling's sweeper polling every second."""

    def api_port_for(self, service: str) -> int:
        # Never the usual 8101-8104, which a developer's stack may hold; and so the links the services build (the
        # calendar feed's) are shown to follow the port each service was given.
        return free_port()

    def service_env(self, service: str) -> dict[str, str]:
        env = super().service_env(service)
        if service in MOVED_CLOCK_SERVICES:
            env["MENTORLOOM_CLOCK_OFFSET_SECONDS"] = str(SERVICE_CLOCK_AHEAD_SECONDS)
        if service == "scheduling":
            env["MENTORLOOM_SWEEP_INTERVAL_SECONDS"] = "1"
        return env


@dataclass
class EventRecorder:
    """Every record of every topic since the stack started, read by a background thread."""

    bootstrap: str
    records: list[StreamRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="event-recorder")
        self._thread.start()

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async for record in follow(self.bootstrap, from_beginning=True, stop=self._stop, poll_ms=200):
            with self._lock:
                self.records.append(record)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def snapshot(self) -> list[StreamRecord]:
        with self._lock:
            return list(self.records)

    def wait_for(
        self, what: str, predicate: Callable[[StreamRecord], bool], *, timeout: float = 60.0, count: int = 1
    ) -> list[StreamRecord]:
        """The matching records once at least `count` of them have arrived (events are asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.snapshot() if r.envelope is not None and predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                types = sorted({r.ce_type for r in self.snapshot()})
                raise AssertionError(f"no {what} on the event stream after {timeout:.0f} s; types seen: {types}")
            time.sleep(0.2)


# Package scope: the stack (four services, PostgreSQL, Redis, the broker) and the recorder stop once the e2e tests are
# done. Kept for the whole session, the idle services polled on the two cores under every later test, and the
# recorder's consumer drew from the global `random` in its thread while Hypothesis generated examples elsewhere
# (HypothesisDeprecationWarning: the global random state changed during a draw).
@pytest.fixture(scope="package")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    stack = E2EStack(tmp_path_factory.mktemp("e2e-stack"))
    missing = [s for s in SERVICES if s not in stack.services]
    if missing:
        pytest.skip(f"services without a __main__ yet: {', '.join(missing)}")
    try:
        stack.start_infrastructure(report=lambda _: None)
        stack.start_services(report=lambda _: None)
        ready = stack.wait_until_ready(180)
        if not all(ready.values()):
            logs = {s: p.log_path.read_text()[-2000:] for s, p in stack.service_procs.items() if not ready[s]}
            raise RuntimeError(f"services not ready: {logs}")
        stack.write_state()
        yield StackEndpoints(
            services={s: f"http://127.0.0.1:{port}" for s, port in stack.api_ports.items()},
            kafka_bootstrap=stack.kafka.bootstrap,
        )
    finally:
        stack.stop(report=lambda _: None)


@pytest.fixture(scope="package")
def events(e2e_stack: StackEndpoints) -> Iterator[EventRecorder]:
    recorder = EventRecorder(e2e_stack.kafka_bootstrap)
    recorder.start()
    yield recorder
    recorder.stop()
