"""A calendar feed per person of a tenant: the key becomes (person_id, tenant_id).

Keyed by person_id alone, a token of another tenant carrying the same person id rotated the person's feed into
its own tenant (their URL stopped working) and could revoke it.

The new key's index is built CONCURRENTLY, then becomes the primary key (since Task G; the schema left is the same as
before): ADD PRIMARY KEY (...) built it under ACCESS EXCLUSIVE, stopping every feed read and rotation meanwhile.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from shared.migrations import create_index_concurrently

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


_NEW_KEY = "calendar_feeds_person_tenant_key"


def upgrade() -> None:
    create_index_concurrently(_NEW_KEY, "calendar_feeds", ["person_id", "tenant_id"], unique=True)
    # Both in one statement: no moment without a key. USING INDEX renames the index to pk_calendar_feeds.
    op.execute(
        "ALTER TABLE calendar_feeds DROP CONSTRAINT pk_calendar_feeds, "
        f"ADD CONSTRAINT pk_calendar_feeds PRIMARY KEY USING INDEX {_NEW_KEY}"
    )


def downgrade() -> None:
    # One feed per person id again: the newest stays, the others are revoked (a feed holds no data of its own).
    op.execute(
        "DELETE FROM calendar_feeds AS older USING calendar_feeds AS newer "
        "WHERE older.person_id = newer.person_id "
        "AND (older.created_at, older.tenant_id) < (newer.created_at, newer.tenant_id)"
    )
    op.execute("ALTER TABLE calendar_feeds DROP CONSTRAINT pk_calendar_feeds")
    op.execute("ALTER TABLE calendar_feeds ADD CONSTRAINT pk_calendar_feeds PRIMARY KEY (person_id)")
