"""A stop signal reaches the launcher even when its first raise is lost."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from deploy.local.servers import ManagedProcess, free_port
from deploy.local.stack import LocalStack, StopRequested, StopSignals


def test_a_stop_signal_whose_raise_a_finalizer_swallowed_still_ends_the_wait_for_readiness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen in a full test run: SIGHUP arrived while the garbage collector freed an HTTP client's socket during the
    # readiness polls; Python printed the handler's StopRequested as 'Exception ignored in …' and the launcher waited
    # its whole 180 s for a service that could never be ready, then exited 1 instead of 128 + 1.
    swallowed: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)
    signals = StopSignals()

    class FreedByTheCollector:
        def __del__(self) -> None:
            signals._handle(signal.SIGHUP, None)  # what the interpreter does when the signal comes in here

    FreedByTheCollector()
    assert [type(lost.exc_value) for lost in swallowed] == [StopRequested]

    stack = LocalStack(tmp_path, services=["profiles"])
    stack.api_ports["profiles"] = free_port()  # nothing listens: never ready
    stack.service_procs["profiles"] = cast(ManagedProcess, SimpleNamespace(alive=lambda: True))
    with pytest.raises(StopRequested) as stopped:
        stack.wait_until_ready(30, keep_going=signals.raise_if_lost)
    assert stopped.value.signum == signal.SIGHUP


def test_once_the_launcher_has_caught_the_stop_nothing_is_raised_again() -> None:
    signals = StopSignals()
    with pytest.raises(StopRequested):
        signals._handle(signal.SIGTERM, None)
    signals.stopping()  # what the launcher does once it has caught it
    signals.raise_if_lost()  # would raise StopRequested for the caught signal
    signals._handle(signal.SIGINT, None)  # a second Ctrl-C during the orderly stop is only noted
    assert signals.received == signal.SIGTERM
