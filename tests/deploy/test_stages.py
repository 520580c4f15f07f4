"""The pre-deploy stage holds everything a migrate Job needs, and deploy/README.md applies it in the right order."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from deploy.k8s.config_reference import README, service_names
from tests.deploy.manifests import K8S_DIR, OVERLAYS, Manifest, name_of, of_kind, overlay, pod_spec


def _stage_label() -> tuple[str, str]:
    """The label the pre-deploy component sets, read from the component itself."""
    component = yaml.safe_load((K8S_DIR / "components" / "pre-deploy" / "kustomization.yaml").read_text())
    (patch,) = component["patches"]
    ((key, value),) = yaml.safe_load(patch["patch"])["metadata"]["labels"].items()
    return key, value


def _in_stage(obj: Manifest) -> bool:
    key, value = _stage_label()
    return bool(obj["metadata"].get("labels", {}).get(key) == value)


def _readme_code_lines() -> list[str]:
    """Every line of every fenced code block of deploy/README.md, in order, continuation lines joined."""
    lines: list[str] = []
    fenced = False
    for line in README.read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced and line.strip():
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1].removesuffix("\\").rstrip() + " " + line.strip()
            else:
                lines.append(line.strip())
    return lines


def _secrets_the_readme_creates() -> set[str]:
    names = set()
    for line in _readme_code_lines():
        if match := re.search(r"create secret \w+ (\S+)", line):
            name = match.group(1)
            names |= {name.replace("$svc", s) for s in service_names()} if "$svc" in name else {name}
    return names


def _references(job: Manifest) -> Iterator[tuple[str, str]]:
    """(kind, name) of every object the Job's pods need before they can start."""
    spec = pod_spec(job)
    yield "ServiceAccount", spec.get("serviceAccountName", "default")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"]
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"]
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {})
            if "configMapKeyRef" in reference:
                yield "ConfigMap", reference["configMapKeyRef"]["name"]
            if "secretKeyRef" in reference:
                yield "Secret", reference["secretKeyRef"]["name"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                yield "ConfigMap", source["configMap"]["name"]
            if "secret" in source:
                yield "Secret", source["secret"]["name"]


def _selects(policy: Manifest, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_pre_deploy_stage_holds_the_namespace_and_everything_a_migrate_job_references(overlay_name: str) -> None:
    objects = overlay(overlay_name)
    staged = {(o["kind"], o["metadata"]["name"]) for o in objects if _in_stage(o)}
    operator_secrets = _secrets_the_readme_creates()
    jobs = of_kind(objects, "Job")
    assert jobs
    missing = []
    for job in jobs:
        assert ("Job", job["metadata"]["name"]) in staged, f"{name_of(job)} is not in the pre-deploy stage"
        for kind, name in _references(job):
            if kind == "Secret":
                assert name in operator_secrets, f"{name_of(job)} needs Secret {name}, which the README never creates"
            elif (kind, name) not in staged:
                missing.append(f"{name_of(job)} needs {kind}/{name}")
        labels = job["spec"]["template"]["metadata"]["labels"]
        missing += [
            f"{name_of(job)} is fenced by {name_of(p)}"
            for p in of_kind(objects, "NetworkPolicy")
            if _selects(p, labels) and ("NetworkPolicy", p["metadata"]["name"]) not in staged
        ]
    assert missing == []
    namespaces = {("Namespace", n["metadata"]["name"]) for n in of_kind(objects, "Namespace")}
    assert namespaces
    assert namespaces <= staged, "the Jobs' namespace must exist when the stage is applied"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_pre_deploy_stage_starts_no_long_running_workload(overlay_name: str) -> None:
    staged = [o for o in overlay(overlay_name) if _in_stage(o)]
    assert {o["kind"] for o in staged} <= {"Namespace", "ServiceAccount", "ConfigMap", "NetworkPolicy", "Job"}


@pytest.mark.no_kubectl
def test_the_readme_creates_the_namespace_then_the_secrets_then_runs_the_pre_deploy_stage_then_the_rest() -> None:
    key, value = _stage_label()
    lines = _readme_code_lines()

    def first(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"deploy/README.md has no command matching {pattern!r}"
        return found[0]

    namespace = first(r"kubectl apply -f deploy/k8s/overlays/\$OVERLAY/namespace\.yaml")
    secrets = first(r"kubectl -n \"\$NS\" create secret generic \$svc-connections")
    stage = first(
        rf"kubectl kustomize deploy/k8s/overlays/\$OVERLAY \| kubectl apply -l {re.escape(f'{key}={value}')} -f -"
    )
    wait = first(r"deploy/k8s/wait-for-migrations\.sh \"\$NS\"")
    everything = first(r"kubectl apply -k deploy/k8s/overlays/\$OVERLAY")
    assert namespace < secrets < stage < wait < everything


@pytest.mark.no_kubectl
def test_the_readme_puts_every_namespaced_command_in_the_overlays_namespace() -> None:
    hard_coded = [
        line for line in _readme_code_lines() if re.search(r"kubectl (-n|--namespace)[ =]mentorloom\b(?!-dev)", line)
    ]
    assert hard_coded == [], 'commands the dev overlay also runs must use -n "$NS"'
