"""HTTP plumbing of the profiles API: transactions, ETags and If-Match, error answers, documented responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.profiles.entrypoints.schemas import ErrorOut
from shared.service import Runtime

_ERROR = {"model": ErrorOut}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "Missing or invalid bearer token."},
    403: {**_ERROR, "description": "The caller's role may not use this endpoint."},
}
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {**_ERROR, "description": "No such resource in the caller's organisation (or not visible to them)."},
}
CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    409: {**_ERROR, "description": "Conflicts with an existing resource (e.g. email already used)."},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CREATE_RESPONSES,
    412: {**_ERROR, "description": "If-Match does not name the current version (someone else wrote first)."},
    428: {**_ERROR, "description": "If-Match is required: send the ETag of the version you read."},
}
IF_MATCH_DESCRIPTION = 'ETag of the version you read, e.g. "3" (required; a stale one gives 412).'


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work, committed before the response is built (so a 2xx means it is stored).

    Explicit rather than a yield-dependency: FastAPI runs a dependency's exit after sending the response, which
    would let a client read before the commit, and turn commit failures into silent ones.
    """
    runtime: Runtime = request.app.state.runtime
    try:
        async with runtime.sessions() as session, session.begin():
            yield session
    except IntegrityError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, _integrity_message(error)) from error


_CONSTRAINT_MESSAGES = {
    "uq_participants_tenant_email": "a participant with this email already exists",
    "uq_participants_tenant_external_id": "a participant with this external id already exists",
    "uq_campuses_tenant_name": "a campus with this name already exists",
    "uq_enrolments_program_person": "this person is already enrolled in this program",
}


def _integrity_message(error: IntegrityError) -> str:
    text = str(error.orig)
    for constraint, message in _CONSTRAINT_MESSAGES.items():
        if constraint in text:
            return message
    return "the change conflicts with existing data"


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, message)


def invalid(loc: tuple[str | int, ...], message: str, value: object = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the field (for rules that need the database to check)."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": value}])
