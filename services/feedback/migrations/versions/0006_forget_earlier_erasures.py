"""People erased before revision 0005 are forgotten as erasure now does: their id leaves every row

Erasure used to drop only pulse notes and agreement answer text and mark the people row erased, so those people's
ids stayed in pulses, surveys, matches, agreements and people. Each gets what apply_profile_erased now does: one
fresh random id replaces theirs everywhere (the reports' figures stay), the text left (a plan they recorded,
progress notes) goes, and the people row becomes a tombstone keyed by a digest of the id.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID, uuid4, uuid5

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from shared.migrations import require_online

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


# A frozen copy of the domain's erasure as it was at this revision (privacy.erasure_key, agreement.forget_party on
# the stored JSON): a copy is right here, since a migration must keep doing what it did when written, whatever the
# domain's erasure later becomes; importing the live code would change this revision silently.
_ERASURE_NAMESPACE = UUID("6f1d0a3e-4b7c-5e2a-9c81-3d5f7a9b2e40")
_FREE_TEXT_OF_TOPIC = {
    "aspirations": "hopes",
    "communication": "notes",
    "well_being": "boundaries",
    "work_feedback": "notes",
    "conflict_resolution": "notes",
    "career_development": "notes",
}
_ERASED_GOAL_TEXT = "(erased)"  # a goal's text cannot be empty


def _erasure_key(tenant_id: UUID, person_id: UUID) -> UUID:
    return uuid5(_ERASURE_NAMESPACE, f"{tenant_id}:{person_id}")


def _forget_party(stored: dict[str, Any], person_id: UUID, replacement_id: UUID) -> dict[str, Any]:
    """The agreement document with the person's free text gone and their id replaced wherever it names them."""

    def is_person(party_id: str) -> bool:
        return UUID(party_id) == person_id

    def renamed(party_id: str) -> str:
        return str(replacement_id) if is_person(party_id) else party_id

    if not any(is_person(party) for party in stored["party_ids"]):
        return stored
    document = copy.deepcopy(stored)
    answers: dict[str, Any] = document.get("answers") or {}
    own = next((topics for party, topics in answers.items() if is_person(party)), None)
    if own is not None:
        for topic, text_field in _FREE_TEXT_OF_TOPIC.items():
            own[topic][text_field] = ""
        own["goals"]["goals"] = []
    plan = document.get("plan")
    if plan is not None:
        recorded_by_person = is_person(plan["recorded_by"])
        for goal in plan["goals"]:
            for update in goal["updates"]:
                if is_person(update["recorded_by"]):
                    update["note"] = ""
                update["recorded_by"] = renamed(update["recorded_by"])
            if recorded_by_person:
                goal["text"] = _ERASED_GOAL_TEXT
        if recorded_by_person:
            plan["agreements"] = dict.fromkeys(plan.get("agreements") or {}, "")
        plan["recorded_by"] = renamed(plan["recorded_by"])
    document["party_ids"] = [renamed(party) for party in document["party_ids"]]
    document["answers"] = {renamed(party): topics for party, topics in answers.items()}
    document["submitted_at"] = {renamed(party): at for party, at in (document.get("submitted_at") or {}).items()}
    return document


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
        {"key": _erasure_key(tenant_id, person_id), "tenant": tenant_id, "version": version},
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
        forgotten = _forget_party(document, person_id, replacement)
        bind.execute(
            sa.text(
                "UPDATE agreements SET document = CAST(:document AS jsonb), version = version + 1 WHERE match_id = :m"
            ),
            {"document": orjson.dumps(forgotten).decode(), "m": match_id},
        )


def upgrade() -> None:
    require_online("feedback", revision, down_revision, "the people marked erased")
    bind = op.get_bind()
    erased = bind.execute(sa.text("SELECT person_id, tenant_id, version FROM people WHERE erased")).all()
    for person_id, tenant_id, version in erased:
        _forget(bind, person_id, tenant_id, version)


def downgrade() -> None:
    pass  # what was forgotten cannot be remembered
