"""Every service process runs on uvloop: the relay's and consumers' throughput figures were measured on it."""

from __future__ import annotations

import asyncio
import sys

import pytest

from shared.service import run_event_loop


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not exist on Windows")
def test_service_processes_run_their_roles_on_uvloop() -> None:
    import uvloop

    async def loop_in_use() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert isinstance(run_event_loop(loop_in_use()), uvloop.Loop)


def test_the_event_loop_returns_what_the_main_coroutine_returns_and_closes_afterwards() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def answer() -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return 42

    assert run_event_loop(answer()) == 42
    assert loops[0].is_closed()
