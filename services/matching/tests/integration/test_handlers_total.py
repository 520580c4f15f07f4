"""Every valid event matching subscribes to is applied or ignored, never raised on, whatever order it comes in.

Matching creates matches itself, so each example first stores the three matches of tests.event_strategies.PAIRS in
drawn states; then generated batches (unknown people and programs, older snapshots, erasures, evaluations of ended
matches, duplicates) go through the consumer's handler on a real PostgreSQL, a batch per transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.adapters.orm import matches
from services.matching.application.projection import CONSUMED, make_handler
from services.matching.domain.lifecycle import MatchState
from shared.events import samples
from shared.events.models import EventData
from tests.event_strategies import PAIRS, DatabaseStep, apply_batches, batches_of, rows, totality_settings

pytestmark = pytest.mark.integration

CREATED = datetime(2026, 1, 10, tzinfo=UTC)
STORED_STATES = (MatchState.PENDING_APPROVAL, MatchState.PROPOSED, MatchState.ACTIVE, MatchState.ENDED)


def stored_matches(states: list[MatchState]) -> DatabaseStep:
    """The matches matching itself would have created, in the drawn states, in the sample tenant."""

    async def seed(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            for (match_id, (program_id, mentee, mentor)), state in zip(PAIRS.items(), states, strict=True):
                started = state in (MatchState.ACTIVE, MatchState.ENDED)
                await conn.execute(
                    insert(matches).values(
                        match_id=match_id,
                        tenant_id=samples.TENANT_ID,
                        program_id=program_id,
                        mentee_person_id=mentee,
                        mentor_person_id=mentor,
                        state=state.value,
                        origin="coordinator",
                        score=0.5,
                        breakdown=[],
                        explanation="seeded",
                        created_at=CREATED,
                        proposed_at=CREATED,
                        activated_at=CREATED if started else None,
                        closed_at=CREATED if state is MatchState.ENDED else None,
                        closed_by="coordinator" if state is MatchState.ENDED else None,
                    )
                )

    return seed


async def assert_matching_invariants(engine: AsyncEngine) -> None:
    flagged = await rows(engine, "SELECT match_id, state FROM matches WHERE at_risk AND state <> 'active'")
    assert flagged == [], "a match that is not active is on the at-risk list"
    unclosed = await rows(
        engine,
        "SELECT match_id, state FROM matches WHERE state IN ('ended', 'declined', 'expired') AND closed_at IS NULL",
    )
    assert unclosed == [], "a closed match has no closed_at"
    open_in_stopped = await rows(
        engine,
        "SELECT m.match_id, m.state, p.snapshot->>'status' FROM matches m JOIN programs p USING (program_id) "
        "WHERE p.tenant_id = m.tenant_id AND ("
        "(p.snapshot->>'status' = 'archived' AND m.state IN ('pending_approval', 'proposed', 'active')) OR "
        "(p.snapshot->>'status' = 'closed' AND m.state IN ('pending_approval', 'proposed')))",
    )
    assert open_in_stopped == [], "a closed or archived program keeps a match it no longer lets run"


@totality_settings
@given(
    batches=batches_of(CONSUMED),
    states=st.lists(st.sampled_from(STORED_STATES), min_size=len(PAIRS), max_size=len(PAIRS)),
)
def test_every_valid_event_matching_consumes_is_applied_or_ignored_and_matches_stay_consistent(
    migrated: str, batches: list[list[EventData]], states: list[MatchState]
) -> None:
    apply_batches(migrated, make_handler, batches, assert_matching_invariants, seed=stored_matches(states))
