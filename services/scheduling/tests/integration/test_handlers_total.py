"""Every valid event scheduling subscribes to is applied or ignored, never raised on, whatever order it comes in.

Generated batches (tests.event_strategies) hold unknown matches and programs, ends before starts, older snapshots,
far-past and far-future times and duplicates; they go through the consumer's handler on a real PostgreSQL, a batch
per transaction. A raise would retry the batch and then dead-letter a valid event."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduling.application.checkins import cancel_checkins
from services.scheduling.application.projection import CONSUMED, make_handler
from services.scheduling.tests.integration.conftest import START, Feeder, rows, scalar
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events import samples
from shared.events.models import EventData
from shared.events.values import ProgramStatus
from tests.event_strategies import apply_batches, batches_of, totality_settings

pytestmark = pytest.mark.integration


async def assert_scheduling_invariants(engine: AsyncEngine) -> None:
    open_of_ended = await rows(
        engine,
        "SELECT c.occurrence_key FROM check_ins c JOIN matches m USING (match_id) "
        "WHERE m.ended_at IS NOT NULL AND c.state IN ('scheduled', 'due')",
    )
    assert open_of_ended == [], "an ended match keeps open check-ins"
    foreign = await rows(
        engine,
        "SELECT c.occurrence_key FROM check_ins c JOIN matches m USING (match_id) "
        "WHERE c.tenant_id <> m.tenant_id OR c.program_id <> m.program_id",
    )
    assert foreign == [], "a check-in belongs to another tenant or program than its match"
    planned_without_program = await rows(
        engine,
        "SELECT m.match_id FROM matches m LEFT JOIN programs p "
        "ON p.program_id = m.program_id AND p.tenant_id = m.tenant_id WHERE m.planned AND p.program_id IS NULL",
    )
    assert planned_without_program == [], "a match was planned without its program's settings"


@totality_settings
@given(batches=batches_of(CONSUMED))
def test_every_valid_event_scheduling_consumes_is_applied_or_ignored_and_check_ins_stay_consistent(
    migrated: str, batches: list[list[EventData]]
) -> None:
    apply_batches(migrated, lambda: make_handler(MovableClock(START)), batches, assert_scheduling_invariants)


async def accept_match_in_program(feed: Feeder, ends_on: date, cadence_days: int) -> None:
    """The sample match, accepted in an active program from 2026-01-01 to `ends_on` with check-ins every so often."""
    program = samples.program_updated(
        starts_on=date(2026, 1, 1), ends_on=ends_on, check_in_cadence_days=cadence_days, status=ProgramStatus.ACTIVE
    )
    await feed(program, samples.match_accepted(activated_at=datetime(2026, 1, 5, tzinfo=UTC)))


async def test_a_match_in_a_ten_year_program_with_daily_check_ins_gets_its_whole_plan(
    feed: Feeder, db: AsyncEngine
) -> None:
    # Found by the test above: 3,650 check-ins in one INSERT exceeded asyncpg's 32,767 query arguments.
    await accept_match_in_program(feed, date(2036, 1, 1), cadence_days=1)
    planned = await scalar(db, "SELECT count(*) FROM check_ins WHERE match_id = :m", m=samples.MATCH_ID)
    assert planned > 3_000


async def test_cancelling_more_check_ins_than_one_statement_takes_cancels_every_one(
    feed: Feeder, db: AsyncEngine
) -> None:
    # A daily rhythm over ~90 years ends with ~33,000 open check-ins: past asyncpg's 32,767 arguments of one
    # UPDATE ... IN (...). Made-up keys stand in for most of them (planning that many takes half a minute).
    await accept_match_in_program(feed, date(2027, 1, 1), cadence_days=7)
    planned = [key for (key,) in await rows(db, "SELECT occurrence_key FROM check_ins")]
    absent = [f"{samples.MATCH_ID}:regular:{seq}" for seq in range(1_000, 34_000)]

    async with session_factory(db)() as session, session.begin():
        await cancel_checkins(session, absent + planned, datetime(2026, 2, 1, tzinfo=UTC))

    assert await rows(db, "SELECT DISTINCT state FROM check_ins") == [("cancelled",)]
