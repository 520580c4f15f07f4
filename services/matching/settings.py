"""The matching service's own options (environment prefix ``MENTORLOOM_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import MovableClockSettings


class MatchingSettings(MovableClockSettings):
    service_name: str = "matching"
    expiry_interval_seconds: float = Field(default=30.0, gt=0, le=3600, description="Pause between expiry sweeps.")
    expiry_batch_size: int = Field(default=1_000, ge=1, le=50_000, description="Proposals expired per transaction.")
