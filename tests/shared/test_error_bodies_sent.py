"""What every service really sends for a refused request is what its OpenAPI document says for that status: the
status is documented for the operation and the body validates against the documented schema (ErrorBody). A
client generated from the documents parses every 4xx with one type, so a body of another shape breaks it.

Requests refused before any database work: no token, a malformed token, and (with a valid token of every role)
path parameters that are not ids, so every operation of every service is tried without data."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource

from shared.auth.principal import Role
from shared.auth.tokens import mint_dev_token
from shared.openapi import SERVICES, current_document, definition_of
from shared.service import Runtime

pytestmark = pytest.mark.integration

PROBES = ("/healthz", "/readyz", "/metrics")
METHODS = ("get", "head", "post", "put", "patch", "delete")


def documented_problems(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> list[str]:
    """Why ``response`` is not what the document says ``method path`` answers (empty: it is)."""
    where = f"{method.upper()} {path} -> {response.status_code}"
    documented = document["paths"][path][method]["responses"]
    if str(response.status_code) not in documented:
        return [f"{where}: status not documented ({sorted(documented)}): {response.text[:200]}"]
    if method == "head":
        return []
    schema = documented[str(response.status_code)].get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return [f"{where}: no JSON body documented"]
    registry: Registry[Any] = Registry().with_resource("urn:doc", Resource.opaque(document))
    resolved = {"$ref": "urn:doc#" + schema["$ref"][1:]} if "$ref" in schema else schema
    validator = jsonschema.Draft202012Validator(resolved, registry=registry)
    try:
        body = response.json()
    except ValueError:
        return [f"{where}: not JSON: {response.text[:200]}"]
    return [f"{where}: {error.message}: {response.text[:200]}" for error in validator.iter_errors(body)]


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in document["paths"].items()
        if path not in PROBES
        for method in item
        if method in METHODS and any("bearerAuth" in scheme for scheme in item[method].get("security", []))
    ]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_refused_request_of_every_service_gets_the_documented_error_body(
    service: str, redis_url: str
) -> None:
    document = current_document(service)
    definition = definition_of(service)
    settings = definition.settings_factory().model_copy(update={"redis_url": redis_url})
    runtime = Runtime.from_settings(settings)
    tenant = uuid.uuid4()
    token = mint_dev_token(
        settings, "someone", tenant, [Role.OPERATOR, Role.COORDINATOR, Role.PARTICIPANT], person_id=uuid.uuid4()
    )
    problems: list[str] = []
    tried = 0
    try:
        transport = httpx.ASGITransport(app=definition.build_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for method, path in operations(document):
                concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
                not_ids = re.sub(r"\{[^}]+\}", "not-an-id", path)
                attempts = [(concrete, {}), (concrete, {"Authorization": "Bearer not-a-token"})]
                if "{" in path:
                    attempts.append((not_ids, {"Authorization": f"Bearer {token}"}))
                for url, headers in attempts:
                    response = await http.request(method.upper(), url, headers=headers)
                    tried += 1
                    if response.status_code < 400 or response.status_code >= 500:
                        problems.append(f"{method.upper()} {url} {headers}: not refused: {response.status_code}")
                        continue
                    problems += documented_problems(document, method, path, response)
    finally:
        await runtime.close()

    assert tried > 10
    assert problems == []
