"""Alembic environment shared by every service: async engine, URL from the service's settings.

A service's `migrations/env.py` is two lines: import its metadata, call `run_alembic_env(metadata)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog
from alembic import command, context, op
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import MetaData, TextClause, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_engine_from_config

from shared.messaging.tables import (
    INBOX_RECEIVED_AT_BRIN_DDL,
    INBOX_RECEIVED_AT_BTREE_DDL,
    OUTBOX_HEADERS_JSONB_DDL,
    OUTBOX_HEADERS_TEXT_DDL,
)

log = structlog.get_logger(__name__)

# The longest a migration statement waits for a table's lock. An ALTER TABLE queued behind an old pod's open
# transaction makes every later query on that table queue behind it: better to give up, wait and try again.
DEFAULT_LOCK_TIMEOUT_SECONDS = 5.0
DEFAULT_LOCK_ATTEMPTS = 5
DEFAULT_FIRST_BACKOFF_SECONDS = 1.0
# Rows a batched backfill updates per transaction (backfill_in_batches): each batch's row locks last one commit.
BACKFILL_BATCH_ROWS = 5000

_LOCK_TIMEOUT_ATTRIBUTE = "mentorloom_lock_timeout_seconds"
_LOCK_NOT_AVAILABLE = "55P03"
_TABLE_OF_STATEMENT = re.compile(
    r"\b(?:ALTER\s+TABLE(?:\s+ONLY)?(?:\s+IF\s+EXISTS)?|ON|UPDATE|DELETE\s+FROM|INSERT\s+INTO|LOCK(?:\s+TABLE)?)\s+"
    r"(?:ONLY\s+)?(?:public\.)?\"?(?P<table>\w+)",
    re.IGNORECASE,
)


class MigrationLockTimeoutError(RuntimeError):
    """A revision could not take a table's lock within lock_timeout, on every attempt."""


def alembic_config(
    migrations_dir: Path, database_url: str, *, lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes[_LOCK_TIMEOUT_ATTRIBUTE] = lock_timeout_seconds
    return config


def upgrade_to_head(
    migrations_dir: Path,
    database_url: str,
    revision: str = "head",
    *,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    attempts: int = DEFAULT_LOCK_ATTEMPTS,
    first_backoff_seconds: float = DEFAULT_FIRST_BACKOFF_SECONDS,
) -> None:
    """What the migrate role (and the Kubernetes migration Job) runs before the app starts.

    A statement that waited lock_timeout for its lock fails its revision (the revisions before it stay committed);
    the upgrade then starts again from that revision after a backoff doubling from first_backoff_seconds, and after
    `attempts` tries raises MigrationLockTimeoutError naming the table."""
    config = alembic_config(migrations_dir, database_url, lock_timeout_seconds=lock_timeout_seconds)
    for attempt in range(1, attempts + 1):
        try:
            command.upgrade(config, revision)
            return
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            table = _table_of(str(error.statement or ""))
            if attempt == attempts:
                raise MigrationLockTimeoutError(
                    f"could not lock table {table} within {lock_timeout_seconds:g} s in {attempts} attempts: a "
                    f"long transaction holds it (see pg_stat_activity / pg_locks for {table}); end it or run the "
                    f"migration again later. Statement: {' '.join(str(error.statement or '').split())[:300]}"
                ) from error
            backoff = first_backoff_seconds * 2 ** (attempt - 1)
            log.warning("migration_lock_timeout_retry", table=table, attempt=attempt, retry_in_seconds=backoff)
            time.sleep(backoff)


def _table_of(statement: str) -> str:
    found = _TABLE_OF_STATEMENT.search(statement)
    return found["table"] if found else "(unknown: see the statement)"


def _run_sync(connection: Connection, metadata: MetaData) -> None:
    timeout = float(context.config.attributes.get(_LOCK_TIMEOUT_ATTRIBUTE, DEFAULT_LOCK_TIMEOUT_SECONDS))
    # A session setting, committed before Alembic begins: it holds in every revision's transaction and in the
    # autocommit blocks of the concurrent index builds and batched backfills.
    connection.execute(text(f"SET lock_timeout = '{int(timeout * 1000)}ms'"))
    connection.commit()
    # One transaction per revision: a revision's locks end with it, and a failure keeps the revisions before it.
    context.configure(
        connection=connection, target_metadata=metadata, compare_type=True, transaction_per_migration=True
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(metadata: MetaData) -> None:
    config = context.config
    engine = async_engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync, metadata)
    await engine.dispose()


def run_alembic_env(metadata: MetaData) -> None:
    if context.is_offline_mode():
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_online(metadata))
        return
    raise RuntimeError("call upgrade_to_head from a thread without a running event loop (e.g. asyncio.to_thread)")


def require_online(service: str, revision: str, down_revision: str | None, reads: str) -> None:
    """Called first by a data migration that reads rows to decide what to write: offline mode (`upgrade --sql`) has
    no rows to read, and without this the revision fails somewhere inside with an error that says nothing."""
    if not context.is_offline_mode():
        return
    raise CommandError(
        f"revision {revision} reads {reads} to decide what to change, so it cannot be rendered as SQL (offline mode, "
        f"--sql). Run it against the database: python -m services.{service} migrate. Render only the revisions "
        f"before it: alembic upgrade <current>:{down_revision} --sql."
    )


@contextlib.contextmanager
def _without_lock_timeout() -> Iterator[None]:
    """Lift lock_timeout for a concurrent index build or drop (in an autocommit block). Such a statement waits for
    every older transaction of the database, an old pod's long report included, yet blocks no reader or writer
    meanwhile (its SHARE UPDATE EXCLUSIVE lock conflicts with neither), so waiting is harmless, while giving up
    after lock_timeout would fail the Job for nothing. The session's setting is restored after."""
    if context.is_offline_mode():
        yield  # the rendered SQL sets no lock_timeout
        return
    bind = op.get_bind()
    previous = bind.execute(text("SHOW lock_timeout")).scalar_one()
    bind.execute(text("SET lock_timeout = 0"))
    try:
        yield
    finally:
        bind.execute(text("SELECT set_config('lock_timeout', :previous, false)"), {"previous": previous})


def create_index_concurrently(name: str, table: str, columns: Sequence[str], **kw: Any) -> None:
    """An index on a table that already holds rows, built while the old pods keep writing to it: a plain CREATE INDEX
    holds a SHARE lock (no INSERT, UPDATE or DELETE) for the whole build. CONCURRENTLY cannot run in a transaction,
    so this commits what the migration did so far; a revision calling it must be safe to run again from its start
    (a retry of the Job does). A build that failed leaves an INVALID index of this name: it is dropped first."""
    with op.get_context().autocommit_block(), _without_lock_timeout():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.create_index(name, table, list(columns), postgresql_concurrently=True, **kw)


def backfill_in_batches(table: str, key: str, assignments: str, pending: str) -> None:
    """UPDATE table SET assignments WHERE pending, BACKFILL_BATCH_ROWS rows per committed transaction in key order, so
    no row (and no lock the revision took before) stays locked for the whole backfill, and a retried Job skips what an
    earlier one did. `pending` must no longer hold for a row once it is updated. Run outside the revision's
    transaction, which it commits first (as a concurrent index build does). Rendered as SQL (offline mode) it is the
    one UPDATE: an operator's script cannot loop."""
    if context.is_offline_mode():
        op.execute(f"UPDATE {table} SET {assignments} WHERE {pending}")
        return

    # A batch's keys are chosen first and the cursor moves past them whatever the UPDATE then finds, so rows deleted
    # or no longer pending by then (READ COMMITTED) do not end the backfill early: it ends only when no pending row is
    # left after the cursor. The UPDATE checks `pending` again, so a row a live pod changed meanwhile keeps its value.
    def statements(after: str) -> tuple[TextClause, TextClause]:
        """The last key of the next batch, and the update of the pending rows up to it."""
        batch = f"SELECT {key} FROM {table} WHERE ({pending}){after} ORDER BY {key} LIMIT {int(BACKFILL_BATCH_ROWS)}"
        return (
            text(f"SELECT {key} FROM ({batch}) AS batch ORDER BY {key} DESC LIMIT 1"),
            text(f"UPDATE {table} SET {assignments} WHERE ({pending}){after} AND {key} <= :last"),
        )

    following = statements(f" AND {key} > :after")
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        (last_of_batch, update), cursor = statements(""), dict[str, Any]()
        while (last := bind.execute(last_of_batch, cursor).scalar()) is not None:
            bind.execute(update, {**cursor, "last": last})
            (last_of_batch, update), cursor = following, {"after": last}


def drop_index_concurrently(name: str, table: str) -> None:
    with op.get_context().autocommit_block(), _without_lock_timeout():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def _execute_outside_a_transaction(statements: Sequence[str]) -> None:
    """The inbox index DDL: concurrent builds and drops, hence without lock_timeout."""
    with op.get_context().autocommit_block(), _without_lock_timeout():
        for ddl in statements:
            op.execute(ddl)


def inbox_index_to_brin() -> None:
    """Every service's migration that turns the inbox's received_at index into BRIN (it only grows; pruning scans
    ranges): one revision per service database, the statements once here. Dropped and built CONCURRENTLY, so the
    consumers keep inserting into the inbox meanwhile (pruning scans it without an index for that while)."""
    _execute_outside_a_transaction(INBOX_RECEIVED_AT_BRIN_DDL)


def inbox_index_to_btree() -> None:
    _execute_outside_a_transaction(INBOX_RECEIVED_AT_BTREE_DDL)


def outbox_headers_to_text() -> None:
    """Every service's migration that stores the outbox's headers as text instead of jsonb (rows kept)."""
    op.execute(OUTBOX_HEADERS_TEXT_DDL)


def outbox_headers_to_jsonb() -> None:
    op.execute(OUTBOX_HEADERS_JSONB_DDL)
