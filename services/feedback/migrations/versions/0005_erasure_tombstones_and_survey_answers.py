"""Erasure tombstones keyed by a digest of the person id, and the answers behind each survey score

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("person_key", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("person_key", name=op.f("pk_erasures")),
    )
    op.add_column("surveys", sa.Column("before_answers", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("surveys", sa.Column("after_answers", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("surveys", "after_answers")
    op.drop_column("surveys", "before_answers")
    op.drop_table("erasures")
