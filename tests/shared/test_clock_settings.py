"""Every service that reads the time takes it from one setting with one meaning, so moved services agree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from services.feedback.entrypoints.api import build_app as build_feedback_app
from services.feedback.settings import FeedbackSettings
from services.matching.entrypoints.api import build_app as build_matching_app
from services.matching.settings import MatchingSettings
from services.scheduling.bootstrap import build_service_app as build_scheduling_app
from services.scheduling.settings import SchedulingSettings
from shared.clock import Clock, OffsetClock, SystemClock
from shared.service import Runtime
from shared.settings import AuthMode, Environment, MovableClockSettings, ServiceSettings, clock_of

AHEAD = timedelta(hours=36)
SERVICES_THAT_READ_THE_TIME: list[tuple[type[MovableClockSettings], Callable[[Runtime], FastAPI]]] = [
    (MatchingSettings, build_matching_app),
    (SchedulingSettings, build_scheduling_app),
    (FeedbackSettings, build_feedback_app),
]
SETTINGS_CLASSES = [settings for settings, _ in SERVICES_THAT_READ_THE_TIME]


@pytest.mark.parametrize("settings_class", SETTINGS_CLASSES)
def test_the_clock_offset_setting_moves_the_services_clock_forward(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[MovableClockSettings]
) -> None:
    monkeypatch.setenv("MENTORLOOM_CLOCK_OFFSET_SECONDS", str(AHEAD.total_seconds()))

    clock = clock_of(settings_class())

    assert isinstance(clock, OffsetClock)
    assert clock.offset == AHEAD


@pytest.mark.parametrize("settings_class", SETTINGS_CLASSES)
def test_without_an_offset_the_service_reads_the_system_clock(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[MovableClockSettings]
) -> None:
    monkeypatch.delenv("MENTORLOOM_CLOCK_OFFSET_SECONDS", raising=False)
    assert isinstance(clock_of(settings_class()), SystemClock)


def test_settings_without_a_clock_field_never_move_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTORLOOM_CLOCK_OFFSET_SECONDS", "3600")
    assert isinstance(clock_of(ServiceSettings()), SystemClock)


@pytest.mark.parametrize("offset", ["-1", str(11 * 365 * 86_400)])
def test_a_clock_moved_backwards_or_beyond_ten_years_is_refused(monkeypatch: pytest.MonkeyPatch, offset: str) -> None:
    monkeypatch.setenv("MENTORLOOM_CLOCK_OFFSET_SECONDS", offset)
    with pytest.raises(ValidationError, match="clock_offset_seconds"):
        MatchingSettings()


def production_settings(clock_offset_seconds: float) -> SchedulingSettings:
    return SchedulingSettings(
        environment=Environment.PRODUCTION,
        auth_mode=AuthMode.JWKS,
        auth_jwks_url="https://idp.example.test/certs",
        clock_offset_seconds=clock_offset_seconds,
    )


def test_production_with_a_moved_clock_refuses_to_load() -> None:
    with pytest.raises(ValidationError, match="MENTORLOOM_CLOCK_OFFSET_SECONDS must be 0 in production"):
        production_settings(clock_offset_seconds=60)


def test_production_on_the_system_clock_loads() -> None:
    assert isinstance(clock_of(production_settings(clock_offset_seconds=0)), SystemClock)


@pytest.mark.parametrize(("settings_class", "build_app"), SERVICES_THAT_READ_THE_TIME)
def test_each_services_api_reads_the_clock_its_settings_ask_for(
    settings_class: type[MovableClockSettings], build_app: Callable[[Runtime], FastAPI]
) -> None:
    # Building the app opens no connection: the runtime's engine and Redis client connect on first use.
    runtime = Runtime.from_settings(settings_class(clock_offset_seconds=AHEAD.total_seconds()))
    try:
        app_clock: Clock = build_app(runtime).state.clock
        reading = app_clock.now() - datetime.now(UTC)
    finally:
        asyncio.run(runtime.close())

    assert AHEAD - timedelta(minutes=1) < reading <= AHEAD
