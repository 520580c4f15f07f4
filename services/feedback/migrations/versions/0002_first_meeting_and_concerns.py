"""first-meeting milestone and resolvable concerns for the at-risk reasons no_first_meeting and concern_flagged

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:00:00

The two indexes are built CONCURRENTLY, last (since Task G; the schema left is the same as before): a plain build
stopped every write to matches and pulses meanwhile. That commits the columns first, so they are added IF NOT EXISTS
and a retried Job can run the revision again from its start. The matches' backfill runs in committed batches
(shared.migrations.backfill_in_batches) after the columns are added, not under the ALTER TABLE's lock; a retried Job
skips the rows already done.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.migrations import backfill_in_batches, create_index_concurrently, drop_index_concurrently

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "programs",
        sa.Column("first_meeting_within_days", sa.SmallInteger(), server_default=sa.text("14"), nullable=False),
        if_not_exists=True,
    )
    op.add_column("matches", sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True), if_not_exists=True)
    op.add_column("matches", sa.Column("first_meeting_on", sa.Date(), nullable=True), if_not_exists=True)
    op.add_column(
        "pulses", sa.Column("concern_resolved_at", sa.DateTime(timezone=True), nullable=True), if_not_exists=True
    )
    op.add_column("pulses", sa.Column("concern_resolved_by", sa.Text(), nullable=True), if_not_exists=True)
    # Existing matches: their start day is the best known start; their first meeting comes from the projection.
    backfill_in_batches(
        "matches",
        "match_id",
        "activated_at = started_on::timestamp AT TIME ZONE 'UTC'",
        "activated_at IS NULL AND started_on IS NOT NULL",
    )
    held = "SELECT min(held_on) FROM meetings WHERE meetings.match_id = matches.match_id AND held_on IS NOT NULL"
    backfill_in_batches(
        "matches",
        "match_id",
        f"first_meeting_on = ({held})",
        f"first_meeting_on IS NULL AND EXISTS ({held})",
    )
    create_index_concurrently(
        "ix_matches_awaiting_first_meeting",
        "matches",
        ["activated_at"],
        unique=False,
        postgresql_where=sa.text("ended_on IS NULL AND first_meeting_on IS NULL AND activated_at IS NOT NULL"),
    )
    create_index_concurrently(
        "ix_pulses_open_concerns",
        "pulses",
        ["match_id"],
        unique=False,
        postgresql_where=sa.text("concern_flagged AND concern_resolved_at IS NULL"),
    )


def downgrade() -> None:
    drop_index_concurrently("ix_pulses_open_concerns", "pulses")
    op.drop_column("pulses", "concern_resolved_by")
    op.drop_column("pulses", "concern_resolved_at")
    drop_index_concurrently("ix_matches_awaiting_first_meeting", "matches")
    op.drop_column("matches", "first_meeting_on")
    op.drop_column("matches", "activated_at")
    op.drop_column("programs", "first_meeting_within_days")
