"""Generate the committed contract documents from the models, refusing incompatible changes.

    python -m shared.events.generate            # write docs/events/schemas/*.json and docs/events/asyncapi.yaml
    python -m shared.events.generate --check    # exit 1 when the committed files drift from the models

A committed schema is never overwritten by one that breaks backward compatibility: a breaking change needs a new
event type version (``….v2``) next to the old one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # PyYAML: present with the dev dependencies (schemathesis); only the generator needs it

from shared.events import samples
from shared.events.compat import BreakingChange, breaking_changes
from shared.events.envelope import (
    CONTENT_TYPE,
    H_CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TENANT,
    H_TIME,
    H_TRACEPARENT,
    H_TRACESTATE,
    H_TYPE,
    REQUIRED_HEADERS,
    SPEC_VERSION,
    encode_text,
)
from shared.events.registry import ALL_SPECS, DEAD_LETTER_SUFFIX, TOPICS, EventSpec

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DOCS_DIR = REPOSITORY_ROOT / "docs" / "events"
SCHEMAS_DIR_NAME = "schemas"
ASYNCAPI_FILE_NAME = "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
CONTRACT_VERSION = "1.0.0"


def schema_file_name(spec: EventSpec) -> str:
    return f"{spec.ce_type}.json"


def event_schema(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema of one event type's data, with its wire facts as ``x-`` annotations."""
    schema = spec.model.model_json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:mentorloom:events:{spec.ce_type}",
        **schema,
        "x-ce-type": spec.ce_type,
        "x-topic": spec.topic,
        "x-kafka-key": spec.key_field,
        "x-ce-subject": spec.subject_field,
        "x-producer": spec.producer,
    }


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _channel_id(topic: str) -> str:
    return topic.split(".")[1]


def _cloud_events_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in the Kafka binary content mode, plus W3C trace context.",
        "required": [*REQUIRED_HEADERS, H_CONTENT_TYPE],
        "properties": {
            H_SPECVERSION: {"type": "string", "const": SPEC_VERSION},
            H_ID: {"type": "string", "format": "uuid", "description": "Unique per event; consumers dedupe on it."},
            H_SOURCE: {"type": "string", "description": "Producing service, /mentorloom/<service>."},
            H_TYPE: {"type": "string", "description": "org.mentorloom.<aggregate>.<happening>.v<major>"},
            H_TIME: {"type": "string", "format": "date-time", "description": "When it happened, RFC 3339 UTC."},
            H_SUBJECT: {"type": "string", "format": "uuid", "description": "Id of the thing the event is about."},
            H_TENANT: {"type": "string", "format": "uuid", "description": "Organisation id (extension tenantid)."},
            H_TRACEPARENT: {
                "type": "string",
                "pattern": r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C traceparent (distributed tracing extension); optional.",
            },
            H_TRACESTATE: {"type": "string", "maxLength": 512, "description": "W3C tracestate; optional."},
            H_CONTENT_TYPE: {"type": "string", "const": CONTENT_TYPE},
        },
    }


def _message(spec: EventSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.name,
        "summary": spec.meaning,
        "contentType": CONTENT_TYPE,
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventsHeaders"},
                {
                    "type": "object",
                    "properties": {
                        H_TYPE: {"const": spec.ce_type},
                        H_SOURCE: {"const": spec.source},
                        H_SUBJECT: {"description": f"The data's {spec.subject_field}."},
                    },
                },
            ]
        },
        "payload": {"$ref": f"./{SCHEMAS_DIR_NAME}/{schema_file_name(spec)}"},
        "examples": [_example(spec)],
        "bindings": {
            "kafka": {
                "key": {"type": "string", "format": "uuid", "description": f"The data's {spec.key_field}."},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _example(spec: EventSpec) -> dict[str, Any]:
    """One record as it arrives on the topic: the contract's deterministic sample, encoded as the outbox encodes it
    (headers and payload exactly as a subscriber reads them), so integrators see every field filled in."""
    _, key, value, headers = encode_text(samples.envelope(samples.sample(spec.model)))
    return {
        "name": f"{spec.name}Sample",
        "summary": f"A {spec.name} record as published (Kafka key {key}).",
        "headers": headers,
        "payload": json.loads(value),
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of every topic and event type."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        channel_id = _channel_id(topic)
        specs = [spec for spec in ALL_SPECS if spec.topic == topic]
        channels[channel_id] = {
            "address": topic,
            "title": topic,
            "description": (
                f"Events owned by the {channel_id} service. Undeliverable messages go to {topic}{DEAD_LETTER_SUFFIX}."
            ),
            "messages": {spec.name: {"$ref": f"#/components/messages/{spec.name}"} for spec in specs},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
        }
        operations[f"publish{channel_id.capitalize()}Events"] = {
            "action": "send",
            "title": f"The {channel_id} service publishes (through its outbox)",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{spec.name}"} for spec in specs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Mentorloom events",
            "version": CONTRACT_VERSION,
            "description": (
                "The event stream of Mentorloom. CloudEvents 1.0 in the Kafka binary content mode: attributes are "
                "ce_* headers, the value is the JSON data, the key is the aggregate id. Generated from "
                "shared/events by `python -m shared.events.generate`; do not edit by hand."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local stack's broker (the launcher picks the real port).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventsHeaders": _cloud_events_headers()},
            "messages": {spec.name: _message(spec) for spec in ALL_SPECS},
        },
    }


def render() -> dict[str, str]:
    """Every generated file, relative path (under the docs dir) → exact text."""
    files = {f"{SCHEMAS_DIR_NAME}/{schema_file_name(spec)}": _json_text(event_schema(spec)) for spec in ALL_SPECS}
    files[ASYNCAPI_FILE_NAME] = yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=120)
    return files


@dataclass
class Report:
    """What comparing the generated files with the committed ones found."""

    incompatible: dict[str, list[BreakingChange]] = field(default_factory=dict)
    removed_types: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)

    @property
    def refuses_to_write(self) -> bool:
        return bool(self.incompatible or self.removed_types)

    def lines(self) -> list[str]:
        lines: list[str] = []
        for name, changes in self.incompatible.items():
            lines.append(f"{name}: breaking change, add a new version (….v2) of the event type instead:")
            lines.extend(f"  - {change}" for change in changes)
        lines.extend(
            f"{name}: committed schema has no event type any more; removing a type breaks its consumers"
            for name in self.removed_types
        )
        lines.extend(f"{name}: differs from the models (run python -m shared.events.generate)" for name in self.drifted)
        return lines


def compare_with_committed(docs_dir: Path, files: dict[str, str] | None = None) -> Report:
    files = render() if files is None else files
    report = Report()
    for relative, text in files.items():
        path = docs_dir / relative
        if not path.exists():
            report.drifted.append(relative)
            continue
        committed = path.read_text(encoding="utf-8")
        if committed == text:
            continue
        report.drifted.append(relative)
        if relative.endswith(".json"):
            changes = breaking_changes(json.loads(committed), json.loads(text))
            if changes:
                report.incompatible[relative] = changes
    schemas_dir = docs_dir / SCHEMAS_DIR_NAME
    if schemas_dir.is_dir():
        for path in sorted(schemas_dir.glob("*.json")):
            relative = f"{SCHEMAS_DIR_NAME}/{path.name}"
            if relative not in files:
                report.removed_types.append(relative)
    return report


def write(docs_dir: Path) -> Report:
    """Write every generated file unless a committed schema would be broken; returns what was found."""
    files = render()
    report = compare_with_committed(docs_dir, files)
    if report.refuses_to_write:
        return report
    for relative in report.drifted:
        path = docs_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative], encoding="utf-8")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.events.generate", description="Generate the event contract documents."
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift or incompatibility")
    parser.add_argument("--docs-dir", type=Path, default=DEFAULT_DOCS_DIR, help="default: %(default)s")
    arguments = parser.parse_args(argv)
    if arguments.check:
        report = compare_with_committed(arguments.docs_dir)
        for line in report.lines():
            print(line, file=sys.stderr)
        if report.drifted or report.refuses_to_write:
            return 1
        print(f"event contract up to date ({len(ALL_SPECS)} event types)")
        return 0
    report = write(arguments.docs_dir)
    if report.refuses_to_write:
        for line in report.lines():
            print(line, file=sys.stderr)
        print("nothing written", file=sys.stderr)
        return 1
    for relative in report.drifted:
        print(f"wrote {arguments.docs_dir / relative}")
    if not report.drifted:
        print("event contract already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
