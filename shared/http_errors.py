"""One error body for every service's API.

Every 4xx/5xx answer is ``{"detail": {"error": <machine-readable code>, "error_description": <sentence>}}``, the
shape OAuth 2.0 errors take (RFC 6749 §5.2, RFC 6750 §3), except FastAPI's request validation errors (422), whose
``detail`` is the list of problems, each naming its field in ``loc``. A client branches on ``error`` and shows
``error_description``, whichever service answered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorDetail(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. not_found, conflict, precondition_failed.")
    error_description: str = Field(description="What went wrong, for a person.")


class FieldError(BaseModel):
    """One invalid field of a 422, as FastAPI's request validation and ``field_error_json`` write it."""

    model_config = ConfigDict(extra="allow")  # pydantic adds `ctx` (the rule's parameters) and `url` to some

    type: str = Field(description="Machine-readable code of the rule broken, e.g. missing, string_too_long.")
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the field's path in it.")
    msg: str = Field(description="What is wrong, for a person.")
    input: Any = Field(default=None, description="The value refused (absent when the field is missing).")


class ErrorBody(BaseModel):
    """An error answer: ``detail`` is one error, or (422) the list of invalid fields, each with its ``loc``."""

    detail: ErrorDetail | list[FieldError]


# The code an HTTPException raised with a plain message gets: written out rather than derived from
# http.HTTPStatus, whose phrases change between Python versions (3.13 renamed 413 and 422).
ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    428: "precondition_required",
    429: "too_many_requests",
    500: "internal_error",
    503: "temporarily_unavailable",
}


def error_code(status_code: int) -> str:
    return ERROR_CODES.get(status_code, f"http_{status_code}")


def error_json(error: str, description: str) -> dict[str, Any]:
    return {"detail": {"error": error, "error_description": description}}


def error_response(
    status_code: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_json(error, description), status_code=status_code, headers=headers)


async def _http_exception(_: Request, exc: Exception) -> Response:
    """FastAPI's own handler, with a plain-text detail given its code (routes raise ``HTTPException(404, "...")``)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc.detail, str):
        return error_response(exc.status_code, error_code(exc.status_code), exc.detail, exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(_: Request, exc: Exception) -> Response:
    """A bug's 500 in the common shape too, without its message (it may hold data). Starlette re-raises the
    exception after sending this, so the server and the access log still record it."""
    return error_response(500, "internal_error", "the service failed to answer; the error is in its log")


def install_error_bodies(app: FastAPI) -> None:
    """Answer HTTPExceptions (the routes', FastAPI's and Starlette's own 404 and 405) and unhandled errors in the
    common shape."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _internal_error)


def field_error_json(loc: Sequence[str | int], message: str, error: str, value: object = None) -> dict[str, Any]:
    """A 422 about one field of the request, in the shape of FastAPI's own validation errors (``loc`` names it,
    ``input`` is the value refused)."""
    return {"detail": [{"type": error, "loc": list(loc), "msg": message, "input": jsonable_encoder(value)}]}


def install_domain_errors(app: FastAPI, domain_errors: Sequence[tuple[type[Exception], int, str]]) -> None:
    """Answer each ``(exception type, status, code)`` of a service's domain errors with that status and code, the
    exception's message as the description (Starlette picks the most specific class in the exception's MRO).

    A 422 whose exception has a ``field`` attribute (a str) is about that field of the request body: it is answered
    like a validation error, ``loc`` ``["body", field]`` and ``input`` its ``value`` attribute, so a client finds
    the field whichever rule refused it."""
    for exc_type, status_code, error in domain_errors:

        async def handler(_: Request, exc: Exception, status_code: int = status_code, error: str = error) -> Response:
            field = getattr(exc, "field", None)
            if status_code == 422 and isinstance(field, str):
                body = field_error_json(("body", field), str(exc), error, getattr(exc, "value", None))
                return JSONResponse(body, status_code=422)
            return error_response(status_code, error, str(exc))

        app.add_exception_handler(exc_type, handler)


# What each documented error answer means, written here rather than left to FastAPI: for a declared response without
# a description it writes the running interpreter's `http.HTTPStatus` phrase, and Python 3.13 renamed some of those
# (422 "Unprocessable Entity" became "Unprocessable Content"), so the committed documents differed by Python version.
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "Missing or invalid bearer token.",
    403: "The caller may not do this (role, organisation or relationship to the resource).",
    404: "No such resource in the caller's organisation (or not visible to them).",
    409: "Not allowed in the resource's current state.",
    412: "If-Match does not name the current version (someone else wrote first).",
    415: "The body is not of the media type this endpoint takes.",
    422: "The request is invalid: the error names the field or the rule.",
    428: "If-Match is required: send the ETag of the version you read.",
}


def document_error_bodies(document: dict[str, Any]) -> None:
    """Name ErrorBody as the body of every documented 4xx, whatever the route declared: FastAPI adds its own
    HTTPValidationError to each route with parameters, and a route may declare a union. ErrorBody covers 422's list
    of fields too, so a client decodes any error with one type whichever service answered."""
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if code.startswith("4") and content is not None:
                    content["schema"] = error_ref
    schemas = document.get("components", {}).get("schemas", {})
    if "HTTPValidationError" in schemas and '"#/components/schemas/HTTPValidationError"' not in json.dumps(document):
        schemas.pop("HTTPValidationError")
        schemas.pop("ValidationError", None)


def error_responses(*codes: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """Documented error answers for a route's ``responses=``, all with the common body; ``descriptions`` replace
    the general description of a code where a route can say more."""
    specific = descriptions or {}
    return {code: {"model": ErrorBody, "description": specific.get(code, ERROR_DESCRIPTIONS[code])} for code in codes}
