"""The feedback service's wiring: migrations, HTTP app, its one consumer group and the health sweeper, all on one
service clock.

Pulses close lazily (their status is computed from `closes_at` on every read and answer); the sweeper only
re-assesses matches whose health changes with time alone (a first-meeting deadline passing).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.feedback.entrypoints.api import build_app
from services.feedback.entrypoints.handlers import CONSUMED_TOPICS, EventHandler, make_handler
from services.feedback.settings import FeedbackSettings
from services.feedback.sweeper import run_health_sweeper
from shared.service import ConsumerSpec, Runtime, ServiceDefinition, SweeperSpec
from shared.settings import clock_of


def projection_handler(runtime: Runtime) -> EventHandler:
    return make_handler(clock_of(runtime.settings), runtime.forget_answers_naming)


async def run_sweeper(runtime: Runtime, stop: asyncio.Event) -> None:
    settings = runtime.settings if isinstance(runtime.settings, FeedbackSettings) else FeedbackSettings()
    await run_health_sweeper(
        runtime.sessions,
        clock_of(settings),
        stop,
        batch_size=settings.health_sweep_batch_size,
        interval_seconds=settings.health_sweep_interval_seconds,
    )


DEFINITION = ServiceDefinition(
    name="feedback",
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_app=build_app,
    consumers=(ConsumerSpec(name="projection", topics=CONSUMED_TOPICS, handler_factory=projection_handler),),
    sweepers=(SweeperSpec("health", run_sweeper),),
    settings_factory=FeedbackSettings,
)
