"""Erasure tombstones keep the random id that replaced the person, so a match first seen after the erasure uses it

Nullable, no default: instant, and the old pods keep writing tombstones without it meanwhile. Tombstones written
before keep null (their erasure's replacement id is not known); a late match of such a person gets one then, which
their later late matches share.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("erasures", sa.Column("replaced_by", sa.UUID(), nullable=True))


def downgrade() -> None:
    # Only the link to later late matches goes: each of those then stands under a new random id again.
    op.drop_column("erasures", "replaced_by")
