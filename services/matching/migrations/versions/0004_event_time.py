"""Programs, people and enrolments record the time of the event whose snapshot they hold, so a coordinator can see
how recent matching's view of a program is (the program pool).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("programs", "people", "enrolments")


def upgrade() -> None:
    for table in _TABLES:
        # Null for snapshots applied before this revision: their events' times were not kept.
        op.add_column(table, sa.Column("event_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "event_time")
