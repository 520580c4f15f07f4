"""Alembic environment shared by every service: async engine, URL from the service's settings.

A service's `migrations/env.py` is two lines: import its metadata, call `run_alembic_env(metadata)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command, context, op
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from shared.messaging.tables import (
    INBOX_RECEIVED_AT_BRIN_DDL,
    INBOX_RECEIVED_AT_BTREE_DDL,
    OUTBOX_HEADERS_JSONB_DDL,
    OUTBOX_HEADERS_TEXT_DDL,
)


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(migrations_dir: Path, database_url: str) -> None:
    """What the migrate role (and the Kubernetes migration Job) runs before the app starts."""
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def _run_sync(connection: Connection, metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
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
        context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
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


def create_index_concurrently(name: str, table: str, columns: Sequence[str], **kw: Any) -> None:
    """An index on a table that already holds rows, built while the old pods keep writing to it: a plain CREATE INDEX
    holds a SHARE lock (no INSERT, UPDATE or DELETE) for the whole build. CONCURRENTLY cannot run in a transaction,
    so this commits what the migration did so far; a revision calling it must be safe to run again from its start
    (a retry of the Job does). A build that failed leaves an INVALID index of this name: it is dropped first."""
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.create_index(name, table, list(columns), postgresql_concurrently=True, **kw)


def drop_index_concurrently(name: str, table: str) -> None:
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def _execute_outside_a_transaction(statements: Sequence[str]) -> None:
    with op.get_context().autocommit_block():
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
