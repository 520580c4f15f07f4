"""A calendar feed per person of a tenant: the key becomes (person_id, tenant_id).

Keyed by person_id alone, a token of another tenant carrying the same person id rotated the person's feed into
its own tenant (their URL stopped working) and could revoke it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE calendar_feeds DROP CONSTRAINT pk_calendar_feeds")
    op.execute("ALTER TABLE calendar_feeds ADD CONSTRAINT pk_calendar_feeds PRIMARY KEY (person_id, tenant_id)")


def downgrade() -> None:
    # One feed per person id again: the newest stays, the others are revoked (a feed holds no data of its own).
    op.execute(
        "DELETE FROM calendar_feeds AS older USING calendar_feeds AS newer "
        "WHERE older.person_id = newer.person_id "
        "AND (older.created_at, older.tenant_id) < (newer.created_at, newer.tenant_id)"
    )
    op.execute("ALTER TABLE calendar_feeds DROP CONSTRAINT pk_calendar_feeds")
    op.execute("ALTER TABLE calendar_feeds ADD CONSTRAINT pk_calendar_feeds PRIMARY KEY (person_id)")
