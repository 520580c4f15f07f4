"""Right to be forgotten in scheduling, on a real PostgreSQL and Redis: after ProfileErased no table, outbox row or
cached response holds the person's time zone or availability, no answer kept for an Idempotency-Key retry names them,
and their calendar feed is gone. Their id stays on the meetings and check-ins of their matches (see on_profile_erased
for why)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.scheduling.application import calendars
from services.scheduling.bootstrap import projection_handler
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import Feeder, rows, scalar, token
from services.scheduling.tests.integration.scenario import Scenario
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events import samples
from shared.events.envelope import EventEnvelope
from shared.events.models import MatchAccepted
from shared.http_protection import StoredResponse
from shared.service import Runtime
from tests.erasure_scan import kept_answers_naming, stored_anywhere

pytestmark = pytest.mark.integration

# The erased mentee's own zone and hours: no other person here has them, and no meeting starts at those times.
TIME_ZONE = "Pacific/Chatham"
WINDOWS = [(day, time(5, 25), time(6, 35)) for day in ("monday", "wednesday", "saturday")]
PERSONAL = [TIME_ZONE, "05:25:00", "06:35:00"]


@pytest.fixture
async def seeded(
    client: httpx.AsyncClient, settings: SchedulingSettings, feed: Feeder, clock: MovableClock
) -> tuple[Scenario, MatchAccepted]:
    """A match whose mentee (to be erased) proposed a meeting the mentor accepted, looked at slots, downloaded the
    meeting's calendar entry and made a calendar feed; every POST with an Idempotency-Key, so its answer is kept."""
    s = Scenario()
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    match = s.match(datetime(2026, 2, 2, tzinfo=UTC))
    await feed(
        s.person(match.mentee_person_id, TIME_ZONE, WINDOWS),
        s.person(match.mentor_person_id, "Europe/Lisbon", [("tuesday", time(9), time(17))]),
        s.program(starts_on=date(2026, 2, 1), ends_on=date(2026, 12, 31)),
        match,
    )
    mentee = token(settings, s.tenant_id, person=match.mentee_person_id)
    mentor = token(settings, s.tenant_id, person=match.mentor_person_id)
    start = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    body = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}

    def once(headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Idempotency-Key": uuid.uuid4().hex}

    proposed = await client.post(f"/v1/matches/{match.match_id}/meetings", json=body, headers=once(mentee))
    assert proposed.status_code == 201, proposed.text
    meeting = proposed.json()["meeting_id"]
    assert (await client.post(f"/v1/meetings/{meeting}/accept", headers=once(mentor))).status_code == 200
    slots = await client.get(
        f"/v1/matches/{match.match_id}/slots",
        params={"start": "2026-03-15T00:00:00Z", "days": 7, "duration_minutes": 30},
        headers=mentee,
    )
    assert slots.status_code == 200, slots.text
    ics = await client.get(f"/v1/meetings/{meeting}/ics", headers=mentee)
    assert TIME_ZONE in ics.text  # the download is in the mentee's own zone
    assert (await client.post("/v1/me/calendar-feed", headers=once(mentee))).status_code in (200, 201)
    return s, match


@pytest.fixture
def erasing(db: AsyncEngine, runtime: Runtime) -> Feeder:
    """The consumer's handler as the service wires it, so an erasure also forgets what its API keeps in Redis."""
    return Feeder(db, projection_handler(runtime))


async def erase(feed: Feeder, s: Scenario, match: MatchAccepted, version: int = 2) -> None:
    person = match.mentee_person_id
    erased_at = datetime(2026, 2, 3, tzinfo=UTC)
    await feed(samples.profile_erased(tenant_id=s.tenant_id, person_id=person, version=version, erased_at=erased_at))


async def test_after_erasure_no_table_outbox_row_or_cached_response_holds_the_persons_zone_hours_or_id(
    seeded: tuple[Scenario, MatchAccepted], erasing: Feeder, runtime: Runtime, db: AsyncEngine
) -> None:
    s, match = seeded
    person = str(match.mentee_person_id)
    before = await stored_anywhere(db, runtime.redis, PERSONAL)
    assert before == {value: ["people.availability" if ":" in value else "people.time_zone"] for value in PERSONAL}
    assert await scalar(db, "SELECT count(*) FROM calendar_feeds WHERE person_id = :p", p=match.mentee_person_id)
    # The answers kept for the proposal and the partner's accept name the person in their body, the feed's in its key
    # (their token's subject is their id). Their id stays in the tables on purpose, so only Redis is scanned for it.
    assert len(await kept_answers_naming(runtime.redis, person)) == 3

    await erase(erasing, s, match)

    assert await stored_anywhere(db, runtime.redis, PERSONAL) == {}
    assert await kept_answers_naming(runtime.redis, person) == []
    assert not await scalar(db, "SELECT count(*) FROM calendar_feeds WHERE person_id = :p", p=match.mentee_person_id)


async def test_an_erasure_delivered_again_forgets_again_the_answers_kept_naming_the_person(
    seeded: tuple[Scenario, MatchAccepted], erasing: Feeder, runtime: Runtime
) -> None:
    """Forgetting runs after the erasure's commit and may fail (Redis down then, or an answer kept by a request that
    was still running): a redelivery of the erasure is the way to try again."""
    s, match = seeded
    person = str(match.mentee_person_id)
    await erase(erasing, s, match)
    # An answer naming the person kept after the first erasure forgot (Redis was down for it, say).
    late = StoredResponse("f", 201, [], f'{{"mentee_person_id": "{person}"}}'.encode()).dumps()
    await runtime.redis.set(f"idem:scheduling:{s.tenant_id}:coordinator:late", late, ex=600)

    await erase(erasing, s, match)

    assert await kept_answers_naming(runtime.redis, person) == []


async def test_an_erasure_leaves_the_answers_another_tenant_keeps_naming_the_same_person_id(
    seeded: tuple[Scenario, MatchAccepted], erasing: Feeder, runtime: Runtime
) -> None:
    """The erasure is of the person in its tenant: an answer another tenant keeps that names the same id is that
    tenant's, and stays."""
    s, match = seeded
    person = str(match.mentee_person_id)
    theirs = f"idem:scheduling:{uuid.uuid4()}:coordinator:theirs"
    kept = StoredResponse("f", 201, [], f'{{"mentee_person_id": "{person}"}}'.encode(), person=person).dumps()
    await runtime.redis.set(theirs, kept, ex=600)

    await erase(erasing, s, match)

    assert await kept_answers_naming(runtime.redis, person) == [theirs]


async def test_an_erasure_delivered_again_or_of_a_stranger_changes_nothing_more(
    seeded: tuple[Scenario, MatchAccepted], feed: Feeder, db: AsyncEngine
) -> None:
    s, match = seeded
    await erase(feed, s, match)
    tables = ("people", "meetings", "check_ins", "reminders", "matches", "outbox")
    once = {table: await rows(db, f"SELECT t::text FROM {table} AS t ORDER BY 1") for table in tables}

    await erase(feed, s, match)
    await erase(feed, s, match, version=1)
    stranger = samples.profile_erased(tenant_id=s.tenant_id, person_id=uuid.uuid4(), version=1)
    await feed(stranger)

    again = {table: await rows(db, f"SELECT t::text FROM {table} AS t ORDER BY 1") for table in tables}
    # The stranger leaves only the erased marker with its version (so a late snapshot of them is not applied).
    (marker,) = [row for row in again["people"] if row not in once["people"]]
    assert str(stranger.person_id) in marker[0]
    assert {**again, "people": once["people"]} == once


async def test_a_late_snapshot_of_the_erased_person_brings_nothing_back(
    seeded: tuple[Scenario, MatchAccepted], feed: Feeder, runtime: Runtime, db: AsyncEngine
) -> None:
    s, match = seeded
    await erase(feed, s, match)

    await feed(s.person(match.mentee_person_id, TIME_ZONE, WINDOWS, version=1))

    assert await stored_anywhere(db, runtime.redis, PERSONAL) == {}


async def test_an_erased_person_cannot_make_a_new_calendar_feed_that_would_publish_their_meetings_again(
    seeded: tuple[Scenario, MatchAccepted],
    feed: Feeder,
    client: httpx.AsyncClient,
    settings: SchedulingSettings,
    db: AsyncEngine,
) -> None:
    """The erasure revokes the person's feed; a token still valid for them (an identity provider keeps the account)
    must not make a new one, which would publish their meeting times again and outlive the erasure."""
    s, match = seeded
    await erase(feed, s, match)
    erased = token(settings, s.tenant_id, person=match.mentee_person_id)

    made = await client.post("/v1/me/calendar-feed", headers=erased)

    assert made.status_code == 404, made.text
    assert made.json()["detail"]["error"] == "not_found"
    assert not await scalar(db, "SELECT count(*) FROM calendar_feeds WHERE person_id = :p", p=match.mentee_person_id)
    # Their partner, not erased, still makes one.
    partner = token(settings, s.tenant_id, person=match.mentor_person_id)
    assert (await client.post("/v1/me/calendar-feed", headers=partner)).status_code == 201


@pytest.mark.parametrize("erasure_first", [False, True], ids=["feed-first", "erasure-first"])
async def test_a_person_scheduling_has_not_seen_erased_while_making_a_calendar_feed_keeps_no_feed(
    db: AsyncEngine, feed: Feeder, erasure_first: bool
) -> None:
    """POST /v1/me/calendar-feed and the person's erasure in two transactions open at once, before scheduling has
    any people row of the person to lock (no profile snapshot seen yet): whichever commits first, no feed of the
    erased person may stay."""
    tenant, person = uuid.uuid4(), uuid.uuid4()
    erasure = EventEnvelope.wrap(samples.profile_erased(tenant_id=tenant, person_id=person, version=1))
    sessions = session_factory(db)

    async def apply(erasing: bool, session: AsyncSession) -> None:
        if erasing:
            await feed.handle(session, erasure)
        else:  # what the route does
            await calendars.issue_feed_token(session, tenant, person, datetime(2026, 2, 3, tzinfo=UTC))

    async def apply_second() -> None:
        async with sessions() as other, other.begin():
            await apply(not erasure_first, other)

    async with sessions() as session, session.begin():
        await apply(erasure_first, session)
        later = asyncio.create_task(apply_second())
        await asyncio.wait({later}, timeout=1.0)  # done by then unless it waits for the first
    await asyncio.wait_for(later, timeout=10)

    assert not await scalar(db, "SELECT count(*) FROM calendar_feeds WHERE person_id = :p", p=person)


async def test_an_erasure_delivered_again_revokes_a_calendar_feed_the_person_still_has(
    seeded: tuple[Scenario, MatchAccepted], feed: Feeder, db: AsyncEngine
) -> None:
    """A feed left beside an applied erasure (made in a race the first delivery could not see) goes with the next
    delivery of the erasure."""
    s, match = seeded
    await erase(feed, s, match)
    async with db.begin() as conn:
        await conn.execute(
            text("INSERT INTO calendar_feeds VALUES (:p, :t, 'leftover', now())"),
            {"p": match.mentee_person_id, "t": s.tenant_id},
        )

    await erase(feed, s, match)

    assert not await scalar(db, "SELECT count(*) FROM calendar_feeds WHERE person_id = :p", p=match.mentee_person_id)
