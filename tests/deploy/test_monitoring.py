"""The monitoring component: prometheus-operator scrapes every role, and the alerts read series the code exports.

The component is in no overlay (a cluster without prometheus-operator's CRDs could not apply it); the operator guide
says to add it to an overlay's ``components:``, and these tests render each overlay with exactly that line added.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import shared.observability
from tests.deploy.manifests import (
    K8S_DIR,
    OVERLAYS,
    REPOSITORY_ROOT,
    Manifest,
    name_of,
    of_kind,
    overlay,
    pod_spec,
    render_path,
    service_and_role,
)
from tests.deploy.promql import exported_series, problems, references, templated_labels

COMPONENT = "../../components/monitoring"
OPERATOR_GUIDE = REPOSITORY_ROOT / "deploy" / "README.md"
# Labels prometheus-operator gives every series scraped through a PodMonitor, besides those its relabelings set.
POD_MONITOR_TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "endpoint"})
SEVERITIES = frozenset({"critical", "warning"})
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")

Rendered = Callable[[str], tuple[Manifest, ...]]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """An overlay rendered with the component added to its ``components:``, as the operator guide says."""
    cache: dict[str, tuple[Manifest, ...]] = {}

    def render(name: str) -> tuple[Manifest, ...]:
        if name not in cache:
            copy = tmp_path_factory.mktemp(f"monitored-{name}") / "k8s"
            shutil.copytree(K8S_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
            kustomization = copy / "overlays" / name / "kustomization.yaml"
            document = yaml.safe_load(kustomization.read_text())
            document.setdefault("components", []).append(COMPONENT)
            kustomization.write_text(yaml.safe_dump(document, sort_keys=False))
            cache[name] = render_path(copy / "overlays" / name)
        return cache[name]

    return render


def the_one(objects: tuple[Manifest, ...], kind: str) -> Manifest:
    found = of_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def alerting_rules(objects: tuple[Manifest, ...]) -> list[dict[str, Any]]:
    rule = the_one(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def target_labels(objects: tuple[Manifest, ...]) -> frozenset[str]:
    monitor = the_one(objects, "PodMonitor")
    relabelled = {
        relabeling["targetLabel"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]
        for relabeling in endpoint.get("relabelings", [])
        if "targetLabel" in relabeling
    }
    return POD_MONITOR_TARGET_LABELS | relabelled


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes of a document's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_monitoring_component_adds_a_pod_monitor_and_alerting_rules_to_an_overlay_and_changes_nothing_else(
    overlay_name: str, monitored: Rendered
) -> None:
    objects = monitored(overlay_name)
    added = [o for o in objects if o not in overlay(overlay_name)]
    assert sorted(o["kind"] for o in added) == ["PodMonitor", "PrometheusRule"]
    assert len(objects) == len(overlay(overlay_name)) + 2
    namespace = the_one(overlay(overlay_name), "Namespace")["metadata"]["name"]
    for obj in added:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert obj["metadata"]["namespace"] == namespace, f"{name_of(obj)} outside the overlay's namespace"
        labels = obj["metadata"]["labels"]
        for label in ("app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"):
            assert label in labels, f"{name_of(obj)} lacks {label}"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_alert_reads_only_series_the_code_exports_with_labels_they_carry(
    overlay_name: str, monitored: Rendered
) -> None:
    objects = monitored(overlay_name)
    exported = exported_series(shared.observability)
    targets = target_labels(objects)
    faults = {}
    for rule in alerting_rules(objects):
        found = problems(rule["expr"], exported, targets, templated_labels(rule["annotations"]))
        if found:
            faults[rule["alert"]] = found
    assert faults == {}


@pytest.mark.no_kubectl
def test_the_expression_check_names_a_misspelt_metric_or_label_and_a_label_the_result_drops() -> None:
    exported = exported_series(shared.observability)
    targets = POD_MONITOR_TARGET_LABELS
    assert problems("sum by (service) (rate(mentorloom_outbox_publish_error_total[5m])) > 0", exported, targets) == [
        "mentorloom_outbox_publish_error_total is not a series the code exports",
        "grouping by service, which not every series the expression reads carries",
    ]
    assert problems('mentorloom_consumer_lag{consumer="a", topik="b"} > 0', exported, targets) == [
        "mentorloom_consumer_lag has no label topik"
    ]
    assert problems(
        "sum by (consumer) (rate(mentorloom_handler_errors_total[5m])) > 0", exported, targets, frozenset({"type"})
    ) == ["the annotations show $labels.type, which the expression does not keep"]
    # le belongs to the buckets only; a counter is read by its _total name
    assert problems("sum by (le) (rate(mentorloom_http_request_seconds_sum[5m]))", exported, targets) != []
    assert problems("mentorloom_http_requests > 0", exported, targets) != []
    with pytest.raises(ValueError, match="without a metric name"):
        references('{__name__="mentorloom_consumer_lag"} > 0')


@pytest.mark.no_kubectl
def test_the_expression_reader_skips_functions_keywords_numbers_durations_and_label_values() -> None:
    found = references(
        'histogram_quantile(0.99, sum by (namespace, le) (rate(a_bucket{route!~"/(x|y{z})", m="GET"}[5m:1m] '
        "offset 1h))) > 1e3 and on (namespace) b unless ignoring(pod) group_left c"
    )
    assert [s.metric for s in found.selectors] == ["a_bucket", "b", "c"]
    assert found.selectors[0].labels == {"route", "m"}
    assert found.selectors[0].equal_labels == {"m"}
    assert found.grouping == {"namespace", "le", "pod"}


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section_in_the_operator_guide(
    overlay_name: str, monitored: Rendered
) -> None:
    anchors = github_anchors(OPERATOR_GUIDE.read_text())
    rules = alerting_rules(monitored(overlay_name))
    assert len({r["alert"] for r in rules}) == len(rules), "alert names are unique"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert DURATION.match(rule.get("for", "0s")), f"{name}: for {rule.get('for')}"
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url.startswith("https://"), f"{name}: {url}"
        page, _, anchor = url.partition("#")
        assert page.endswith("/deploy/README.md"), f"{name}: {url}"
        assert anchor == name.lower(), f"{name}: one runbook section per alert, named after it"
        assert anchor in anchors, f"{name}: deploy/README.md has no section #{anchor}"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_pod_monitor_scrapes_every_role_on_the_port_its_container_serves_metrics_on(
    overlay_name: str, monitored: Rendered
) -> None:
    objects = monitored(overlay_name)
    monitor = the_one(objects, "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoints = {e["port"]: e for e in monitor["spec"]["podMetricsEndpoints"]}
    used = set()
    for deployment in of_kind(objects, "Deployment"):
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), f"{name_of(deployment)} is not selected"
        ports = {p["name"]: p for c in pod_spec(deployment)["containers"] for p in c.get("ports", [])}
        scraped = [name for name in ports if name in endpoints]
        assert len(scraped) == 1, f"{name_of(deployment)}: ports {sorted(ports)}, scraped {sorted(endpoints)}"
        port, endpoint = ports[scraped[0]], endpoints[scraped[0]]
        used.add(scraped[0])
        # The same port and path as the pod's prometheus.io annotations, which the code's roles serve.
        annotations = template["metadata"]["annotations"]
        assert str(port["containerPort"]) == annotations["prometheus.io/port"], name_of(deployment)
        assert endpoint.get("path", "/metrics") == annotations["prometheus.io/path"], name_of(deployment)
        for relabeling in endpoint.get("relabelings", []):
            for source in relabeling.get("sourceLabels", []):
                pod_label = source.removeprefix("__meta_kubernetes_pod_label_")
                assert any(re.sub(r"[^\w]", "_", label) == pod_label for label in labels), (
                    f"{name_of(deployment)} has no pod label behind {source}"
                )
    assert used == set(endpoints), "every endpoint of the PodMonitor scrapes some role"
    job_label = monitor["spec"]["jobLabel"]
    assert {d["spec"]["template"]["metadata"]["labels"][job_label] for d in of_kind(objects, "Deployment")} == {
        "mentorloom"
    }


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_an_alert_fires_when_a_role_of_any_service_has_no_scrape_target_at_all(
    overlay_name: str, monitored: Rendered
) -> None:
    objects = monitored(overlay_name)
    deployed = {service_and_role(d) for d in of_kind(objects, "Deployment")}
    absent = [r for r in alerting_rules(objects) if "absent(" in r["expr"]]
    assert len(absent) == 1
    watched = {
        (service, role)
        for service, role in re.findall(
            r'absent\(up\{job="mentorloom",\s*app="(\w+)",\s*role="(\w+)"\}\)', absent[0]["expr"]
        )
    }
    assert watched == deployed


@pytest.mark.no_kubectl
def test_the_operator_guide_names_the_component_line_to_add() -> None:
    guide = OPERATOR_GUIDE.read_text()
    assert f"- {COMPONENT}" in guide
    assert Path(K8S_DIR / "components" / "monitoring" / "kustomization.yaml").is_file()
