"""Settings every service reads from the environment (prefix ``MENTORLOOM_``).

Fails fast: a production deployment with a placeholder secret or a missing JWKS
URL refuses to start instead of running insecurely.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import Clock, ClockOffsetSeconds, SystemClock, clock_with_offset

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "password"})


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class AuthMode(StrEnum):
    DEV = "dev"  # tokens signed with a local dev key (HS256), minted by `mentorloom token`
    JWKS = "jwks"  # RS256 verified against an OIDC provider's JWKS URL


class ServiceSettings(BaseSettings):
    """Configuration shared by every service role (api, consumer, relay, sweeper, migrate)."""

    model_config = SettingsConfigDict(env_prefix="MENTORLOOM_", extra="ignore")

    environment: Environment = Environment.LOCAL
    service_name: str = Field(default="mentorloom", description="Name used in logs, metrics and ce_source.")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/mentorloom",
        description=(
            "SQLAlchemy URL of this service's own PostgreSQL database. On the server's machine,"
            " `postgresql+asyncpg://user@/db?host=<socket dir>&port=<port>` goes through its Unix socket instead of"
            " TCP, as the local stack's services do (no TCP stack on either end)."
        ),
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers.")
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer; off by default because the embedded Tansu broker lacks it.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    http_host: str = "0.0.0.0"  # containers must listen on all interfaces
    http_port: int = Field(default=8000, ge=1, le=65535)
    metrics_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description=(
            "Port of /metrics, /healthz and /readyz in a process without the api role (relay, consumer, sweeper), "
            "whose outbox, consumer and sweeper metrics live in that process; 0 serves none."
        ),
    )
    log_level: str = "INFO"
    log_json: bool = True

    auth_mode: AuthMode = AuthMode.DEV
    auth_dev_secret: SecretStr = Field(
        default=SecretStr("mentorloom-local-development-only-signing-key"),
        description="HS256 key for dev tokens; refused in production.",
    )
    auth_jwks_url: str | None = None
    auth_issuer: str = "mentorloom-dev"
    auth_audience: str = "mentorloom"

    rate_limit_per_minute: int = Field(default=600, ge=1)
    idempotency_ttl_seconds: int = Field(default=86_400, ge=60)

    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    inbox_retention_days: int = Field(
        default=35,
        ge=1,
        le=3650,
        description=(
            "Inbox rows older than this are pruned. Keep it longer than the retention of every topic the service"
            " consumes (7-30 days in the prod overlay): an event redelivered after its inbox row is gone would"
            " apply twice."
        ),
    )
    inbox_prune_interval_seconds: float = Field(
        default=3600, gt=0, le=86_400, description="How often the consumer role prunes the inbox."
    )

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            if self.auth_mode is not AuthMode.JWKS:
                raise ValueError("MENTORLOOM_AUTH_MODE must be 'jwks' in production")
            if not self.auth_jwks_url:
                raise ValueError("MENTORLOOM_AUTH_JWKS_URL is required in production")
        if self.auth_mode is AuthMode.DEV:
            secret = self.auth_dev_secret.get_secret_value()
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 32:
                raise ValueError("MENTORLOOM_AUTH_DEV_SECRET must be at least 32 characters and not a placeholder")
        return self


class MovableClockSettings(ServiceSettings):
    """Settings of a service that reads the time (matching, scheduling, feedback): its clock can be moved.

    One field with one meaning for all of them, so that a demo or an end-to-end run that moves several services by
    the same offset keeps them agreeing on what is due, past or expired.
    """

    clock_offset_seconds: ClockOffsetSeconds = 0.0

    @model_validator(mode="after")
    def _refuse_moved_clock_in_production(self) -> Self:
        if self.environment is Environment.PRODUCTION and self.clock_offset_seconds:
            raise ValueError("MENTORLOOM_CLOCK_OFFSET_SECONDS must be 0 in production: it moves the service's time")
        return self

    def clock(self) -> Clock:
        """The system's clock, moved forward by ``clock_offset_seconds`` when that is set."""
        return clock_with_offset(self.clock_offset_seconds)


def clock_of(settings: ServiceSettings) -> Clock:
    """The clock a service's settings ask for; settings without a clock field read the system's."""
    return settings.clock() if isinstance(settings, MovableClockSettings) else SystemClock()
