"""Every service's Alembic revisions can run while the old pods still serve (deploy/README.md, "Upgrades and
migrations"): no revision holds a lock that blocks the writes to an existing table for a time growing with the
table's size. Checked over the SQL each revision really sends, upgraded one revision at a time on a real database (a
guard for future revisions too)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.migrations import alembic_config
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
