"""Kafka TLS/SASL: the settings, their checks at start-up, and every Kafka client the services and tools create."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from typer.testing import CliRunner

import deploy.local.events_tail
import shared.messaging.consumer
import shared.messaging.dlq
import shared.messaging.kafka
import shared.service
from deploy.local.cli import app as mentorloom_cli
from shared.events.envelope import decode
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.dlq import main as dlq_main
from shared.messaging.dlq import read_dead_letters, replay_dead_letters
from shared.messaging.kafka import (
    broker_reachable,
    client_options,
    ensure_topics,
    make_producer,
    read_topic_to_end,
)
from shared.service import ConsumerSpec, Runtime, ServiceDefinition, consumer_runners
from shared.settings import KafkaSettings, ServiceSettings, describe_settings_error

BOOTSTRAP = "kafka.example.test:9093"
PASSWORD = "a-sasl-password-that-must-never-be-printed"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and a client certificate it signed, as Strimzi hands them out (PEM files)."""
    directory = tmp_path_factory.mktemp("kafka-tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("mentorloom test cluster CA"))
        .issuer_name(_name("mentorloom test cluster CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(_name("matching"))
        .issuer_name(ca.subject)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(directory / "ca.crt", directory / "user.crt", directory / "user.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    paths.client_key.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def _settings(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> KafkaSettings:
    for name, value in variables.items():
        monkeypatch.setenv(f"MENTORLOOM_KAFKA_{name.upper()}", str(value))
    return KafkaSettings()


def _refusal(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> str:
    with pytest.raises(ValidationError) as refused:
        _settings(monkeypatch, **variables)
    return describe_settings_error(refused.value)


# --- settings to aiokafka keyword arguments ------------------------------------------------------------------------


def test_without_settings_or_with_plaintext_the_clients_keep_aiokafkas_plaintext_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert client_options(None) == {}
    assert client_options(_settings(monkeypatch)) == {"security_protocol": "PLAINTEXT"}


def test_ssl_gives_a_tls_context_that_trusts_the_configured_ca_and_checks_host_names(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    options = client_options(_settings(monkeypatch, security_protocol="SSL", ssl_cafile=certificates.ca))
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    trusted = [ca["subject"] for ca in context.get_ca_certs()]
    assert trusted == [((("commonName", "mentorloom test cluster CA"),),)]


def test_ssl_with_a_client_certificate_loads_it_for_mutual_tls(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    settings = _settings(
        monkeypatch,
        security_protocol="SSL",
        ssl_cafile=certificates.ca,
        ssl_certfile=certificates.client_cert,
        ssl_keyfile=certificates.client_key,
    )
    assert isinstance(client_options(settings)["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_passes_mechanism_and_credentials_without_tls(
    monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    settings = _settings(
        monkeypatch,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="matching",
        sasl_password=PASSWORD,
    )
    assert client_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "matching",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_passes_both_the_tls_context_and_the_credentials(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    options = client_options(
        _settings(
            monkeypatch,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="matching",
            sasl_password=PASSWORD,
            ssl_cafile=certificates.ca,
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "matching",
        PASSWORD,
    )


async def test_aiokafka_accepts_the_options_of_every_protocol(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    sasl = {"sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "matching", "sasl_password": PASSWORD}
    for variables in (
        {"security_protocol": "PLAINTEXT"},
        {"security_protocol": "SSL", "ssl_cafile": certificates.ca},
        {"security_protocol": "SASL_PLAINTEXT", **sasl},
        {"security_protocol": "SASL_SSL", "ssl_cafile": certificates.ca, **sasl},
    ):
        options = client_options(_settings(monkeypatch, **variables))
        # The constructors check the combination (e.g. SSL without a context); nothing connects until start().
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **options)
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, **options)
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **options)
        await producer.stop()
        await consumer.stop()
        await admin.close()
        for name in variables:
            monkeypatch.delenv(f"MENTORLOOM_KAFKA_{name.upper()}")


# --- refused at start-up ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_username_or_password_is_refused_naming_the_missing_variable(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    message = _refusal(monkeypatch, security_protocol=protocol, sasl_mechanism="SCRAM-SHA-512", sasl_username="x")
    assert "MENTORLOOM_KAFKA_SASL_PASSWORD is required" in message
    assert "USERNAME" not in message
    monkeypatch.delenv("MENTORLOOM_KAFKA_SASL_USERNAME")
    message = _refusal(monkeypatch, security_protocol=protocol, sasl_mechanism="SCRAM-SHA-512")
    assert "MENTORLOOM_KAFKA_SASL_USERNAME and MENTORLOOM_KAFKA_SASL_PASSWORD are required" in message


def test_sasl_without_a_mechanism_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, security_protocol="SASL_SSL", sasl_username="x", sasl_password=PASSWORD)
    assert "MENTORLOOM_KAFKA_SASL_MECHANISM is required" in message
    assert "SCRAM-SHA-512" in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_a_mechanism_or_credentials_with_a_protocol_without_sasl_are_refused(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    message = _refusal(monkeypatch, security_protocol=protocol, sasl_mechanism="PLAIN")
    assert "MENTORLOOM_KAFKA_SASL_MECHANISM set" in message
    assert f"MENTORLOOM_KAFKA_SECURITY_PROTOCOL is {protocol}" in message
    monkeypatch.delenv("MENTORLOOM_KAFKA_SASL_MECHANISM")
    message = _refusal(monkeypatch, security_protocol=protocol, sasl_password=PASSWORD)
    assert "MENTORLOOM_KAFKA_SASL_PASSWORD set" in message


def test_a_ca_file_that_does_not_exist_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "ca.crt"
    message = _refusal(monkeypatch, security_protocol="SSL", ssl_cafile=missing)
    assert message == f"MENTORLOOM_KAFKA_SSL_CAFILE: {missing} does not exist"


def test_a_ca_file_that_is_not_a_certificate_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    garbage = tmp_path / "ca.crt"
    garbage.write_text("not a certificate")
    assert "MENTORLOOM_KAFKA_SSL_CAFILE: cannot be loaded" in _refusal(
        monkeypatch,
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=PASSWORD,
        ssl_cafile=garbage,
    )


def test_certificate_files_with_a_protocol_without_tls_are_refused(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    message = _refusal(monkeypatch, security_protocol="PLAINTEXT", ssl_cafile=certificates.ca)
    assert "MENTORLOOM_KAFKA_SSL_CAFILE set, but MENTORLOOM_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in message


def test_a_key_without_its_certificate_is_refused(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> None:
    message = _refusal(monkeypatch, security_protocol="SSL", ssl_keyfile=certificates.client_key)
    assert message == "MENTORLOOM_KAFKA_SSL_KEYFILE is set without MENTORLOOM_KAFKA_SSL_CERTFILE"


def test_an_unknown_protocol_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _refusal(monkeypatch, security_protocol="TLS").startswith("MENTORLOOM_KAFKA_SECURITY_PROTOCOL: ")


def test_a_refusal_never_prints_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTORLOOM_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError) as refused:
        ServiceSettings()
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in describe_settings_error(refused.value)


def test_a_service_with_incomplete_kafka_settings_exits_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.profiles.bootstrap import DEFINITION

    monkeypatch.setenv("MENTORLOOM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MENTORLOOM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(SystemExit) as exited:
        shared.service.main(DEFINITION, ["migrate"])  # the migrate Job runs first in a release
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "MENTORLOOM_KAFKA_SASL_USERNAME and MENTORLOOM_KAFKA_SASL_PASSWORD are required" in error
    assert "Traceback" not in error


# --- every client the services and tools create -------------------------------------------------------------------


class ConnectAttemptError(Exception):
    """Raised by a recording client where a real one would connect."""


@dataclass
class Recorded:
    clients: list[tuple[str, dict[str, Any]]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.clients if name == kind]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """Every aiokafka client constructed through the project's modules, with its keyword arguments."""
    record = Recorded([])

    def recorder(kind: str) -> type:
        class RecordingClient:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                record.clients.append((kind, kwargs))

            async def start(self) -> None:
                raise ConnectAttemptError(kind)

            async def bootstrap(self) -> None:
                raise ConnectAttemptError(kind)

            async def stop(self) -> None:
                pass

            async def close(self) -> None:
                pass

        return RecordingClient

    for module in (shared.messaging.kafka, shared.messaging.consumer, deploy.local.events_tail):
        for kind in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"):
            if hasattr(module, kind):
                monkeypatch.setattr(module, kind, recorder(kind))
    return record


@pytest.fixture
def secured(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> ServiceSettings:
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": "matching",
        "SASL_PASSWORD": PASSWORD,
        "SSL_CAFILE": str(certificates.ca),
    }.items():
        monkeypatch.setenv(f"MENTORLOOM_KAFKA_{name}", value)
    return ServiceSettings(kafka_bootstrap=BOOTSTRAP)


def _assert_secured(kwargs: dict[str, Any]) -> None:
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("matching", PASSWORD)


async def test_the_shared_client_functions_pass_the_security_options(
    recorded: Recorded, secured: ServiceSettings
) -> None:
    make_producer(BOOTSTRAP, settings=secured)
    with pytest.raises(ConnectAttemptError):
        await ensure_topics(BOOTSTRAP, ["t"], settings=secured)
    with pytest.raises(ConnectAttemptError):
        await broker_reachable(BOOTSTRAP, settings=secured)
    with pytest.raises(ConnectAttemptError):
        await read_topic_to_end(BOOTSTRAP, "t", settings=secured)
    assert [name for name, _ in recorded.clients] == [
        "AIOKafkaProducer",
        "AIOKafkaAdminClient",
        "AIOKafkaClient",
        "AIOKafkaConsumer",
    ]
    for _, kwargs in recorded.clients:
        _assert_secured(kwargs)


def test_make_producer_keeps_the_benchmarks_calling_convention(recorded: Recorded) -> None:
    make_producer("127.0.0.1:9092")  # benchmarks/messaging_throughput.py
    (kwargs,) = recorded.of("AIOKafkaProducer")
    assert "security_protocol" not in kwargs
    assert kwargs["acks"] == "all"


async def test_the_services_consumers_relay_and_readiness_check_use_the_services_settings(
    recorded: Recorded, secured: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(*_: Any) -> None:
        return None

    definition = ServiceDefinition(
        name="matching",
        migrations_dir=Path("."),
        build_app=lambda runtime: None,  # type: ignore[arg-type,return-value]
        consumers=(ConsumerSpec("projection", ["mentorloom.profiles.v1"], lambda runtime: handler),),
    )
    runtime = Runtime(settings=secured, engine=None, sessions=None, redis=None)  # type: ignore[arg-type]
    (runner,) = consumer_runners(definition, runtime)
    with pytest.raises(ConnectAttemptError):
        await runner.run()  # the consumer, then its dead-letter producer
    with pytest.raises(ConnectAttemptError):
        await runtime.readiness_checks()["broker"]()
    relay_producers: list[dict[str, Any]] = []

    def relay_producer(bootstrap: str, **kwargs: Any) -> AIOKafkaProducer:
        relay_producers.append(kwargs)
        raise ConnectAttemptError("relay")

    monkeypatch.setattr(shared.service, "make_producer", relay_producer)
    with pytest.raises(ConnectAttemptError):
        await shared.service._run_relay(definition, runtime, asyncio.Event())
    assert [name for name, _ in recorded.clients] == ["AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaClient"]
    for _, kwargs in recorded.clients:
        _assert_secured(kwargs)
    assert relay_producers[0]["settings"] is secured


async def test_the_consumer_runner_without_settings_stays_plaintext(recorded: Recorded) -> None:
    async def handler(*_: Any) -> None:
        return None

    runner: ConsumerRunner[Any] = ConsumerRunner(
        name="n",
        topics=["t"],
        bootstrap=BOOTSTRAP,
        sessions=None,  # type: ignore[arg-type]  # never reached: the connection attempt stops the run
        handler=handler,
        decode=decode,
    )
    with pytest.raises(ConnectAttemptError):
        await runner.run()
    assert all("security_protocol" not in kwargs for _, kwargs in recorded.clients)


async def test_the_dead_letter_tool_and_events_tail_pass_the_security_options(
    recorded: Recorded, secured: ServiceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConnectAttemptError):
        await read_dead_letters(BOOTSTRAP, "mentorloom.profiles.v1.dlq", settings=secured)

    async def one_letter(*_: Any, **__: Any) -> AsyncIterator[list[Any]]:
        yield [ConsumerRecord("mentorloom.profiles.v1.dlq", 0, 0, 0, 0, None, b"{}", None, 0, 2, [])]

    monkeypatch.setattr(shared.messaging.dlq, "stream_topic_to_end", one_letter)
    with pytest.raises(ConnectAttemptError):
        await replay_dead_letters(BOOTSTRAP, "mentorloom.profiles.v1.dlq", settings=secured)  # its producer
    with pytest.raises(ConnectAttemptError):
        async for _ in deploy.local.events_tail.follow(BOOTSTRAP, ["mentorloom.profiles.v1"], settings=secured):
            pass
    assert [name for name, _ in recorded.clients] == ["AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaConsumer"]
    for _, kwargs in recorded.clients:
        _assert_secured(kwargs)


def test_the_command_line_tools_read_the_kafka_settings_from_the_environment(
    recorded: Recorded, secured: ServiceSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = CliRunner()
    for command in (
        ["dlq", "list", "mentorloom.profiles.v1.dlq", "--bootstrap", BOOTSTRAP],
        ["dlq", "replay", "mentorloom.profiles.v1.dlq", "--bootstrap", BOOTSTRAP],
        ["events", "tail", "--bootstrap", BOOTSTRAP, "--for", "1"],
    ):
        result = runner.invoke(mentorloom_cli, command)
        assert isinstance(result.exception, ConnectAttemptError), (command, result.output)
    with pytest.raises(ConnectAttemptError):
        dlq_main(["list", "--bootstrap", BOOTSTRAP, "--topic", "mentorloom.profiles.v1.dlq"])
    assert [name for name, _ in recorded.clients] == ["AIOKafkaConsumer"] * 4
    for _, kwargs in recorded.clients:
        _assert_secured(kwargs)


def test_the_command_line_tools_refuse_incomplete_kafka_settings_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MENTORLOOM_KAFKA_SASL_MECHANISM", "PLAIN")
    result = CliRunner().invoke(mentorloom_cli, ["dlq", "list", "mentorloom.profiles.v1.dlq", "--bootstrap", BOOTSTRAP])
    assert result.exit_code == 2
    assert "MENTORLOOM_KAFKA_SASL_MECHANISM set" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(SystemExit) as exited:
        dlq_main(["list", "--bootstrap", BOOTSTRAP, "--topic", "mentorloom.profiles.v1.dlq"])
    assert exited.value.code == 2
    assert "MENTORLOOM_KAFKA_SASL_MECHANISM set" in capsys.readouterr().err
