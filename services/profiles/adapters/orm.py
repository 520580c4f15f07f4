"""Tables of the profiles database. Nested values (lists, goal statements, policies) are JSONB holding the
JSON of the contract's pydantic value types, validated on the way in and read back with the same models.

Every row carries `version` (optimistic concurrency, ETag, and the version of the events it emits).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import new_metadata
from shared.messaging.tables import messaging_tables

metadata = new_metadata()
OUTBOX, INBOX = messaging_tables(metadata)


def _version() -> Column[int]:
    return Column("version", BigInteger, nullable=False, server_default=text("1"))


def _timestamps() -> tuple[Column[object], Column[object]]:
    return (
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


organisations = Table(
    "organisations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    _version(),
    *_timestamps(),
)

campuses = Table(
    "campuses",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    _version(),
    *_timestamps(),
    UniqueConstraint("tenant_id", "name", name="uq_campuses_tenant_name"),
)

programs = Table(
    "programs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("campus_ids", JSONB, nullable=False),
    Column("goals", JSONB, nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("check_in_cadence_days", Integer, nullable=False),
    Column("milestones", JSONB, nullable=False),
    Column("matching_policy", JSONB, nullable=False),
    Column("default_mentor_capacity", Integer, nullable=False),
    Column("min_report_group_size", Integer, nullable=False),
    Column("function_catalogue", JSONB, nullable=False),
    Column("pulse_questions", JSONB, nullable=False),
    Column("at_risk_threshold", Float, nullable=False),
    Column("reminder_lead_hours", Integer, nullable=False),
    Column("missed_grace_days", Integer, nullable=False),
    Column("pulse_window_days", Integer, nullable=False),
    Column("status", Text, nullable=False),
    _version(),
    *_timestamps(),
    CheckConstraint("ends_on > starts_on", name="ends_after_start"),
    Index("ix_programs_tenant", "tenant_id"),
)

# Personal columns are nullable because erasure scrubs them and keeps only the ids other rows refer to.
participants = Table(
    "participants",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", Text),
    Column("display_name", Text),
    Column("email", Text),
    Column("campus_id", UUID(as_uuid=True), ForeignKey("campuses.id", ondelete="SET NULL")),
    Column("department", Text),
    Column("team", Text),
    Column("manager_person_id", UUID(as_uuid=True)),
    Column("reporting_line_id", Text),
    Column("role_level", Integer),
    Column("tenure_start", Date),
    Column("time_zone", Text),
    Column("languages", JSONB),
    Column("interests", JSONB),
    Column("skills", JSONB),
    Column("goals", JSONB),
    Column("desired_outcomes", JSONB),
    Column("working_style", JSONB),
    Column("consent", JSONB),
    Column("affinity_attributes", JSONB),
    Column("blocked_person_ids", JSONB),
    Column("availability", JSONB),
    Column("needs", JSONB),
    Column("offers", JSONB),
    Column("erased_at", DateTime(timezone=True)),
    _version(),
    *_timestamps(),
    # Email and external id identify a person within one organisation (NULLs, e.g. after erasure, never clash).
    UniqueConstraint("tenant_id", "email", name="uq_participants_tenant_email"),
    UniqueConstraint("tenant_id", "external_id", name="uq_participants_tenant_external_id"),
    CheckConstraint("erased_at IS NOT NULL OR (email IS NOT NULL AND display_name IS NOT NULL)", name="identified"),
)

enrolments = Table(
    "enrolments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
    Column("program_id", UUID(as_uuid=True), ForeignKey("programs.id", ondelete="CASCADE"), nullable=False),
    Column("person_id", UUID(as_uuid=True), ForeignKey("participants.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("cohort", Text),
    _version(),
    *_timestamps(),
    UniqueConstraint("program_id", "person_id", name="uq_enrolments_program_person"),
    Index("ix_enrolments_person", "person_id"),
    CheckConstraint("capacity BETWEEN 0 AND 20", name="capacity_bounds"),
)

import_jobs = Table(
    "import_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
    Column("program_id", UUID(as_uuid=True), ForeignKey("programs.id", ondelete="CASCADE"), nullable=False),
    Column("status", Text, nullable=False),
    Column("rows_processed", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_imported", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_unchanged", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_failed", BigInteger, nullable=False, server_default=text("0")),
    Column("errors_truncated", Boolean, nullable=False, server_default=text("false")),
    Column("failure", Text),
    Column("finished_at", DateTime(timezone=True)),
    _version(),
    *_timestamps(),
    # Coordinators' rows that enrolled a person of another program and left their stored profile (added by 0004).
    Column("rows_profile_kept", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_import_jobs_program", "program_id"),
)

import_errors = Table(
    "import_errors",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("row_number", BigInteger, nullable=False),
    Column("column_name", Text),
    Column("message", Text, nullable=False),
    Column("version", BigInteger, nullable=False, server_default=text("1")),
)
