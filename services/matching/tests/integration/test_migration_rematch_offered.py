"""Migration 0005: matches ended before it get rematch_offered where their stored row alone decides it."""

from __future__ import annotations

import asyncio
import uuid

from alembic import command
from sqlalchemy import text

from services.matching.bootstrap import DEFINITION
from services.matching.tests.integration.conftest import START
from shared.db import create_engine
from shared.migrations import alembic_config


async def test_matches_ended_before_the_revision_say_a_new_match_was_offered_unless_who_left_is_unknown(
    database_url: str,
) -> None:
    config = alembic_config(DEFINITION.migrations_dir, database_url)
    await asyncio.to_thread(command.upgrade, config, "0004")
    # (state, closed_by, end_reason_category) -> what the migrated row says
    expected = {
        ("ended", "mentee", "not_a_good_fit"): True,
        ("ended", "coordinator", "coordinator_decision"): True,
        ("ended", "system", "planned_end_reached"): False,
        ("ended", "system", "left_program"): None,  # the mentor's leaving offers one, the mentee's does not
        ("ended", "system", "participant_erased"): None,
        ("active", None, None): None,
        ("declined", "mentor", None): None,
    }
    ids = {}
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for state, closed_by, category in expected:
                ids[(state, closed_by, category)] = match_id = uuid.uuid4()
                await conn.execute(
                    text(
                        "INSERT INTO matches (match_id, tenant_id, program_id, mentee_person_id, mentor_person_id,"
                        " state, origin, score, breakdown, explanation, created_at, closed_by, end_reason_category)"
                        " VALUES (:m, :t, :p, :a, :b, :state, 'mentee_request', 0.5, '[]', 'x', :at, :by, :category)"
                    ),
                    {
                        "m": match_id,
                        "t": uuid.uuid4(),
                        "p": uuid.uuid4(),
                        "a": uuid.uuid4(),
                        "b": uuid.uuid4(),
                        "state": state,
                        "at": START,
                        "by": closed_by,
                        "category": category,
                    },
                )

        await asyncio.to_thread(command.upgrade, config, "head")

        async with engine.connect() as conn:
            found = {
                m: offered for m, offered in await conn.execute(text("SELECT match_id, rematch_offered FROM matches"))
            }
        assert {key: found[match_id] for key, match_id in ids.items()} == expected
    finally:
        await engine.dispose()
