"""The migrate Job never stalls a live service behind a lock (deploy/README.md, "Upgrades and migrations"): each
statement waits at most lock_timeout for its lock and the upgrade retries a few times before failing with the table's
name; each revision commits on its own; the data migrations backfill in batches that commit. On real PostgreSQL,
with another connection holding what an old pod's transaction holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import shared.migrations
import shared.service
from services.matching.tests.integration.test_migration_rematch_offered import (
    test_matches_ended_before_the_revision_say_a_new_match_was_offered_unless_who_left_is_unknown as ended_matches_say_whether_a_new_match_was_offered,
)
from shared.migrations import MigrationLockTimeoutError, upgrade_to_head
from tests.shared.test_migrations import migrations_dir
from tests.shared.test_migrations_online import connected
from tests.shared.test_migrations_with_data import (
    test_matches_before_the_first_meeting_milestone_get_their_start_and_earliest_held_meeting as matches_get_their_start_and_earliest_held_meeting,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
# Every wait in these tests is bounded: an upgrade that waits for ever fails the test instead of hanging it.
BOUND_SECONDS = 30


async def upgrade(service: str, database_url: str, revision: str = "head", **options: Any) -> None:
    await asyncio.to_thread(upgrade_to_head, migrations_dir(service), database_url, revision, **options)


async def version_of(database_url: str) -> str:
    async with connected(database_url) as conn:
        return str((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one())


async def insert_matching_matches(engine: AsyncEngine, *rows: tuple[uuid.UUID, str, str | None, str | None]) -> None:
    async with engine.begin() as conn:
        for match_id, state, closed_by, category in rows:
            await conn.execute(
                text(
                    "INSERT INTO matches (match_id, tenant_id, program_id, mentee_person_id, mentor_person_id,"
                    " state, origin, score, breakdown, explanation, created_at, closed_by, end_reason_category)"
                    " VALUES (:m, :t, :t, :t, :t, :state, 'mentee_request', 0.5, '[]', 'x', :at, :by, :category)"
                ),
                {"m": match_id, "t": uuid.uuid4(), "state": state, "at": AT, "by": closed_by, "category": category},
            )


async def test_an_upgrade_behind_an_old_pods_open_transaction_gives_up_after_its_retries_naming_the_table(
    database_url: str,
) -> None:
    await upgrade("matching", database_url, "0004")
    async with connected(database_url) as old_pod:
        # An old pod's request mid-transaction, having read matches: 0005's ADD COLUMN needs ACCESS EXCLUSIVE.
        await old_pod.execute(text("LOCK TABLE matches IN ACCESS SHARE MODE"))
        started = time.monotonic()
        attempt = asyncio.create_task(
            upgrade("matching", database_url, lock_timeout_seconds=0.2, attempts=3, first_backoff_seconds=0.1)
        )
        try:
            with pytest.raises(MigrationLockTimeoutError) as refused:
                await asyncio.wait_for(asyncio.shield(attempt), BOUND_SECONDS)
        finally:
            await old_pod.rollback()
            await asyncio.wait([attempt], timeout=BOUND_SECONDS)
        took = time.monotonic() - started

    assert "matches" in str(refused.value)
    assert "3 attempts" in str(refused.value)
    assert 3 * 0.2 + 0.1 + 0.2 <= took < 10, "three waits of lock_timeout and two backoffs, not more"
    assert await version_of(database_url) == "0004"


async def test_an_upgrade_whose_lock_is_released_during_its_retries_succeeds(database_url: str) -> None:
    await upgrade("matching", database_url, "0004")
    async with connected(database_url) as old_pod:
        await old_pod.execute(text("LOCK TABLE matches IN ACCESS SHARE MODE"))
        attempt = asyncio.create_task(
            upgrade("matching", database_url, lock_timeout_seconds=0.2, attempts=10, first_backoff_seconds=0.2)
        )
        try:
            await asyncio.sleep(1.0)  # the first attempts time out meanwhile
            assert not attempt.done()
        finally:
            await old_pod.rollback()
        await asyncio.wait_for(attempt, BOUND_SECONDS)

    assert await version_of(database_url) == "0005"


async def test_revisions_before_a_failing_one_stay_applied(database_url: str, engine: AsyncEngine) -> None:
    await upgrade("matching", database_url, "0002")
    # 0004 adds enrolments.event_time: a column already there makes it fail, after 0003 ran.
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE enrolments ADD COLUMN event_time timestamptz"))

    with pytest.raises(Exception, match="event_time"):
        await upgrade("matching", database_url)

    assert await version_of(database_url) == "0003"


async def test_matching_0005s_backfill_commits_in_batches_so_a_retried_job_resumes_with_the_same_result(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared.migrations, "BACKFILL_BATCH_ROWS", 2)
    await upgrade("matching", database_url, "0004")
    ids = sorted(uuid.uuid4() for _ in range(5))
    await insert_matching_matches(engine, *((match, "ended", "mentee", "not_a_good_fit") for match in ids[:4]))
    await insert_matching_matches(engine, (ids[4], "ended", "system", "planned_end_reached"))

    # The last match (in key order) cannot be updated: the Job fails there, as when it is killed or times out.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.match_id = '{ids[4]}' THEN RAISE EXCEPTION 'stopped here'; END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text("CREATE TRIGGER refuse BEFORE UPDATE ON matches FOR EACH ROW EXECUTE FUNCTION refuse()")
        )
    with pytest.raises(Exception, match="stopped here"):
        await upgrade("matching", database_url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse ON matches"))

    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT match_id, rematch_offered FROM matches ORDER BY match_id"))).all()
    assert [tuple(row) for row in kept] == [(m, True) for m in ids[:4]] + [(ids[4], None)], "two batches committed"

    await upgrade("matching", database_url)

    async with engine.connect() as conn:
        done = (await conn.execute(text("SELECT match_id, rematch_offered FROM matches ORDER BY match_id"))).all()
    assert [tuple(row) for row in done] == [(m, True) for m in ids[:4]] + [(ids[4], False)]
    assert await version_of(database_url) == "0005"


async def test_a_backfill_whose_whole_batch_is_deleted_meanwhile_still_fills_the_rows_after_it(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's rows are deleted (by an old pod, say) after the backfill chose them and before it updates
    them: it updates none of them, yet the rows after them must be filled before the revision counts as done."""
    monkeypatch.setattr(shared.migrations, "BACKFILL_BATCH_ROWS", 2)
    await upgrade("matching", database_url, "0004")
    ids = sorted(uuid.uuid4() for _ in range(5))
    await insert_matching_matches(engine, *((match, "ended", "mentee", "not_a_good_fit") for match in ids))
    # The delete happens as the backfill reaches the row, the latest moment it can: the UPDATE finds it gone.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION vanish() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF OLD.match_id IN ('{ids[0]}', '{ids[1]}') THEN "
                "DELETE FROM matches WHERE match_id = OLD.match_id; RETURN NULL; END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text("CREATE TRIGGER vanish BEFORE UPDATE ON matches FOR EACH ROW EXECUTE FUNCTION vanish()")
        )

    await upgrade("matching", database_url)

    async with engine.connect() as conn:
        done = (await conn.execute(text("SELECT match_id, rematch_offered FROM matches ORDER BY match_id"))).all()
    assert [tuple(row) for row in done] == [(m, True) for m in ids[2:]]
    assert await version_of(database_url) == "0005"


@pytest.fixture
def main_leaves_logging_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """shared.service.main configures the process's logging for good: structlog bound to this test's captured stdout,
    closed once the test ends, so every later test's log line failed ('I/O operation on closed file')."""
    monkeypatch.setattr(shared.service, "configure_logging", lambda *args, **kwargs: None)


@pytest.mark.usefixtures("main_leaves_logging_alone")
def test_the_migrate_role_waits_for_locks_as_long_and_as_often_as_its_settings_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.profiles.bootstrap import DEFINITION

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(shared.service, "upgrade_to_head", lambda *args, **options: calls.append(options))
    monkeypatch.setenv("MENTORLOOM_MIGRATION_LOCK_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("MENTORLOOM_MIGRATION_LOCK_ATTEMPTS", "7")

    shared.service.main(DEFINITION, ["migrate"])

    assert calls == [{"lock_timeout_seconds": 2.5, "attempts": 7}]


@pytest.mark.usefixtures("main_leaves_logging_alone")
def test_the_migrate_role_says_in_one_line_which_table_it_could_not_lock_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.profiles.bootstrap import DEFINITION

    def locked_out(*args: Any, **options: Any) -> None:
        raise MigrationLockTimeoutError("could not lock table matches within 5 s in 5 attempts: a long transaction")

    monkeypatch.setattr(shared.service, "upgrade_to_head", locked_out)

    with pytest.raises(SystemExit) as exited:
        shared.service.main(DEFINITION, ["migrate"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "python -m services.profiles: migration failed: could not lock table matches within 5 s in 5 attempts: a long"
        " transaction\n"
    )


@pytest.mark.parametrize(
    "same_data_as",
    [matches_get_their_start_and_earliest_held_meeting, ended_matches_say_whether_a_new_match_was_offered],
    ids=["feedback 0002", "matching 0005"],
)
async def test_a_backfill_one_row_per_batch_leaves_the_data_the_whole_table_update_left(
    same_data_as: Callable[..., Awaitable[None]],
    database_url: str,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared.migrations, "BACKFILL_BATCH_ROWS", 1)
    parameters = inspect.signature(same_data_as).parameters
    await same_data_as(
        **{
            name: value
            for name, value in {"database_url": database_url, "engine": engine}.items()
            if name in parameters
        }
    )


async def test_a_concurrent_index_build_waits_out_an_old_pods_long_transaction_instead_of_failing_the_job(
    database_url: str,
) -> None:
    # A concurrent build blocks no reader or writer while it waits for older transactions (an old pod's long report,
    # say), so lock_timeout, which keeps ALTER TABLEs from queueing traffic behind them, must not end it.
    await upgrade("scheduling", database_url, "0004")
    async with connected(database_url) as old_pod:
        await old_pod.execute(text("LOCK TABLE meetings IN ROW EXCLUSIVE MODE"))  # an open writing transaction
        attempt = asyncio.create_task(
            upgrade("scheduling", database_url, "0005", lock_timeout_seconds=0.2, attempts=2, first_backoff_seconds=0.1)
        )
        try:
            await asyncio.sleep(2.0)  # four times what two timed-out attempts and their backoff would take
            assert not attempt.done(), "the build gave up while the old transaction was still open"
        finally:
            await old_pod.rollback()
        await asyncio.wait_for(attempt, BOUND_SECONDS)

    assert await version_of(database_url) == "0005"
    async with connected(database_url) as conn:
        invalid = await conn.execute(
            text(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
                " WHERE c.relname = 'meetings' AND NOT i.indisvalid"
            )
        )
        assert invalid.scalar_one() == 0
