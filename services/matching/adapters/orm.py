"""The matching database: a projection of people, programs and enrolments, plus matches, rounds and exposure.

SQLAlchemy Core tables on the service's own metadata (plus the shared outbox/inbox). Every row carries the tenant
id and every query filters on it. Profile and program snapshots are kept whole (JSONB of the contract model), since
scoring needs nearly every field and the contract already validates and versions them.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import new_metadata
from shared.messaging.tables import messaging_tables

metadata = new_metadata()
OUTBOX, INBOX = messaging_tables(metadata)

programs = Table(
    "programs",
    metadata,
    Column("program_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("snapshot", JSONB, nullable=False),  # ProgramUpdated, as JSON
    Column("event_time", DateTime(timezone=True), nullable=True),  # of the applied event; null before 0004
)

people = Table(
    "people",
    metadata,
    Column("person_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    # Null once erased: the whole snapshot is personal data. The row stays so a late ProfileUpdated is stale.
    Column("snapshot", JSONB, nullable=True),
    Column("erased", Boolean, nullable=False, server_default=text("false")),
    Column("event_time", DateTime(timezone=True), nullable=True),  # of the applied event; null before 0004
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("enrollment_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("person_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", Text, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=True),  # of the applied event; null before 0004
    Index("ix_enrolments_program", "tenant_id", "program_id"),
    Index("ix_enrolments_person", "person_id"),
)

matches = Table(
    "matches",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_person_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_person_id", UUID(as_uuid=True), nullable=False),
    Column("state", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("round_id", UUID(as_uuid=True), nullable=True),
    Column("score", Float, nullable=False),
    Column("breakdown", JSONB, nullable=False),  # list of contract FactorScore dicts
    Column("explanation", Text, nullable=False),
    Column("mentee_accepted", Boolean, nullable=False, server_default=text("false")),
    Column("mentor_accepted", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("proposed_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_by", Text, nullable=True),  # ActorRole of whoever declined or ended it
    Column("decline_reason", Text, nullable=True),
    Column("end_reason_category", Text, nullable=True),
    # The participant's own words on why it ended: coordinators only, never on the bus.
    Column("end_reason_private", Text, nullable=True),
    # Once ended: whether the mentee is offered a new match, as its MatchEnded said. Null while open, and for system
    # ends a person's leaving made before revision 0005 (who left was not kept).
    Column("rematch_offered", Boolean, nullable=True),
    Column("at_risk", Boolean, nullable=False, server_default=text("false")),
    Column("at_risk_reasons", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("at_risk_health", Float, nullable=True),
    Column("at_risk_evaluated_at", DateTime(timezone=True), nullable=True),
    Index("ix_matches_program_state", "tenant_id", "program_id", "state"),
    Index("ix_matches_mentee", "mentee_person_id"),
    Index("ix_matches_mentor", "mentor_person_id"),
    Index("ix_matches_round", "round_id"),
    Index("ix_matches_expiry", "expires_at", postgresql_where=text("state = 'proposed'")),
    # One open match per pair and program, whatever the race between a request, a round and a coordinator.
    Index(
        "uq_matches_open_pair",
        "program_id",
        "mentee_person_id",
        "mentor_person_id",
        unique=True,
        postgresql_where=text("state IN ('pending_approval', 'proposed', 'active')"),
    ),
)

rounds = Table(
    "rounds",
    metadata,
    Column("round_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("status", Text, nullable=False),  # pending_approval | approved | expired
    Column("report", JSONB, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Index("ix_rounds_program", "tenant_id", "program_id"),
)

# Which mentors a mentee's current short list shows; a mentor's exposure is the number of open lists showing them.
# A mentee's rows are replaced with each new list and dropped once the mentee is matched or erased.
shortlist_exposure = Table(
    "shortlist_exposure",
    metadata,
    Column("program_id", UUID(as_uuid=True), primary_key=True),
    Column("mentee_person_id", UUID(as_uuid=True), primary_key=True),
    Column("mentor_person_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Index("ix_exposure_mentor", "program_id", "mentor_person_id"),
)
