"""The outbox and inbox tables every service has in its own database.

Services include these in their Alembic migrations via `messaging_tables(metadata)` and
`OUTBOX_NOTIFY_DDL`, so the tables are created by the migration Job like any other.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, MetaData, Table, Text, func, text

OUTBOX_NOTIFY_CHANNEL = "mentorloom_outbox"


def messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=False),
        # The CloudEvents headers as a JSON object in text: nothing queries inside them, and jsonb cost a parse on
        # every insert and a re-serialisation on every claim (~8 µs of PostgreSQL CPU per event, measured).
        Column("headers", Text, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("attempts", BigInteger, nullable=False, server_default=text("0")),
    )
    inbox = Table(
        "inbox",
        metadata,
        # The primary key is the idempotency guarantee: a second insert of the same event for the
        # same consumer conflicts inside the handler's own transaction.
        Column("consumer", Text, primary_key=True),
        Column("event_id", Text, primary_key=True),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # BRIN, not B-tree: received_at only grows, pruning reads whole ranges of old rows, and a BRIN index
        # costs next to nothing per insert (a B-tree entry per event was ~10 % of the inbox insert's CPU).
        Index("ix_inbox_received_at", "received_at", postgresql_using="brin"),
    )
    return outbox, inbox


# A statement-level trigger: one NOTIFY per inserting statement (and PostgreSQL folds identical
# notifications within a transaction), so bulk writes stay cheap while the relay wakes at once.
OUTBOX_NOTIFY_DDL = (
    f"""
    CREATE OR REPLACE FUNCTION mentorloom_outbox_notify() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{OUTBOX_NOTIFY_CHANNEL}', '');
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox"
    " FOR EACH STATEMENT EXECUTE FUNCTION mentorloom_outbox_notify()",
)

# Migrations of databases created before the inbox's received_at index became BRIN (every service's 0001).
# CONCURRENTLY: the consumers keep inserting meanwhile; run outside a transaction (shared.migrations). A failed build
# leaves an INVALID index, which the DROP of a retry removes.
INBOX_RECEIVED_AT_BRIN_DDL = (
    "DROP INDEX CONCURRENTLY IF EXISTS ix_inbox_received_at",
    "CREATE INDEX CONCURRENTLY ix_inbox_received_at ON inbox USING brin (received_at)",
)
INBOX_RECEIVED_AT_BTREE_DDL = (
    "DROP INDEX CONCURRENTLY IF EXISTS ix_inbox_received_at",
    "CREATE INDEX CONCURRENTLY ix_inbox_received_at ON inbox (received_at)",
)
# Migrations of databases whose outbox headers were jsonb (every service's 0001).
OUTBOX_HEADERS_TEXT_DDL = "ALTER TABLE outbox ALTER COLUMN headers TYPE text USING headers::text"
OUTBOX_HEADERS_JSONB_DDL = "ALTER TABLE outbox ALTER COLUMN headers TYPE jsonb USING headers::jsonb"

_metadata = MetaData()
OUTBOX, INBOX = messaging_tables(_metadata)
