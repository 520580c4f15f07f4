"""The matching service as the service kit sees it: app, projection consumer group, expiry sweeper."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.matching.application.projection import CONSUMED, Handler, make_handler
from services.matching.application.sweeper import run_expiry_sweeper
from services.matching.entrypoints.api import build_app
from services.matching.settings import MatchingSettings
from shared.events.registry import topics_consumed_by
from shared.service import ConsumerSpec, Runtime, ServiceDefinition, SweeperSpec
from shared.settings import clock_of


def _settings(runtime: Runtime) -> MatchingSettings:
    settings = runtime.settings
    return settings if isinstance(settings, MatchingSettings) else MatchingSettings()


def projection_handler(runtime: Runtime) -> Handler:
    return make_handler(runtime.forget_answers_naming)


async def run_sweeper(runtime: Runtime, stop: asyncio.Event) -> None:
    settings = _settings(runtime)
    await run_expiry_sweeper(
        runtime.sessions,
        clock_of(settings),
        stop,
        batch_size=settings.expiry_batch_size,
        interval_seconds=settings.expiry_interval_seconds,
    )


DEFINITION = ServiceDefinition(
    name="matching",
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_app=build_app,
    consumers=(ConsumerSpec("projection", topics_consumed_by(*CONSUMED), projection_handler),),
    sweepers=(SweeperSpec("proposal-expiry", run_sweeper),),
    settings_factory=MatchingSettings,
)
