"""HTTP plumbing of the profiles API: transactions, ETags and If-Match, error answers, documented responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.http_errors import error_responses
from shared.service import Runtime

_SPECIFIC = {
    403: "The caller's role may not use this endpoint.",
    409: "Conflicts with an existing resource (e.g. email already used).",
}
AUTH_RESPONSES = error_responses(401, 403, descriptions=_SPECIFIC)
READ_RESPONSES = error_responses(401, 403, 404, descriptions=_SPECIFIC)
CREATE_RESPONSES = error_responses(401, 403, 404, 409, descriptions=_SPECIFIC)
WRITE_RESPONSES = error_responses(401, 403, 404, 409, 412, 428, descriptions=_SPECIFIC)
# A participant's own profile: 403 also when the write changes a field the organisation sets.
_PROFILE_403 = (
    "The caller's role may not use this endpoint, or a participant's write changes fields of their profile that "
    "only a coordinator or the HR import sets (the error names them)."
)
PROFILE_WRITE_RESPONSES = error_responses(401, 403, 404, 409, 412, 428, descriptions=_SPECIFIC | {403: _PROFILE_403})
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


def forbidden(message: str) -> HTTPException:
    """A 403: the caller reaches the resource but may not make this change to it (the message says which)."""
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


def conflict(message: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, message)


def invalid(loc: tuple[str | int, ...], message: str, value: object = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the field (for rules that need the database to check)."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": value}])
