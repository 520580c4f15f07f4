"""Every workload of every overlay runs locked down: non-root, read-only, no capabilities, bounded, probed."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    METRICS_PORT,
    OVERLAYS,
    WORKLOAD_KINDS,
    Manifest,
    containers,
    kubectl,
    name_of,
    of_kind,
    overlay,
    pod_spec,
    service_and_role,
)


def workloads() -> list[tuple[str, str]]:
    """(overlay, workload) pairs to parametrize with; a placeholder when rendering fails, which the render test reports."""
    try:
        return [(name, name_of(w)) for name in OVERLAYS for w in of_kind(overlay(name), *WORKLOAD_KINDS)]
    except AssertionError:
        return [("dev", "Deployment/profiles-api")]


def workload(overlay_name: str, name: str) -> Manifest:
    return next(w for w in of_kind(overlay(overlay_name), *WORKLOAD_KINDS) if name_of(w) == name)


# Rendering needs kubectl, which may be missing at collection time: the tests then skip (see conftest.py).
WORKLOAD_IDS = workloads() if kubectl() else [("dev", "Deployment/profiles-api")]


@pytest.mark.parametrize(("overlay_name", "name"), WORKLOAD_IDS)
def test_every_workload_runs_as_a_non_root_user_under_the_runtime_default_seccomp_profile(
    overlay_name: str, name: str
) -> None:
    spec = pod_spec(workload(overlay_name, name))
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] > 0
    assert security["runAsGroup"] > 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert "hostNetwork" not in spec
    assert "hostPID" not in spec
    assert "hostIPC" not in spec


@pytest.mark.parametrize(("overlay_name", "name"), WORKLOAD_IDS)
def test_every_container_has_a_read_only_root_filesystem_no_capabilities_and_no_privilege_escalation(
    overlay_name: str, name: str
) -> None:
    deployed = workload(overlay_name, name)
    for container in containers(deployed):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security.get("privileged", False) is False
        assert security.get("runAsNonRoot", True) is True
        # Python and the libraries it loads want a writable /tmp: a size-bounded emptyDir, not the image.
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod_spec(deployed).get("volumes", [])}
        assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize(("overlay_name", "name"), WORKLOAD_IDS)
def test_every_container_requests_and_is_limited_in_cpu_and_memory(overlay_name: str, name: str) -> None:
    for container in containers(workload(overlay_name, name)):
        resources = container["resources"]
        assert set(resources["requests"]) >= {"cpu", "memory"}
        assert set(resources["limits"]) >= {"cpu", "memory"}


@pytest.mark.parametrize(("overlay_name", "name"), WORKLOAD_IDS)
def test_every_long_running_container_is_probed_for_liveness_and_apis_for_readiness_and_all_are_scraped(
    overlay_name: str, name: str
) -> None:
    deployed = workload(overlay_name, name)
    _, role = service_and_role(deployed)
    container = pod_spec(deployed)["containers"][0]
    if role == "migrate":
        assert "livenessProbe" not in container  # a Job that runs to completion
        return
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    annotations = deployed["spec"]["template"]["metadata"]["annotations"]
    if role == "api":
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert port_names[container["readinessProbe"]["httpGet"]["port"]] == 8000
        served_on = 8000
    else:
        # A worker serves /metrics and /healthz on MENTORLOOM_METRICS_PORT; it takes no traffic, so no readiness.
        assert "readinessProbe" not in container
        served_on = METRICS_PORT
    assert port_names[container["livenessProbe"]["httpGet"]["port"]] == served_on
    assert annotations["prometheus.io/scrape"] == "true"
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(served_on), "/metrics")


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_service_accounts_do_not_mount_api_tokens(overlay_name: str) -> None:
    accounts = of_kind(overlay(overlay_name), "ServiceAccount")
    assert accounts
    assert all(a["automountServiceAccountToken"] is False for a in accounts)
    names = {a["metadata"]["name"] for a in accounts}
    for deployed in of_kind(overlay(overlay_name), *WORKLOAD_KINDS):
        assert pod_spec(deployed)["serviceAccountName"] in names


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(overlay_name: str) -> None:
    (namespace,) = of_kind(overlay(overlay_name), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
