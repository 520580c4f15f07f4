"""Ended matches keep whether their mentee is offered a new match (as their MatchEnded said), for the mentee and mentor
to read on the match.

Matches ended before this revision get what their stored row decides alone: true when a party or a coordinator ended
them, false for the program's end. A system end because one of them left the program or was erased stays null: the
row does not say which of the two left, and their enrolments may have changed since. They are updated in committed
batches after the column is added (shared.migrations.backfill_in_batches), so a retried Job resumes; the column is
added IF NOT EXISTS for the same reason.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import backfill_in_batches

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("matches", sa.Column("rematch_offered", sa.Boolean(), nullable=True), if_not_exists=True)
    backfill_in_batches(
        "matches",
        "match_id",
        "rematch_offered = (closed_by <> 'system')",
        "state = 'ended' AND rematch_offered IS NULL"
        " AND (closed_by <> 'system' OR end_reason_category = 'planned_end_reached')",
    )


def downgrade() -> None:
    op.drop_column("matches", "rematch_offered")
