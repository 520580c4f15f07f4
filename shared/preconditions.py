"""Optimistic concurrency over HTTP: a resource's version as its ETag, checked against If-Match (RFC 9110 §13.1.1).

Every service that lets two people edit the same resource uses these, so a stale write is refused the same way
everywhere: 412 when If-Match names another version, 428 when a write that requires it omits it, 422 (naming the
header) when it is not an ETag at all.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header, HTTPException, Response, status
from pydantic import AfterValidator

IF_MATCH_MAX_LENGTH = 200

# RFC 9110 §13.1.1: ``*`` or a comma-separated list of entity tags, each ``"..."`` or ``W/"..."``; a bare version
# number is taken too (``names_version`` always accepted one, and clients send it).
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"|[0-9]+'
_IF_MATCH = re.compile(rf"\s*(?:\*|(?:{_ENTITY_TAG})(?:\s*,\s*(?:{_ENTITY_TAG}))*)\s*")


def well_formed_if_match(value: str) -> str:
    """An If-Match value as received, once its syntax is checked: a malformed one (``zz``) is the client's mistake,
    refused with a 422 naming the header rather than taken as a stale version (412 would send them re-reading)."""
    if value.strip() and _IF_MATCH.fullmatch(value) is None:
        raise ValueError(
            'If-Match is malformed: send the ETag you read, quoted, e.g. "3" (or W/"3", several separated by '
            "commas, or *)"
        )
    return value


#: The type of an If-Match header parameter: ``Annotated[IfMatchValue | None, if_match_header(...)]``.
IfMatchValue = Annotated[str, AfterValidator(well_formed_if_match)]


def if_match_header(description: str) -> Any:
    """The If-Match header parameter's declaration, described for the route's resource (FastAPI's ``Header``)."""
    return Header(alias="If-Match", max_length=IF_MATCH_MAX_LENGTH, description=description)


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def names_version(if_match: str, current: int) -> bool:
    """Whether an If-Match value names `current` (a list of strong or weak tags, or ``*``)."""
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/").strip('"') == str(current):
            return True
    return False


def expected_version(if_match: str | None, current: int) -> int:
    """The version a required If-Match names; 428 when missing, 412 when it is not the current one."""
    if if_match is None or not if_match.strip():
        raise HTTPException(status.HTTP_428_PRECONDITION_REQUIRED, "send If-Match with the ETag you read")
    if not names_version(if_match, current):
        raise stale()
    return current


def contradicts(if_match: str | None, current: int) -> bool:
    """For writes where If-Match is optional: whether one was sent and names another version (so: refuse)."""
    return if_match is not None and bool(if_match.strip()) and not names_version(if_match, current)


def stale() -> HTTPException:
    return HTTPException(status.HTTP_412_PRECONDITION_FAILED, "the resource changed since you read it; read it again")
