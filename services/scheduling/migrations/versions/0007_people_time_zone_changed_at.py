"""People carry when their time zone last changed here, so a calendar's Last-Modified covers a zone change.

Without it a client revalidating with If-Modified-Since alone got a 304 after the person moved zone and kept
showing the old one. Rows already present get the upgrade's time (an upper bound of their last change: at worst each
calendar client fetches its copy once more), written as the column's default in the same ADD COLUMN: a non-volatile
default is stored in the catalogue, so the table is neither rewritten nor scanned. The default is then dropped; the
consumer writes the column from now on.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "people",
        sa.Column("time_zone_changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
    )
    op.alter_column("people", "time_zone_changed_at", server_default=None)


def downgrade() -> None:
    op.drop_column("people", "time_zone_changed_at")
