"""What a PromQL expression reads: the series it names and the label names it matches on or groups by.

promtool is no PyPI or unprivileged install, so the alerting-rule tests read expressions with these regular
expressions instead: enough for the rules in deploy/k8s/components/monitoring (selectors, functions, aggregations
with by/without, on/ignoring, offsets, subqueries), and strict where a slip would pass silently: a selector without a
metric name is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
# An identifier not inside a number or duration (0.99, 1e3, 5m), with the braces of its selector if any.
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{[^{}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*\"\"")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "atan2"}
)
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]  # label names of its matchers
    equal_labels: frozenset[str]  # those matched with "=", which absent() carries into its result


@dataclass(frozen=True)
class References:
    selectors: tuple[Selector, ...]
    grouping: frozenset[str]  # label names in by/without/on/ignoring/group_left/group_right clauses


def references(expression: str) -> References:
    text = _STRING.sub('""', expression)  # label values may contain anything, identifiers and braces included
    grouping: set[str] = set()
    for clause in _GROUPING.finditer(text):
        grouping |= {label.strip() for label in clause.group(1).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    selectors = []
    for match in _IDENTIFIER.finditer(text):
        name, braces = match.group(1), match.group(2)
        if name in _KEYWORDS or (braces is None and text[match.end() :].lstrip().startswith("(")):
            continue  # a keyword or a function call
        matchers = _MATCHER.findall(braces or "")
        selectors.append(
            Selector(
                name,
                frozenset(label for label, _ in matchers),
                frozenset(label for label, operator in matchers if operator == "="),
            )
        )
    bare = _IDENTIFIER.sub(" ", text)
    if "{" in bare:
        raise ValueError(f"a selector without a metric name in {expression!r}: name the metric before the braces")
    return References(tuple(selectors), frozenset(grouping))


def exported_series(module: ModuleType) -> dict[str, frozenset[str]]:
    """Every series the metric objects of a module export, with its label names (a histogram's _bucket has le)."""
    series: dict[str, frozenset[str]] = {}
    for metric in vars(module).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        name, labels = metric._name, frozenset(metric._labelnames)
        if metric._type == "counter":  # prometheus_client keeps a counter's name without its _total
            series |= {f"{name}_total": labels, f"{name}_created": labels}
        elif metric._type == "histogram":
            series |= {f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels}
        elif metric._type == "gauge":
            series[name] = labels
        else:
            raise AssertionError(f"{name}: a {metric._type} metric; teach exported_series its series")
    return series


def problems(
    expression: str,
    exported: Mapping[str, frozenset[str]],
    target_labels: frozenset[str],
    templated: frozenset[str] = frozenset(),
) -> list[str]:
    """What an expression reads that nothing exports: unknown series, and label names no series it reads carries.

    ``target_labels`` are the labels Prometheus adds to every scraped series (and the only ones of ``up``); label
    names in grouping clauses must be on every series the expression reads; ``templated`` (the ``$labels.X`` of the
    alert's annotations) must be named by the expression, where its result can carry them.
    """
    found = references(expression)
    known = {**exported, "up": frozenset()}
    faults = []
    for selector in found.selectors:
        if selector.metric not in known:
            faults.append(f"{selector.metric} is not a series the code exports")
            continue
        missing = selector.labels - known[selector.metric] - target_labels
        faults += [f"{selector.metric} has no label {label}" for label in sorted(missing)]
    read = [known[s.metric] | target_labels for s in found.selectors if s.metric in known]
    for label in sorted(found.grouping):
        if not read or not all(label in labels for labels in read):
            faults.append(f"grouping by {label}, which not every series the expression reads carries")
    named = found.grouping | {label for s in found.selectors for label in s.equal_labels}
    faults += [
        f"the annotations show $labels.{label}, which the expression does not keep" for label in templated - named
    ]
    return faults


def templated_labels(annotations: Mapping[str, str]) -> frozenset[str]:
    return frozenset(label for text in annotations.values() for label in _TEMPLATE_LABEL.findall(text))
