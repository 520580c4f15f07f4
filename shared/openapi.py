"""The services' committed OpenAPI documents (docs/openapi/<service>.json), generated from their apps.

    python -m shared.openapi            rewrite every service's document
    python -m shared.openapi --check    exit 1 when a committed document differs from its app (CI runs the test)
    python -m shared.openapi matching   only the named services

Building an app opens no connection (engines and Redis clients connect lazily), so this needs no servers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.service import Runtime, ServiceDefinition

SERVICES = ("profiles", "matching", "scheduling", "feedback")
DOCUMENTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "openapi"


def definition_of(service: str) -> ServiceDefinition:
    definition = importlib.import_module(f"services.{service}.bootstrap").DEFINITION
    assert isinstance(definition, ServiceDefinition)
    return definition


def document_path(service: str) -> Path:
    return DOCUMENTS_DIR / f"{service}.json"


def current_document(service: str) -> dict[str, Any]:
    definition = definition_of(service)
    document: dict[str, Any] = definition.build_app(Runtime.from_settings(definition.settings_factory())).openapi()
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    stale = []
    for service in args.services or SERVICES:
        text = render(current_document(service))
        path = document_path(service)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(service)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale OpenAPI documents: {', '.join(stale)}; run `python -m shared.openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
