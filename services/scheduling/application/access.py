"""Who may see and act on what: participants their own matches, coordinators their programs, one tenant each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.repository import MatchRecord, load_match, load_program
from shared.auth import Principal


class NotFoundError(Exception):
    """The resource does not exist for this caller (another tenant's, or not theirs to see): HTTP 404."""


class ForbiddenError(Exception):
    """The caller sees the resource but may not do this to it: HTTP 403."""


class ConflictError(Exception):
    """The request does not fit the resource's current state: HTTP 409."""


@dataclass(frozen=True, slots=True)
class MeetingConflict:
    """An open meeting that overlaps another; ``meeting_id`` is None when the caller may not see that meeting."""

    meeting_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime


# How many overlapping meetings each listed meeting names, earliest first; the rest are only counted. A person
# double-booked many times over must not make one page of meetings answer without bound.
OVERLAPS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class MeetingOverlaps:
    """The first open meetings overlapping one meeting, earliest first, and how many overlap it in all."""

    first: tuple[MeetingConflict, ...] = ()
    total: int = 0


NO_OVERLAPS = MeetingOverlaps()


class OverlappingMeetingError(ConflictError):
    """The time asked for overlaps an open meeting of one of the two people: HTTP 409, naming it in the message and
    as ``conflict``."""

    def __init__(self, message: str, conflict: MeetingConflict) -> None:
        self.conflict = conflict
        super().__init__(message)


class InvalidReferenceError(Exception):
    """A request field names something that cannot be used here (e.g. a check-in that is not an open one of the
    match): HTTP 422 naming ``field``, with its ``value``."""

    def __init__(self, message: str, field: str, value: object) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class StaleVersionError(Exception):
    """The caller's If-Match names a version the resource no longer has (someone else wrote first): HTTP 412."""


def can_see(principal: Principal, match: MatchRecord) -> bool:
    return may_see(principal, match.tenant_id, match.participants, match.program_id)


def may_see(
    principal: Principal, tenant_id: uuid.UUID, participants: tuple[uuid.UUID, uuid.UUID], program_id: uuid.UUID
) -> bool:
    """A match's meetings are seen by its two people and its program's coordinators, within one tenant."""
    if not principal.belongs_to(tenant_id):
        return False
    return any(principal.is_person(p) for p in participants) or principal.manages(program_id)


async def visible_match(
    session: AsyncSession, principal: Principal, match_id: uuid.UUID, *, for_update: bool = False
) -> MatchRecord:
    # Scoped by the caller's tenant in the query itself: another tenant's match is simply not found.
    match = await load_match(session, principal.tenant, match_id, for_update=for_update)
    if match is None or not can_see(principal, match):
        raise NotFoundError(f"match {match_id} not found")
    return match


def acting_participant(principal: Principal, match: MatchRecord) -> uuid.UUID:
    """The caller as one of the match's two people; coordinators see meetings but do not act for the pair."""
    for person in match.participants:
        if principal.is_person(person):
            return person
    raise ForbiddenError("only the two participants of the match can act on its meetings")


async def require_program(session: AsyncSession, principal: Principal, program_id: uuid.UUID) -> None:
    """The caller manages the program and it belongs to the caller's tenant (else 404, whichever failed)."""
    if not principal.manages(program_id) or await load_program(session, principal.tenant, program_id) is None:
        raise NotFoundError(f"program {program_id} not found")
