"""The feedback service's own options (environment prefix ``MENTORLOOM_``)."""

from __future__ import annotations

from pydantic import Field

from shared.clock import Clock, ClockOffsetSeconds, clock_with_offset
from shared.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback"
    # Same meaning as scheduling's: an end-to-end run moves both by the same offset, so a check-in scheduling
    # emits as due is also due here (its pulses open, and their ratings count towards the match's health).
    clock_offset_seconds: ClockOffsetSeconds = 0.0
    health_sweep_interval_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="How often the sweeper looks for matches past a health deadline."
    )
    health_sweep_batch_size: int = Field(default=500, ge=1, le=100_000, description="Matches per sweep transaction.")


def clock_of(settings: ServiceSettings) -> Clock:
    """The clock the settings ask for: the system's, moved by ``MENTORLOOM_CLOCK_OFFSET_SECONDS`` when set."""
    return clock_with_offset(settings.clock_offset_seconds if isinstance(settings, FeedbackSettings) else 0.0)
