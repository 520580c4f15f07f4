"""The scheduling service's own options (environment prefix ``MENTORLOOM_``)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import MovableClockSettings


class SchedulingSettings(MovableClockSettings):
    service_name: str = "scheduling"
    sweep_interval_seconds: float = Field(default=5.0, gt=0, le=3600, description="Pause between sweeps.")
    sweep_batch_size: int = Field(default=2_000, ge=1, le=50_000, description="Check-ins per sweep transaction.")
    sweep_lease_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Time-to-live of the sweeper's Redis lease; renewed between batches."
    )
    sweep_lease_key: str = "mentorloom:scheduling:sweeper-lease"
    calendar_feed_base_url: str = Field(
        default="http://127.0.0.1:8103",
        description="Public base URL the calendar feed links are built from (the feed path is appended).",
    )
    default_meeting_minutes: int = Field(default=60, ge=15, le=480)
