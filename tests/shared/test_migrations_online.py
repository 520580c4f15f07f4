"""Every service's Alembic revisions can run while the old pods still serve (deploy/README.md, "Upgrades and
migrations"): no revision holds a lock that blocks the writes to an existing table for a time growing with the
table's size. Checked twice: over the SQL each revision really sends, upgraded one revision at a time on a real
database (a guard for future revisions too), and by a writer that must get through while a revision's index build
waits for a transaction left open."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import create_engine
from shared.migrations import alembic_config, upgrade_to_head
from tests.shared.test_migrations import SERVICES, alembic, migrations_dir, revisions_from_base

pytestmark = pytest.mark.integration

# Statements that lock an existing table against writes (or reads too) for a time that grows with its rows, and why.
_SLOW_UNDER_LOCK = {
    r"\bCREATE\s+(UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)": "builds an index under a SHARE lock (no writes): "
    "use CREATE INDEX CONCURRENTLY (shared.migrations.create_index_concurrently)",
    r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(PRIMARY\s+KEY|UNIQUE)\s*\(": "builds the constraint's index under ACCESS "
    "EXCLUSIVE: build a unique index CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX",
    r"\bADD\s+(CONSTRAINT\s+\S+\s+)?(FOREIGN\s+KEY|CHECK)\b(?![^;]*\bNOT\s+VALID\b)": "scans the table under a "
    "strong lock: add it NOT VALID, then VALIDATE CONSTRAINT in a later statement",
    r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b": "rewrites the table under ACCESS EXCLUSIVE",
    r"\bALTER\s+COLUMN\s+\S+\s+SET\s+NOT\s+NULL\b": "scans the table under ACCESS EXCLUSIVE: first a CHECK "
    "(... IS NOT NULL) NOT VALID, validated",
    r"\bDEFAULT\s+[^,;]*\b(random|gen_random_uuid|uuidv4|uuidv7|clock_timestamp|timeofday)\s*\(": "a volatile "
    "default rewrites the table under ACCESS EXCLUSIVE",
    r"\bGENERATED\s+ALWAYS\s+AS\s*\([^;]*\)\s*STORED\b": "a stored generated column rewrites the table",
}

# Revisions allowed to do so, each with the reason. The outbox only holds the events its relay has not yet published
# (a row is deleted once the broker acknowledged it), so its rewrite reads a handful of rows, not the table's history.
EXCEPTIONS = {
    ("profiles", "0003"): "outbox",
    ("matching", "0003"): "outbox",
    ("scheduling", "0004"): "outbox",
    ("feedback", "0004"): "outbox",
}

_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(?P<table>\w+)", re.IGNORECASE)
_TABLE_OF = re.compile(
    r"\b(ON|ALTER\s+TABLE(\s+ONLY)?(\s+IF\s+EXISTS)?)\s+(public\.)?(?P<table>\w+)", re.IGNORECASE | re.DOTALL
)


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """Every statement any engine sends while the block runs (Alembic creates its own in env.py)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def slow_under_lock(statements: list[str]) -> list[tuple[str, str]]:
    """(statement, why) for each statement that locks a table that existed before them (one created by the same
    statements is empty, so whatever builds on it is quick)."""
    created = {match["table"] for statement in statements for match in _CREATE_TABLE.finditer(statement)}
    found = []
    for statement in statements:
        table = _TABLE_OF.search(statement)
        if table is None or table["table"] in created:
            continue
        found += [
            (" ".join(statement.split()), why)
            for pattern, why in _SLOW_UNDER_LOCK.items()
            if re.search(pattern, statement, re.IGNORECASE | re.DOTALL)
        ]
    return found


def test_the_check_flags_a_plain_index_build_on_an_existing_table_and_not_one_on_a_new_table() -> None:
    assert slow_under_lock(["CREATE INDEX ix_a ON meetings (starts_at)"]) != []
    assert slow_under_lock(["CREATE TABLE meetings (a int)", "CREATE INDEX ix_a ON meetings (a)"]) == []
    assert slow_under_lock(["CREATE INDEX CONCURRENTLY ix_a ON meetings (starts_at)"]) == []
    assert slow_under_lock(["ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (a)"]) != []
    assert slow_under_lock(["ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (a) NOT VALID"]) == []
    assert slow_under_lock(["ALTER TABLE t ADD COLUMN n integer DEFAULT 1 NOT NULL"]) == []
    assert slow_under_lock(["ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid() NOT NULL"]) != []


@pytest.mark.parametrize("service", SERVICES)
async def test_no_revision_locks_an_existing_table_for_a_time_growing_with_its_rows(
    service: str, database_url: str
) -> None:
    config = alembic_config(migrations_dir(service), database_url)
    found = {}
    for revision in revisions_from_base(config):
        with statements_sent() as sent:
            await alembic(command.upgrade, config, revision)
        if flagged := slow_under_lock(sent):
            found[revision] = flagged

    allowed = {revision for (svc, revision) in EXCEPTIONS if svc == service}
    assert {revision: flagged for revision, flagged in found.items() if revision not in allowed} == {}


# The revisions building an index on an existing table, and that table.
INDEX_BUILDS = [
    ("scheduling", "0005", "meetings"),
    ("profiles", "0002", "inbox"),
    ("matching", "0002", "inbox"),
    ("scheduling", "0003", "inbox"),
    ("feedback", "0003", "inbox"),
]
# Every wait below is bounded, so a build that blocks (or a test that waits for itself) fails instead of hanging.
BOUND_SECONDS = 60


@asynccontextmanager
async def connected(database_url: str, **options: Any) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            yield await conn.execution_options(**options) if options else conn
    finally:
        await engine.dispose()


async def until_an_index_build_waits_for_a_lock(database_url: str, upgrade: asyncio.Task[None]) -> None:
    """Polled from an autocommit connection: within one transaction PostgreSQL shows the same pg_stat_activity
    snapshot at every read, and an open transaction here would be one more the build waits for."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' AND query ILIKE '%CONCURRENTLY%'"
    )
    async with connected(database_url, isolation_level="AUTOCOMMIT") as conn:
        deadline = time.monotonic() + BOUND_SECONDS
        while time.monotonic() < deadline and not upgrade.done():
            if (await conn.execute(query)).scalar_one():
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the index build never waited for the open transaction")


async def writer_blocked(database_url: str, table: str) -> str | None:
    """What stops the next request of the old pods from taking what an INSERT takes on the table (None: nothing)."""
    async with connected(database_url) as writer:
        await writer.execute(text("SET lock_timeout = '2s'"))
        try:
            await writer.execute(text(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
        except DBAPIError as error:
            return str(error.orig)
        finally:
            await writer.rollback()
    return None


@pytest.mark.timeout(3 * BOUND_SECONDS)
@pytest.mark.parametrize(("service", "revision", "table"), INDEX_BUILDS)
async def test_a_writer_gets_through_while_a_revisions_index_build_waits_for_an_open_transaction(
    service: str, revision: str, table: str, database_url: str
) -> None:
    config = alembic_config(migrations_dir(service), database_url)
    revisions = revisions_from_base(config)
    await alembic(command.upgrade, config, revisions[revisions.index(revision) - 1])

    async with connected(database_url) as open_writer:
        # A request of the old pods, mid-transaction: it holds what an INSERT holds on the table until it ends.
        await open_writer.execute(text(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
        upgrade = asyncio.create_task(
            asyncio.to_thread(
                upgrade_to_head, migrations_dir(service), database_url, revision, lock_timeout_seconds=BOUND_SECONDS
            )
        )
        try:
            await until_an_index_build_waits_for_a_lock(database_url, upgrade)
            blocked = await writer_blocked(database_url, table)
        finally:
            await open_writer.rollback()  # before waiting for the upgrade: the build waits for this transaction
            await asyncio.wait([upgrade], timeout=BOUND_SECONDS)
    await upgrade

    assert blocked is None
    async with connected(database_url) as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == revision
        invalid = await conn.execute(text("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"))
        assert invalid.scalars().all() == []
