"""Settings every service reads from the environment (prefix ``MENTORLOOM_``).

Fails fast: a production deployment with a placeholder secret or a missing JWKS
URL refuses to start instead of running insecurely.
"""

from __future__ import annotations

import ssl
from enum import StrEnum
from pathlib import Path
from typing import Self

from aiokafka.helpers import create_ssl_context
from pydantic import Field, SecretStr, ValidationError, model_validator
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


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_sasl(self) -> bool:
        return self in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL)


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class KafkaSettings(BaseSettings):
    """How every Kafka client reaches the brokers: the services' and the tools' (dead-letter tool, events tail).

    Checked when loaded, so that a service with an incomplete TLS/SASL configuration refuses to start instead of
    retrying a connection that can never succeed. shared.messaging.kafka.client_options turns these into aiokafka's
    keyword arguments.
    """

    # hide_input_in_errors: a validation error would otherwise print every input, the SASL password included.
    model_config = SettingsConfigDict(env_prefix="MENTORLOOM_", extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers.")
    kafka_enable_idempotence: bool = Field(
        default=False,
        description="Idempotent producer; off by default because the embedded Tansu broker lacks it.",
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default=KafkaSecurityProtocol.PLAINTEXT,
        description=(
            "How clients talk to the brokers: `SSL` and `SASL_SSL` encrypt (TLS), the `SASL_` ones authenticate with"
            " a user name and password. Strimzi's TLS listener with SCRAM users: `SASL_SSL`."
        ),
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None, description="SASL mechanism; required with the `SASL_` protocols, refused with the others."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user; required with the `SASL_` protocols.")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; required with the `SASL_` protocols."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description=(
            "PEM file of the CA that signed the brokers' certificates (Strimzi: the cluster CA, `ca.crt`); the"
            " system's CAs when unset. `SSL` and `SASL_SSL` only."
        ),
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate for mutual TLS (Strimzi `tls` users: `user.crt`)."
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of the client certificate (Strimzi `tls` users: `user.key`)."
    )

    @model_validator(mode="after")
    def _refuse_incomplete_kafka_security(self) -> Self:
        protocol = self.kafka_security_protocol
        current = f"MENTORLOOM_KAFKA_SECURITY_PROTOCOL is {protocol.value}"
        if protocol.uses_sasl:
            if self.kafka_sasl_mechanism is None:
                raise ValueError(
                    f"MENTORLOOM_KAFKA_SASL_MECHANISM is required when {current}: one of"
                    f" {', '.join(m.value for m in KafkaSaslMechanism)}"
                )
            missing = [
                name
                for name, value in (
                    ("MENTORLOOM_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("MENTORLOOM_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required when {current}"
                )
        else:
            given = [
                name
                for name, value in (
                    ("MENTORLOOM_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                    ("MENTORLOOM_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("MENTORLOOM_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if value
            ]
            if given:  # silently unused credentials would hide a protocol left at its default
                raise ValueError(f"{', '.join(given)} set, but {current}: SASL needs SASL_PLAINTEXT or SASL_SSL")
        files = (
            ("MENTORLOOM_KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("MENTORLOOM_KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("MENTORLOOM_KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
        )
        given = [name for name, path in files if path is not None]
        if given and not protocol.uses_tls:
            raise ValueError(f"{', '.join(given)} set, but {current}: TLS needs SSL or SASL_SSL")
        for name, path in files:
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} {'is not a file' if path.exists() else 'does not exist'}")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("MENTORLOOM_KAFKA_SSL_KEYFILE is set without MENTORLOOM_KAFKA_SSL_CERTFILE")
        if protocol.uses_tls:
            try:
                self.kafka_ssl_context()
            except (ssl.SSLError, OSError) as error:  # unreadable or not PEM: say so now, not at every reconnect
                raise ValueError(f"{', '.join(given)}: cannot be loaded: {error}") from error
        return self

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the `SSL` and `SASL_SSL` protocols (it checks the brokers' host names), else None."""
        if not self.kafka_security_protocol.uses_tls:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.kafka_ssl_cafile, certfile=self.kafka_ssl_certfile, keyfile=self.kafka_ssl_keyfile
        )
        return context


def describe_settings_error(error: ValidationError, prefix: str = "MENTORLOOM_") -> str:
    """A settings ValidationError as one line per problem, each naming its environment variable."""
    problems = []
    for detail in error.errors():
        message = str(detail["msg"]).removeprefix("Value error, ")
        location = [str(part) for part in detail["loc"]]
        problems.append(f"{prefix}{location[0].upper()}: {message}" if location else message)
    return "\n".join(problems)


class ServiceSettings(KafkaSettings):
    """Configuration shared by every service role (api, consumer, relay, sweeper, migrate)."""

    model_config = SettingsConfigDict(env_prefix="MENTORLOOM_", extra="ignore", hide_input_in_errors=True)

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
    # The Kafka settings (kafka_bootstrap, kafka_security_protocol, …) come from KafkaSettings.
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
    migration_lock_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description=(
            "The migrate role: the longest a migration statement waits for a table's lock (PostgreSQL lock_timeout)."
            " An ALTER TABLE waiting behind an old pod's transaction makes every later query on the table wait too."
        ),
    )
    migration_lock_attempts: int = Field(
        default=5,
        ge=1,
        le=50,
        description=(
            "The migrate role: how often a revision whose lock timed out is tried, after 1, 2, 4 … s, before the"
            " migration fails naming the table."
        ),
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
