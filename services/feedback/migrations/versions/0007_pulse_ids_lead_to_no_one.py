"""One pulse per check-in and side, kept by a unique index; pulses of people erased before keep no derived id

Pulse ids were uuid5(namespace, "{check-in id}:{person id}"), so a redelivered CheckInDue opened nothing new; from
now on they are random and the unique index (tenant_id, check_in_id, role) is what stops a second pulse. A pulse
whose id is not the one derived from its respondent belongs to someone erased (their id was replaced, the pulse id
kept): it gets a random id, as erasure now gives it. Duplicates a late CheckInDue opened for an erased side (the
derived id of the replacement differed from the stored one) go first, the answered or earliest one kept.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from shared.migrations import create_index_concurrently, drop_index_concurrently, require_online

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# The derivation pulse ids had until this revision (domain.pulse.pulse_id_for), frozen here: PostgreSQL has no SHA-1
# without pgcrypto, so the ids are compared in Python.
_PULSE_ID_NAMESPACE = UUID("6f1c1c55-1f7e-4a53-9c39-0c1f2f0d6a01")
_BATCH = 10_000


def _ids_of_replaced_respondents(bind: Connection) -> list[UUID]:
    rows = bind.execute(
        sa.text("SELECT pulse_id, check_in_id, respondent_id FROM pulses").execution_options(
            stream_results=True, yield_per=_BATCH
        )
    )
    return [
        pulse_id
        for pulse_id, check_in_id, respondent_id in rows
        if pulse_id != uuid5(_PULSE_ID_NAMESPACE, f"{check_in_id}:{respondent_id}")
    ]


def upgrade() -> None:
    require_online("feedback", revision, down_revision, "the pulses")  # which ids to change is found in the rows
    op.execute(
        """
        DELETE FROM pulses WHERE pulse_id IN (
            SELECT pulse_id FROM (
                SELECT pulse_id, row_number() OVER (
                    PARTITION BY tenant_id, check_in_id, role
                    ORDER BY submitted_at IS NULL, opened_at, pulse_id
                ) AS position
                FROM pulses
            ) AS ranked
            WHERE position > 1
        )
        """
    )
    # CONCURRENTLY (Task G): a plain build stopped every pulse answer meanwhile. It commits the deletion above first;
    # a duplicate the old pods add meanwhile fails the build, and the Job's retry deletes it and builds again.
    create_index_concurrently("uq_pulses_check_in_role", "pulses", ["tenant_id", "check_in_id", "role"], unique=True)
    bind = op.get_bind()
    for pulse_id in _ids_of_replaced_respondents(bind):
        bind.execute(
            sa.text("UPDATE pulses SET pulse_id = :new WHERE pulse_id = :old"), {"new": uuid4(), "old": pulse_id}
        )


def downgrade() -> None:
    drop_index_concurrently("uq_pulses_check_in_role", "pulses")
