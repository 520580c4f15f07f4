"""The scheduling service as the service kit sees it: app, consumer group, sweeper."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.scheduling.adapters.lease import SweeperLease
from services.scheduling.application.projection import CONSUMED, Handler, make_handler
from services.scheduling.application.sweeper import SweeperRunner
from services.scheduling.entrypoints.api import build_app
from services.scheduling.settings import SchedulingSettings
from shared.clock import Clock
from shared.events.registry import topics_consumed_by
from shared.service import ConsumerSpec, Runtime, ServiceDefinition, SweeperSpec


def _settings(runtime: Runtime) -> SchedulingSettings:
    settings = runtime.settings
    return settings if isinstance(settings, SchedulingSettings) else SchedulingSettings()


def service_clock(runtime: Runtime) -> Clock:
    return _settings(runtime).clock()


def build_service_app(runtime: Runtime) -> FastAPI:
    return build_app(runtime, service_clock(runtime))


def projection_handler(runtime: Runtime) -> Handler:
    return make_handler(service_clock(runtime), runtime.forget_answers_naming)


async def run_sweeper(runtime: Runtime, stop: asyncio.Event) -> None:
    settings = _settings(runtime)
    runner = SweeperRunner(
        sessions=runtime.sessions,
        lease=SweeperLease(runtime.redis, settings.sweep_lease_key, settings.sweep_lease_seconds),
        clock=service_clock(runtime),
        batch_size=settings.sweep_batch_size,
        interval_seconds=settings.sweep_interval_seconds,
    )
    await runner.run(stop)


DEFINITION = ServiceDefinition(
    name="scheduling",
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_app=build_service_app,
    consumers=(ConsumerSpec("projection", topics_consumed_by(*CONSUMED), projection_handler),),
    sweepers=(SweeperSpec("check-ins", run_sweeper),),
    settings_factory=SchedulingSettings,
)
