"""Private calendar feeds: a random token in the URL is the credential; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import calendar_feeds, people
from services.scheduling.adapters.repository import meeting_from_row
from services.scheduling.application.meetings import meetings_of_person, occurrence_keys
from services.scheduling.domain.errors import InvalidAvailabilityError
from services.scheduling.domain.ical import CalendarEntry, load_zone, meeting_ics, participant_feed
from shared.db import advisory_lock_key

FEED_TOKEN_BYTES = 32  # 256 bits: unguessable, so a fast hash is enough to store it
FEED_MEETING_LIMIT = 500

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CalendarFile:
    """An iCalendar body and when what it shows last changed (None: it shows nothing), for Last-Modified."""

    body: bytes
    last_modified: datetime | None


def calendar_entry(row: Row[Any], checkin_key: str | None) -> CalendarEntry:
    """A meetings row as a calendar shows it: updated_at is its last revision (DTSTAMP, LAST-MODIFIED)."""
    return CalendarEntry(meeting_from_row(row, checkin_key), created_at=row.created_at, last_modified=row.updated_at)


@dataclass(frozen=True, slots=True)
class CalendarZone:
    """The zone a person's calendars are written in (None: UTC) and when it last changed here (None: not known)."""

    name: str | None
    changed_at: datetime | None


NO_ZONE = CalendarZone(None, None)


def last_modified(entries: Sequence[CalendarEntry], zone: CalendarZone) -> datetime | None:
    """The newest change a calendar shows: of its meetings, or of the zone every time in it is written in."""
    changes = [e.last_modified for e in entries]
    if zone.changed_at is not None:
        changes.append(zone.changed_at)
    return max(changes, default=None)


async def calendar_zone(session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID) -> CalendarZone:
    """The person's stored zone if this tzdata still loads it, else None (UTC), and when it last changed.

    A zone tzdata later removed or renamed (or a row written before validation) must not turn a feed into a 422: a
    subscribed calendar client shows no error to anyone, it just stops updating. The log line says why."""
    row = (
        await session.execute(
            select(people.c.time_zone, people.c.time_zone_changed_at).where(
                people.c.person_id == person_id, people.c.tenant_id == tenant_id
            )
        )
    ).first()
    if row is None:
        return NO_ZONE
    try:
        load_zone(row.time_zone)
    except InvalidAvailabilityError:
        log.warning("time_zone_unloadable_calendar_in_utc", time_zone=row.time_zone)
        return CalendarZone(None, row.time_zone_changed_at)
    return CalendarZone(row.time_zone, row.time_zone_changed_at)


def meeting_file(entry: CalendarEntry, zone: CalendarZone) -> CalendarFile:
    """One meeting's .ics download in the zone given."""
    return CalendarFile(meeting_ics(entry, time_zone=zone.name), last_modified([entry], zone))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def hold_erasure_of(session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID) -> None:
    """Until the transaction ends, keep the person's erasure in this tenant from running beside this one (or wait for
    the one running). A row lock would not do: before scheduling has seen the person's profile there is no people
    row to lock, and an erasure inserting it would not see the feed made meanwhile, nor would the feed see it."""
    key = advisory_lock_key(b"scheduling-erasure:" + tenant_id.bytes + person_id.bytes)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def issue_feed_token(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, now: datetime
) -> str | None:
    """Create the person's feed token, or rotate it: the previous URL stops working at once. None when the person was
    erased: their erasure revoked the feed, and a new one would publish their meeting times again for good."""
    await hold_erasure_of(session, tenant_id, person_id)
    erased = (
        await session.execute(
            select(people.c.erased).where(people.c.person_id == person_id, people.c.tenant_id == tenant_id)
        )
    ).scalar_one_or_none()
    if erased:
        return None
    token = secrets.token_urlsafe(FEED_TOKEN_BYTES)
    values = {"tenant_id": tenant_id, "token_hash": token_hash(token), "created_at": now}
    stmt = insert(calendar_feeds).values(person_id=person_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["person_id", "tenant_id"], set_=values))
    return token


async def revoke_feed_token(session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(calendar_feeds).where(calendar_feeds.c.person_id == person_id, calendar_feeds.c.tenant_id == tenant_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def feed_for_token(session: AsyncSession, token: str) -> CalendarFile | None:
    """The iCalendar feed a token opens, or None when the token is unknown or revoked."""
    owner = (
        await session.execute(
            select(calendar_feeds.c.person_id, calendar_feeds.c.tenant_id).where(
                calendar_feeds.c.token_hash == token_hash(token)
            )
        )
    ).first()
    if owner is None:
        return None
    zone = await calendar_zone(session, owner.tenant_id, owner.person_id)
    rows = await meetings_of_person(session, owner.tenant_id, owner.person_id, FEED_MEETING_LIMIT)
    keys = await occurrence_keys(session, [r.check_in_id for r in rows if r.check_in_id is not None])
    entries = [calendar_entry(r, keys.get(r.check_in_id)) for r in rows]
    return CalendarFile(participant_feed(entries, time_zone=zone.name), last_modified(entries, zone))
