"""Each service's committed OpenAPI document is exactly what its app serves (regenerate: python -m shared.openapi)."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from shared.openapi import SERVICES, current_document, document_path
from shared.service import API_PREFIX


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_openapi_document_matches_the_service_app(service: str) -> None:
    committed = json.loads(document_path(service).read_text())
    assert committed == current_document(service), f"docs/openapi/{service}.json is stale: run python -m shared.openapi"


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_declares_how_callers_authenticate_or_is_an_operations_probe(service: str) -> None:
    document = current_document(service)
    open_paths = {"/healthz", "/readyz"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in open_paths or "calendar-feeds" in path:  # probes; the feed URL's token is its credential
                continue
            assert operation.get("security"), f"{service}: {method.upper()} {path} declares no security"


@pytest.mark.parametrize("service", SERVICES)
def test_no_response_is_described_by_the_interpreters_reason_phrase(service: str) -> None:
    """FastAPI describes a declared response that has no description with `http.HTTPStatus(code).phrase`, which
    Python 3.13 changed for some codes (422): the committed document would then differ by Python version."""
    for path, operations in current_document(service)["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.isdigit() and int(code) >= 400:
                    assert response["description"] != HTTPStatus(int(code)).phrase, (
                        f"{service}: {method.upper()} {path} answers {code} described only by Python's reason phrase"
                    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_api_path_is_under_the_version_prefix_and_only_the_probes_are_outside(service: str) -> None:
    """One gateway fronts all four services: a client must not need to know which of them version their paths."""
    paths = set(current_document(service)["paths"])
    outside = {path for path in paths if not path.startswith(API_PREFIX + "/")}
    assert outside == {"/healthz", "/readyz"}
    assert len(paths) > len(outside)


@pytest.mark.parametrize("service", SERVICES)
def test_every_post_route_documents_the_idempotency_key_answers_beside_its_own(service: str) -> None:
    """The Idempotency-Key replay covers every POST (shared.http_protection), so a route's own 409 or 422 wording
    must not hide that a retry may get them for the key: the description names both causes."""
    idempotency_causes = {
        "400": "malformed idempotency-key",
        "409": "the first request with this idempotency-key is still running",
        "422": "idempotency-key reused with another body",
    }
    for path, operations in current_document(service)["paths"].items():
        if "post" not in operations:
            continue
        responses = operations["post"]["responses"]
        for code, cause in idempotency_causes.items():
            assert cause in responses[code]["description"].lower(), f"{service}: POST {path} {code}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_post_route_documents_the_idempotency_key_header_a_client_may_send(service: str) -> None:
    """Every POST takes an Idempotency-Key (the replay middleware covers them all), so every POST declares it: only
    the routes that happened to depend on declare_idempotency_key used to."""
    undeclared = [
        path
        for path, operations in current_document(service)["paths"].items()
        if "post" in operations
        and "Idempotency-Key" not in {parameter["name"] for parameter in operations["post"].get("parameters", [])}
    ]
    assert undeclared == []
