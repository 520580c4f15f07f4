"""Rendering the Kustomize overlays and reading what a workload will see, for the deployment tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from shared.settings import ServiceSettings

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPOSITORY_ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})
# Custom resources the Kubernetes schemas do not cover; the tests check them structurally instead.
CUSTOM_KINDS = frozenset({"KafkaTopic"})
# Where a process without the api role serves /metrics and /healthz: the setting's default, which no manifest changes.
METRICS_PORT: int = ServiceSettings.model_fields["metrics_port"].default

Manifest = dict[str, Any]


def kubectl() -> str | None:
    return shutil.which("kubectl")


@cache
def render(directory: str) -> tuple[Manifest, ...]:
    """``kubectl kustomize`` output of a directory under deploy/k8s, one dict per object (cached per test run)."""
    return render_path(K8S_DIR / directory)


def render_path(directory: Path) -> tuple[Manifest, ...]:
    """``kubectl kustomize`` output of any kustomization directory, one dict per object."""
    binary = kubectl()
    assert binary is not None, "kubectl is needed to render the manifests"
    result = subprocess.run(
        [binary, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def overlay(name: str) -> tuple[Manifest, ...]:
    return render(f"overlays/{name}")


def of_kind(objects: tuple[Manifest, ...], *kinds: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] in kinds]


def name_of(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[Manifest]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def service_and_role(workload: Manifest) -> tuple[str, str]:
    """The module and role a workload's main container runs: ``python -m services.<name> <role>``."""
    module, role = pod_spec(workload)["containers"][0]["args"]
    assert module.startswith("services."), module
    return module.removeprefix("services."), role


@dataclass(frozen=True)
class EnvironmentEntry:
    """A variable a container gets, and where its value comes from."""

    name: str
    value: str | None  # None when it comes from a Secret
    source: str
    optional: bool = False  # a Secret key the pod starts without (secretKeyRef optional: true)


def environment(workload: Manifest, objects: tuple[Manifest, ...]) -> Iterator[EnvironmentEntry]:
    """Every variable the main container gets: ConfigMaps and Secrets by envFrom, then its own ``env`` entries."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objects, "ConfigMap")}
    container = pod_spec(workload)["containers"][0]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            assert ref in config_maps, f"{name_of(workload)} reads ConfigMap {ref}, which the overlay does not define"
            for key, value in config_maps[ref].items():
                yield EnvironmentEntry(key, value, f"ConfigMap {ref}")
        else:
            raise AssertionError(f"{name_of(workload)}: envFrom other than a ConfigMap hides the variable names")
    for entry in container.get("env", []):
        if "value" in entry:
            yield EnvironmentEntry(entry["name"], entry["value"], "env value")
        else:
            secret = entry["valueFrom"]["secretKeyRef"]
            source = f"Secret {secret['name']} key {secret['key']}"
            yield EnvironmentEntry(entry["name"], None, source, optional=secret.get("optional", False))
