"""Indexes of open (proposed or accepted) meetings: by program and start, for the coordinator's list of double
bookings, and by person and start, so an overlap probe reads a person's open meetings only, not their history.

Built CONCURRENTLY (since Task G; the schema left is the same as before): meetings holds every meeting ever
proposed, and a plain CREATE INDEX would stop the running pods from proposing or answering one for the whole build.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.migrations import create_index_concurrently, drop_index_concurrently

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_OPEN = sa.text("state IN ('proposed', 'accepted')")
_INDEXES = {
    "ix_meetings_program_open": ["tenant_id", "program_id", "starts_at"],
    "ix_meetings_mentee_open": ["mentee_person_id", "starts_at"],
    "ix_meetings_mentor_open": ["mentor_person_id", "starts_at"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        create_index_concurrently(name, "meetings", columns, postgresql_where=_OPEN)


def downgrade() -> None:
    for name in _INDEXES:
        drop_index_concurrently(name, "meetings")
