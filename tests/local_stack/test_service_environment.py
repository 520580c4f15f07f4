"""What the local stack hands its services: its own servers, whatever the developer's shell exports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.local.stack import LocalStack
from shared.settings import ServiceSettings


def test_a_clusters_kafka_tls_and_sasl_settings_in_the_shell_do_not_reach_the_local_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cafile = tmp_path / "ca.crt"
    cafile.write_text("not needed: the setting must not be passed on\n")
    for name, value in {
        "MENTORLOOM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MENTORLOOM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MENTORLOOM_KAFKA_SASL_USERNAME": "matching",
        "MENTORLOOM_KAFKA_SASL_PASSWORD": "from-the-cluster",
        "MENTORLOOM_KAFKA_SSL_CAFILE": str(cafile),
        "MENTORLOOM_DATABASE_POOL_SIZE": "7",  # a tuning setting still passes through
    }.items():
        monkeypatch.setenv(name, value)
    stack = LocalStack(tmp_path / "stack")
    stack.api_ports["matching"] = 8102

    env = stack.service_env("matching")

    assert env["MENTORLOOM_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [name for name in env if name.startswith(("MENTORLOOM_KAFKA_SASL_", "MENTORLOOM_KAFKA_SSL_"))]
    assert env["MENTORLOOM_DATABASE_POOL_SIZE"] == "7"
    for name in [n for n in os.environ if n.startswith("MENTORLOOM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("MENTORLOOM_"):
            monkeypatch.setenv(name, value)
    settings = ServiceSettings()  # what the service loads at start: valid, PLAINTEXT to the embedded broker
    assert settings.kafka_security_protocol.value == "PLAINTEXT"
    assert settings.kafka_bootstrap == stack.kafka.bootstrap
