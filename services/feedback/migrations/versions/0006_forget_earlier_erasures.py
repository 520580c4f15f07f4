"""People erased before revision 0005 are forgotten as erasure now does: their id leaves every row

Erasure used to drop only pulse notes and agreement answer text and mark the people row erased, so those people's
ids stayed in pulses, surveys, matches, agreements and people. Each gets what apply_profile_erased now does: one
fresh random id replaces theirs everywhere (the reports' figures stay), the text left (a plan they recorded,
progress notes) goes, and the people row becomes a tombstone keyed by a digest of the id.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from services.feedback.domain.agreement import ExpectationsAgreement, forget_party
from services.feedback.domain.privacy import erasure_key

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_BY_ID = (
    "UPDATE matches SET mentor_id = :replacement WHERE mentor_id = :person AND tenant_id = :tenant",
    "UPDATE matches SET mentee_id = :replacement WHERE mentee_id = :person AND tenant_id = :tenant",
    "UPDATE matches SET health_reasons = replace(health_reasons::text, :person_text, :replacement_text)::jsonb"
    " WHERE tenant_id = :tenant AND strpos(health_reasons::text, :person_text) > 0",
    "UPDATE pulses SET respondent_id = :replacement, notes = NULL, concern_flagged = false"
    " WHERE respondent_id = :person AND tenant_id = :tenant",
    "UPDATE pulses SET concern_resolved_by = :replacement_text"
    " WHERE concern_resolved_by = :person_text AND tenant_id = :tenant",
    "UPDATE surveys SET respondent_id = :replacement, before_answers = NULL, after_answers = NULL"
    " WHERE respondent_id = :person AND tenant_id = :tenant",
    "DELETE FROM enrollments WHERE person_id = :person AND tenant_id = :tenant",
    "DELETE FROM people WHERE person_id = :person AND tenant_id = :tenant",
)


def _forget(bind: Connection, person_id: UUID, tenant_id: UUID, version: int) -> None:
    replacement = uuid4()
    params: dict[str, Any] = {
        "person": person_id,
        "replacement": replacement,
        "person_text": str(person_id),
        "replacement_text": str(replacement),
        "tenant": tenant_id,
    }
    bind.execute(
        sa.text(
            "INSERT INTO erasures (person_key, tenant_id, version) VALUES (:key, :tenant, :version) "
            "ON CONFLICT (person_key) DO UPDATE SET version = greatest(erasures.version, excluded.version)"
        ),
        {"key": erasure_key(tenant_id, person_id), "tenant": tenant_id, "version": version},
    )
    for statement in _BY_ID:
        bind.execute(sa.text(statement), params)
    documents = bind.execute(
        sa.text(
            "SELECT match_id, document FROM agreements WHERE tenant_id = :tenant AND strpos(document::text, :person_text) > 0"
        ),
        params,
    ).all()
    for match_id, document in documents:
        forgotten = forget_party(ExpectationsAgreement.model_validate(document), person_id, replacement)
        bind.execute(
            sa.text(
                "UPDATE agreements SET document = CAST(:document AS jsonb), version = version + 1 WHERE match_id = :m"
            ),
            {"document": orjson.dumps(forgotten.model_dump(mode="json")).decode(), "m": match_id},
        )


def upgrade() -> None:
    bind = op.get_bind()
    erased = bind.execute(sa.text("SELECT person_id, tenant_id, version FROM people WHERE erased")).all()
    for person_id, tenant_id, version in erased:
        _forget(bind, person_id, tenant_id, version)


def downgrade() -> None:
    pass  # what was forgotten cannot be remembered
