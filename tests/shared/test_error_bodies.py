"""Every service answers an error in one shape: {"detail": {"error": code, "error_description": sentence}}, except
request validation (422), whose detail lists the invalid fields by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from shared.http_errors import ErrorBody, install_domain_errors, install_error_bodies
from shared.openapi import SERVICES, current_document, definition_of
from shared.service import Runtime


class CampusIn(BaseModel):
    name: str = Field(min_length=1)


class StaleVersionError(Exception):
    pass


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_bodies(app)
    install_domain_errors(app, [(StaleVersionError, 412, "precondition_failed")])

    @app.get("/campuses/{name}")
    async def read_campus(name: str) -> dict[str, str]:
        raise HTTPException(404, f"campus {name} not found")

    @app.post("/campuses", status_code=201)
    async def create_campus(body: CampusIn) -> dict[str, str]:
        raise HTTPException(409, "a campus with this name already exists", headers={"Location": "/campuses/x"})

    @app.get("/private")
    async def private() -> None:
        raise HTTPException(
            401, {"error": "invalid_token", "error_description": "expired"}, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("password=hunter2 in a bug's message")

    @app.put("/campuses/{name}")
    async def replace_campus(name: str) -> None:
        raise StaleVersionError(f"campus {name} changed since version 3")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def single_error(response: httpx.Response) -> tuple[str, str]:
    body = ErrorBody.model_validate(response.json())
    assert not isinstance(body.detail, list), body
    return body.detail.error, body.detail.error_description


async def test_an_http_exception_with_a_message_gets_the_code_of_its_status(client: httpx.AsyncClient) -> None:
    response = await client.get("/campuses/north")

    assert response.status_code == 404
    assert single_error(response) == ("not_found", "campus north not found")


async def test_the_exceptions_headers_are_kept(client: httpx.AsyncClient) -> None:
    response = await client.post("/campuses", json={"name": "north"})

    assert response.status_code == 409
    assert single_error(response) == ("conflict", "a campus with this name already exists")
    assert response.headers["location"] == "/campuses/x"


async def test_a_detail_that_already_names_its_error_is_answered_as_it_is(client: httpx.AsyncClient) -> None:
    response = await client.get("/private")

    assert response.status_code == 401
    assert single_error(response) == ("invalid_token", "expired")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_domain_error_gets_its_status_and_code_with_its_message(client: httpx.AsyncClient) -> None:
    response = await client.put("/campuses/north")

    assert response.status_code == 412
    assert single_error(response) == ("precondition_failed", "campus north changed since version 3")


async def test_unknown_paths_and_methods_answer_in_the_same_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    wrong_method = await client.delete("/campuses")

    assert (missing.status_code, single_error(missing)[0]) == (404, "not_found")
    assert (wrong_method.status_code, single_error(wrong_method)[0]) == (405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"


async def test_request_validation_still_lists_the_invalid_fields_by_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/campuses", json={"name": ""})

    assert response.status_code == 422
    detail = ErrorBody.model_validate(response.json()).detail
    assert isinstance(detail, list)
    assert [problem.loc for problem in detail] == [["body", "name"]]


async def test_a_bug_answers_500_in_the_same_shape_without_its_message() -> None:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/broken")

    assert response.status_code == 500
    assert single_error(response)[0] == "internal_error"
    assert "hunter2" not in response.text


@pytest.mark.integration
@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_answers_an_unknown_path_in_the_common_shape(service: str, redis_url: str) -> None:
    definition = definition_of(service)
    runtime = Runtime.from_settings(definition.settings_factory().model_copy(update={"redis_url": redis_url}))
    transport = httpx.ASGITransport(app=definition.build_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/no/such/path")
    finally:
        await runtime.close()

    assert response.status_code == 404
    assert single_error(response)[0] == "not_found"


PROBES = ("/healthz", "/readyz", "/metrics")  # their 503 carries the checks' results, not an error


def error_schemas(response: dict[str, Any]) -> list[dict[str, Any]]:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return list(schema.get("anyOf", [schema]))


@pytest.mark.parametrize("service", SERVICES)
def test_every_documented_error_answer_of_every_service_has_the_common_body(service: str) -> None:
    document = current_document(service)
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    validation = {"$ref": "#/components/schemas/HTTPValidationError"}
    undocumented = [
        f"{method.upper()} {path} {status}"
        for path, operations in document["paths"].items()
        if path not in PROBES
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5"))
        and not all(schema in (error_body, validation) for schema in error_schemas(response))
    ]

    assert undocumented == []
    assert document["components"]["schemas"]["ErrorBody"]["properties"]["detail"]
