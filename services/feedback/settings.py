"""The feedback service's own options (environment prefix ``MENTORLOOM_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import MovableClockSettings


class FeedbackSettings(MovableClockSettings):
    service_name: str = "feedback"
    health_sweep_interval_seconds: float = Field(
        default=60.0, gt=0, le=86_400, description="How often the sweeper looks for matches past a health deadline."
    )
    health_sweep_batch_size: int = Field(default=500, ge=1, le=100_000, description="Matches per sweep transaction.")
