"""The Kustomize overlays render, validate against the Kubernetes schemas, and deploy every role of every service."""

from __future__ import annotations

import functools
import importlib
from collections import Counter

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from deploy.k8s.config_reference import service_names
from shared.events.registry import TOPICS, dead_letter_topic
from tests.deploy.manifests import (
    CUSTOM_KINDS,
    METRICS_PORT,
    OVERLAYS,
    WORKLOAD_KINDS,
    Manifest,
    name_of,
    of_kind,
    overlay,
    pod_spec,
    render,
    service_and_role,
)

# The oldest Kubernetes minor the manifests promise to work on, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# kubernetes-validate re-reads its multi-megabyte definitions file for every object; reading each file once makes
# the schema checks five times faster.
_SCHEMA_CONTENTS_ONCE = functools.cache(kubernetes_validate.utils.schema_contents)
STANDARD_LABELS = ("app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance")


@pytest.mark.parametrize("directory", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_the_base_and_every_overlay_render_with_kubectl_kustomize(directory: str) -> None:
    objects = render(directory)
    assert of_kind(objects, "Deployment"), f"{directory} rendered no Deployment"
    names = Counter((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects)
    assert [n for n, count in names.items() if count > 1] == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(
    overlay_name: str, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", _SCHEMA_CONTENTS_ONCE)
    invalid = []
    for obj in overlay(overlay_name):
        if obj["kind"] in CUSTOM_KINDS:
            continue  # not in the Kubernetes schemas: see test_kafka_topics_are_well_formed_strimzi_resources
        try:
            kubernetes_validate.validate(obj, version, strict=True)  # strict: unknown fields are errors too
        except kubernetes_validate.ValidationError as error:
            invalid.append(f"{name_of(obj)}: {error.message} at {'/'.join(map(str, error.path))}")
    assert invalid == []


def test_only_strimzi_topics_escape_schema_validation() -> None:
    kinds = {o["kind"] for name in OVERLAYS for o in overlay(name)}
    unvalidated = {kind for kind in kinds if kind in CUSTOM_KINDS}
    assert unvalidated <= {"KafkaTopic"}
    for name in OVERLAYS:
        for obj in overlay(name):
            if obj["kind"] not in CUSTOM_KINDS:
                assert "." not in obj["apiVersion"].split("/")[0] or obj["apiVersion"].split("/")[0].endswith(
                    "k8s.io"
                ), f"{name_of(obj)} is a custom resource the tests do not check"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_object_carries_the_standard_labels(overlay_name: str) -> None:
    missing = [
        f"{name_of(o)} lacks {label}"
        for o in overlay(overlay_name)
        for label in STANDARD_LABELS
        if label not in o["metadata"].get("labels", {}) and o["kind"] != "Namespace"
    ]
    assert missing == []
    for workload in of_kind(overlay(overlay_name), *WORKLOAD_KINDS):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        service, role = service_and_role(workload)
        assert labels["app.kubernetes.io/name"] == service
        assert labels["app.kubernetes.io/component"] == role
        assert labels["app.kubernetes.io/part-of"] == "mentorloom"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_service_runs_each_of_its_roles_and_a_migration_job(overlay_name: str) -> None:
    objects = overlay(overlay_name)
    deployed = {service_and_role(w) for w in of_kind(objects, "Deployment")}
    migrations = {service_and_role(w) for w in of_kind(objects, "Job")}
    expected: set[tuple[str, str]] = set()
    for service in service_names():
        definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
        expected |= {(service, "api"), (service, "relay")}
        if definition.consumers:
            expected.add((service, "consumer"))
        if definition.sweepers:
            expected.add((service, "sweeper"))
    assert deployed == expected
    assert migrations == {(service, "migrate") for service in service_names()}


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_api_has_a_service_an_autoscaler_a_disruption_budget_and_a_route(overlay_name: str) -> None:
    objects = overlay(overlay_name)
    for api in of_kind(objects, "Deployment"):
        service, role = service_and_role(api)
        if role != "api":
            continue
        selector = api["spec"]["selector"]["matchLabels"]
        services = [s for s in of_kind(objects, "Service") if s["spec"]["selector"] == selector]
        assert len(services) == 1, f"{name_of(api)} has no Service of its own"
        hpas = [
            h
            for h in of_kind(objects, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
        ]
        assert len(hpas) == 1
        assert 1 <= hpas[0]["spec"]["minReplicas"] <= hpas[0]["spec"]["maxReplicas"]
        paths = [
            path
            for ingress in of_kind(objects, "Ingress")
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
            if path["backend"]["service"]["name"] == services[0]["metadata"]["name"]
        ]
        assert [p["path"].split("(")[0] for p in paths] == [f"/api/{service}"]
    budgets = [p["spec"]["selector"]["matchLabels"] for p in of_kind(objects, "PodDisruptionBudget")]
    for deployment in of_kind(objects, "Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"] in budgets, f"{name_of(deployment)} has no PDB"


def test_the_api_routes_keep_the_metrics_endpoint_off_the_public_ingress() -> None:
    for ingress in of_kind(overlay("prod"), "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert "(?!metrics)" in path["path"], f"{name_of(ingress)} would expose /metrics"


def test_no_overlay_contains_a_secret_value() -> None:
    for name in OVERLAYS:
        objects = overlay(name)
        assert of_kind(objects, "Secret") == [], "Secrets are created by the operator, never kept in the manifests"
        for config_map in of_kind(objects, "ConfigMap"):
            for key, value in config_map.get("data", {}).items():
                assert "SECRET" not in key, f"{name_of(config_map)} holds {key}"
                assert "PASSWORD" not in key, f"{name_of(config_map)} holds {key}"
                assert "@" not in value, f"{name_of(config_map)} {key} looks like a URL with credentials"


def _pods_selected(policy: Manifest, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_pod_is_fenced_by_network_policies(overlay_name: str) -> None:
    objects = overlay(overlay_name)
    policies = of_kind(objects, "NetworkPolicy")
    default_deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] and "egress" not in p["spec"]
    ]
    assert default_deny
    assert set(default_deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        service, role = service_and_role(workload)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        egress = [p for p in policies if "egress" in p["spec"] and _pods_selected(p, labels)]
        database_peers = [
            expression["values"]
            for policy in egress
            for rule in policy["spec"]["egress"]
            for peer in rule.get("to", [])
            for expression in peer.get("podSelector", {}).get("matchExpressions", [])
            if expression["key"] == "mentorloom.io/database-for"
        ]
        assert database_peers == [[service]], f"{name_of(workload)} must reach its own database and no other"
        ports = {port["port"] for policy in egress for rule in policy["spec"]["egress"] for port in rule["ports"]}
        assert {53, 5432, 6379, 9092} <= ports
        assert ports <= {53, 5432, 6379, 9092, 9093, 443}
        if 443 in ports:
            assert role == "api", "only APIs fetch the JWKS over HTTPS"
            assert overlay_name == "prod", "only production verifies tokens against a JWKS"
        ingress = [p for p in policies if "ingress" in p["spec"] and _pods_selected(p, labels)]
        if role == "migrate":
            assert not ingress, f"{name_of(workload)}: a migration accepts no connection"
            continue
        assert len(ingress) == 1, f"{name_of(workload)}: one ingress policy"
        rules = ingress[0]["spec"]["ingress"]
        namespaces = {
            value
            for rule in rules
            for peer in rule["from"]
            for expression in peer["namespaceSelector"]["matchExpressions"]
            for value in expression["values"]
        }
        ports = {port["port"] for rule in rules for port in rule["ports"]}
        if role == "api":
            assert (namespaces, ports) == ({"ingress-nginx", "monitoring"}, {8000})
        else:  # workers take no traffic: Prometheus scrapes their metrics port, nothing else connects
            assert (namespaces, ports) == ({"monitoring"}, {METRICS_PORT})


def test_prod_declares_a_kafka_topic_for_every_contract_topic_and_its_dead_letter_topic() -> None:
    topics = {t["spec"]["topicName"] for t in of_kind(overlay("prod"), "KafkaTopic")}
    assert topics == {*TOPICS, *(dead_letter_topic(t) for t in TOPICS)}


def test_kafka_topics_are_well_formed_strimzi_resources() -> None:
    for topic in of_kind(overlay("prod"), "KafkaTopic"):
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        spec = topic["spec"]
        assert set(spec) <= {"topicName", "partitions", "replicas", "config"}
        assert spec["topicName"] == topic["metadata"]["name"]
        assert isinstance(spec["partitions"], int)
        assert spec["partitions"] >= 1
        assert isinstance(spec["replicas"], int)
        assert spec["replicas"] >= 3, "production topics survive a broker loss"
        retention = spec["config"]["retention.ms"]
        assert int(retention) > 0
        assert int(spec["config"]["min.insync.replicas"]) < spec["replicas"]


def test_consumer_replicas_never_outnumber_the_partitions_they_read() -> None:
    objects = overlay("prod")
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(objects, "KafkaTopic")}
    for deployment in of_kind(objects, "Deployment"):
        service, role = service_and_role(deployment)
        if role != "consumer":
            continue
        definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
        fewest = min(partitions[topic] for spec in definition.consumers for topic in spec.topics)
        assert deployment["spec"]["replicas"] <= fewest, (
            f"{name_of(deployment)}: idle replicas beyond {fewest} partitions"
        )


def test_prod_spreads_replicated_roles_over_nodes() -> None:
    for deployment in of_kind(overlay("prod"), "Deployment"):
        if deployment["spec"]["replicas"] < 2:
            continue
        terms = pod_spec(deployment)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        by_host = [
            t["podAffinityTerm"] for t in terms if t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        ]
        assert by_host
        assert by_host[0]["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_dev_runs_one_replica_of_everything() -> None:
    objects = overlay("dev")
    assert {d["spec"]["replicas"] for d in of_kind(objects, "Deployment")} == {1}
    assert {h["spec"]["minReplicas"] for h in of_kind(objects, "HorizontalPodAutoscaler")} == {1}
