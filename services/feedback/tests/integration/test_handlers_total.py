"""Every valid event feedback subscribes to is applied or ignored, never raised on, whatever order it comes in.

Generated batches (tests.event_strategies: unknown matches and programs, check-ins and meetings of matches never
seen or already ended, older snapshots, erasures, far-past and far-future times, duplicates, whole match stories in
order or shuffled) go through the consumer's handler on a real PostgreSQL, a batch per transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from sqlalchemy.ext.asyncio import AsyncEngine

from services.feedback.bootstrap import DEFINITION
from services.feedback.entrypoints.handlers import make_handler
from shared.clock import MovableClock
from shared.events import samples
from shared.events.models import (
    CheckInDue,
    CheckInMissed,
    CheckInReminderDue,
    EnrollmentChanged,
    EventData,
    MatchAccepted,
    MatchEnded,
    MeetingCompleted,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.events.values import MeetingOutcome
from shared.migrations import upgrade_to_head
from tests.event_strategies import apply_batches, batches_of, rows, totality_settings

pytestmark = pytest.mark.integration

#: The types make_handler dispatches on (it subscribes to whole topics and acknowledges the rest).
CONSUMED = (
    ProgramUpdated,
    ProfileUpdated,
    EnrollmentChanged,
    ProfileErased,
    MatchAccepted,
    MatchEnded,
    CheckInDue,
    CheckInMissed,
    MeetingCompleted,
)
#: Types on the topics feedback subscribes to that it acknowledges without using: drawn too, so that they are shown
#: to be ignored rather than raised on (a raise would be retried and dead-lettered).
IGNORED = (CheckInReminderDue,)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def migrated(database_url: str) -> str:
    await asyncio.to_thread(upgrade_to_head, DEFINITION.migrations_dir, database_url)
    return database_url


async def assert_feedback_invariants(engine: AsyncEngine) -> None:
    flagged = await rows(engine, "SELECT match_id FROM matches WHERE at_risk AND ended_on IS NOT NULL")
    assert flagged == [], "an ended match is on the at-risk list"
    unexplained = await rows(engine, "SELECT match_id FROM matches WHERE at_risk AND at_risk_since IS NULL")
    assert unexplained == [], "an at-risk match does not say since when"
    foreign = await rows(
        engine,
        "SELECT c.check_in_id FROM check_ins c JOIN matches m USING (match_id) WHERE c.tenant_id <> m.tenant_id",
    )
    assert foreign == [], "a check-in is stored under another tenant than its match"


@totality_settings
@given(batches=batches_of(CONSUMED + IGNORED))
def test_every_valid_event_feedback_consumes_is_applied_or_ignored_and_match_health_stays_consistent(
    migrated: str, batches: list[list[EventData]]
) -> None:
    apply_batches(migrated, lambda: make_handler(MovableClock(NOW)), batches, assert_feedback_invariants)


@pytest.mark.parametrize("check_in_event", [samples.check_in_due, samples.check_in_missed])
async def test_a_check_in_event_naming_another_tenants_match_is_ignored_and_changes_nothing(
    migrated: str, check_in_event: Callable[..., CheckInDue | CheckInMissed]
) -> None:
    # Found by the test above: CheckInDue asserted the match existed in the event's tenant (the valid event raised,
    # was retried and dead-lettered), and CheckInMissed stored a check-in of the other tenant's match.
    ours = samples.match_accepted()
    theirs = check_in_event(tenant_id=samples.OTHER_TENANT_ID)

    async def nothing_of_the_other_tenant(engine: AsyncEngine) -> None:
        assert await rows(engine, "SELECT tenant_id FROM matches") == [(samples.TENANT_ID,)]
        assert await rows(engine, "SELECT check_in_id FROM check_ins") == []
        assert await rows(engine, "SELECT pulse_id FROM pulses") == []

    await asyncio.to_thread(
        apply_batches, migrated, lambda: make_handler(MovableClock(NOW)), [[ours, theirs]], nothing_of_the_other_tenant
    )


async def test_a_meeting_held_in_another_tenant_neither_completes_nor_first_meets_this_tenants_match_of_the_same_id(
    migrated: str,
) -> None:
    ours = [samples.match_accepted(), samples.check_in_due()]
    theirs = samples.meeting_completed(tenant_id=samples.OTHER_TENANT_ID, outcome=MeetingOutcome.HELD)

    async def our_check_in_still_open(engine: AsyncEngine) -> None:
        assert await rows(engine, "SELECT completed FROM check_ins WHERE check_in_id = :c", c=samples.CHECK_IN_ID) == [
            (False,)
        ]
        assert await rows(engine, "SELECT first_meeting_on FROM matches") == [(None,)]

    await asyncio.to_thread(
        apply_batches, migrated, lambda: make_handler(MovableClock(NOW)), [ours, [theirs]], our_check_in_still_open
    )


async def test_a_meeting_of_another_tenant_with_the_same_id_leaves_this_tenants_meeting_as_it_was(
    migrated: str,
) -> None:
    held = samples.meeting_completed(outcome=MeetingOutcome.HELD)
    ours = [samples.match_accepted(), held]
    # A later sequence, so only the tenant condition can keep the other tenant's event off our row.
    theirs = samples.meeting_completed(
        tenant_id=samples.OTHER_TENANT_ID,
        match_id=samples.sample_id("match:of-another-tenant"),
        outcome=MeetingOutcome.MISSED,
        sequence=5,
    )

    async def our_meeting_kept(engine: AsyncEngine) -> None:
        held_on = held.starts_at.date()
        assert await rows(engine, "SELECT tenant_id, match_id, held_on, sequence FROM meetings") == [
            (samples.TENANT_ID, samples.MATCH_ID, held_on, 0)
        ]
        assert await rows(engine, "SELECT first_meeting_on FROM matches") == [(held_on,)]

    await asyncio.to_thread(
        apply_batches, migrated, lambda: make_handler(MovableClock(NOW)), [ours, [theirs]], our_meeting_kept
    )


async def test_a_check_in_missed_in_another_tenant_with_the_same_id_leaves_this_tenants_check_in_open(
    migrated: str,
) -> None:
    ours = [samples.match_accepted(), samples.check_in_due()]
    their_match = samples.sample_id("match:of-another-tenant")
    theirs = [
        samples.match_accepted(tenant_id=samples.OTHER_TENANT_ID, match_id=their_match),
        samples.check_in_missed(tenant_id=samples.OTHER_TENANT_ID, match_id=their_match),
    ]

    async def our_check_in_open(engine: AsyncEngine) -> None:
        assert await rows(engine, "SELECT tenant_id, match_id, missed FROM check_ins") == [
            (samples.TENANT_ID, samples.MATCH_ID, False)
        ]

    await asyncio.to_thread(
        apply_batches, migrated, lambda: make_handler(MovableClock(NOW)), [ours, theirs], our_check_in_open
    )
