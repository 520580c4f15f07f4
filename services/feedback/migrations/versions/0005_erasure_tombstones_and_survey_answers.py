"""Erasure tombstones keyed by a digest of the person id, and the answers behind each survey score

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context, op
from alembic.util import CommandError
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


#: Set to 1 to downgrade below this revision though it drops erasure tombstones or survey answers.
DOWNGRADE_OPT_IN = "MENTORLOOM_FEEDBACK_DOWNGRADE_DROPS_ERASURES"


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _refuse_to_drop_what_an_upgrade_cannot_bring_back() -> None:
    """Upgrading again brings neither back (0006 deleted the erased people's rows): without its tombstone a late event
    of an erased person (a redelivery, a replay) would make feedback keep their data again."""
    if os.environ.get(DOWNGRADE_OPT_IN) == "1":
        return
    insist = f"To drop them all the same, set {DOWNGRADE_OPT_IN}=1 and run the downgrade again."
    if context.is_offline_mode():
        raise CommandError(
            "revision 0005's downgrade drops the erasure tombstones and the per-question survey answers, and as SQL "
            f"(offline mode, --sql) it cannot count them. Run it against the database to be told, or: {insist}"
        )
    bind = op.get_bind()
    tombstones = bind.scalar(sa.text("SELECT count(*) FROM erasures"))
    answered = bind.scalar(
        sa.text("SELECT count(*) FROM surveys WHERE before_answers IS NOT NULL OR after_answers IS NOT NULL")
    )
    losses = []
    if tombstones:
        losses.append(
            f"{_counted(tombstones, 'erasure tombstone', 'erasure tombstones')}: without them a late event (a "
            "redelivery, a replay of a topic) would re-create an erased person's data here"
        )
    if answered:
        losses.append(
            f"{_counted(answered, 'survey with per-question answers', 'surveys with per-question answers')}: the "
            "answers behind their scores would be lost for good"
        )
    if losses:
        raise CommandError(
            f"revision 0005's downgrade would drop {'; and '.join(losses)}. Upgrading again brings none of it back "
            f"(revision 0006 deleted the erased people's rows). {insist}"
        )


def downgrade() -> None:
    _refuse_to_drop_what_an_upgrade_cannot_bring_back()
    op.drop_column("surveys", "after_answers")
    op.drop_column("surveys", "before_answers")
    op.drop_table("erasures")
