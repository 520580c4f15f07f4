"""Tables of the feedback service: the projection of other services' events and the service's own records.

Core tables rather than mapped classes: the domain is pure pydantic/dataclasses and the repository converts
rows to it explicitly, so a mapping layer would only add a second model of the same thing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.db import new_metadata
from shared.messaging.tables import messaging_tables

metadata = new_metadata()
OUTBOX, INBOX = messaging_tables(metadata)

UNKNOWN_LABEL = "unknown"  # campus or cohort not (yet) known from the profiles service

programs = Table(
    "programs",
    metadata,
    Column("program_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("min_group_size", SmallInteger, nullable=False),
    Column("at_risk_threshold", Float, nullable=False),
    Column("pulse_window_days", SmallInteger, nullable=False),
    Column("pulse_questions", JSONB, nullable=False),  # the contract's PulseQuestion list; [] = defaults
    # Milestone "first meeting within N days of the match" (the contract's default until ProgramUpdated says more).
    Column("first_meeting_within_days", SmallInteger, nullable=False, server_default=text("14")),
)

people = Table(
    "people",
    metadata,
    Column("person_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("campus", Text, nullable=True),
    # Unused since erasure deletes the person's row (their tombstone is in `erasures`); kept for older rows' schema.
    Column("erased", Boolean, nullable=False, server_default=text("false")),
)

# One row per erased person: keyed by a one-way digest of their id (domain.privacy.erasure_key), never the id, so
# the person id cannot be read out of it, yet a late or replayed event naming the person is recognised and projects
# nothing personal. It does hold replaced_by: whoever knows the person id finds the id their kept scores stand under.
erasures = Table(
    "erasures",
    metadata,
    Column("person_key", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),  # ProfileErased's: newer than any snapshot of the person
    # The random id that stands for the person in every row the erasure kept, so that a match of theirs first seen
    # after the erasure stands under it too (the reports count one person). Null in tombstones written before
    # revision 0008 until a late match of the person needs one.
    Column("replaced_by", UUID(as_uuid=True), nullable=True),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("enrollment_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("person_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("cohort", Text, nullable=True),
    Index("ix_enrollments_person_program", "person_id", "program_id"),
)

matches = Table(
    "matches",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_id", UUID(as_uuid=True), nullable=False),
    # Report dimensions, copied from the profile/enrolment projection so a report needs no joins.
    Column("mentor_campus", Text, nullable=False, server_default=UNKNOWN_LABEL),
    Column("mentee_campus", Text, nullable=False, server_default=UNKNOWN_LABEL),
    Column("cohort", Text, nullable=False, server_default=UNKNOWN_LABEL),
    Column("started_on", Date, nullable=False),
    Column("planned_end_on", Date, nullable=True),  # the program's end; NULL while the program is unknown
    Column("ended_on", Date, nullable=True),
    Column("health_score", Float, nullable=False, server_default=text("1.0")),
    Column("health_reasons", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("at_risk", Boolean, nullable=False, server_default=text("false")),
    Column("at_risk_since", DateTime(timezone=True), nullable=True),
    # From MatchAccepted; NULL while only other events named the match (its start is then not known precisely).
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("first_meeting_on", Date, nullable=True),  # earliest held meeting; NULL: none held yet
    Index("ix_matches_program", "tenant_id", "program_id"),
    Index("ix_matches_mentor", "mentor_id"),
    Index("ix_matches_mentee", "mentee_id"),
    Index("ix_matches_at_risk", "tenant_id", "program_id", postgresql_where=text("at_risk")),
    # The health sweeper's candidates: active matches that have not met yet.
    Index(
        "ix_matches_awaiting_first_meeting",
        "activated_at",
        postgresql_where=text("ended_on IS NULL AND first_meeting_on IS NULL AND activated_at IS NOT NULL"),
    ),
)

check_ins = Table(
    "check_ins",
    metadata,
    Column("check_in_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("missed", Boolean, nullable=False, server_default=text("false")),
    # Completed: a held meeting names it, or a party answered its pulse (the conversation happened).
    Column("completed", Boolean, nullable=False, server_default=text("false")),
    Index("ix_check_ins_match", "match_id", "due_at"),
)

meetings = Table(
    "meetings",
    metadata,
    Column("meeting_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), nullable=False),
    Column("held_on", Date, nullable=True),  # NULL when marked missed
    Column("sequence", Integer, nullable=False),
    Index("ix_meetings_match", "match_id", "held_on"),
)

pulses = Table(
    "pulses",
    metadata,
    Column("pulse_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), nullable=False),
    Column("check_in_id", UUID(as_uuid=True), nullable=False),
    Column("respondent_id", UUID(as_uuid=True), nullable=False),
    Column("role", SmallInteger, nullable=False),  # 0 mentor, 1 mentee (reports.MENTOR / MENTEE)
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closes_at", DateTime(timezone=True), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("scores", JSONB(none_as_null=True), nullable=True),
    Column("notes", JSONB(none_as_null=True), nullable=True),  # private free text: never leaves the service
    Column("concern_flagged", Boolean, nullable=False, server_default=text("false")),
    # A flagged concern keeps the match at risk until a coordinator resolves it (who and when, for the record).
    Column("concern_resolved_at", DateTime(timezone=True), nullable=True),
    Column("concern_resolved_by", Text, nullable=True),  # the coordinator's token subject
    Column("usefulness", SmallInteger, nullable=True),  # copied out of scores for the report's GROUP BY
    Index("ix_pulses_match", "match_id", "opened_at"),
    Index(
        "ix_pulses_open_concerns",
        "match_id",
        postgresql_where=text("concern_flagged AND concern_resolved_at IS NULL"),
    ),
    Index("ix_pulses_respondent", "respondent_id", "opened_at"),
    # One pulse per check-in and side: what keeps a redelivered CheckInDue from opening more (pulse ids are random).
    Index("uq_pulses_check_in_role", "tenant_id", "check_in_id", "role", unique=True),
)

# Running usefulness totals per participation, kept in the transaction that stores each answered pulse: a
# program report then reads one row per participation instead of scanning every pulse (1M at 50k matches).
pulse_totals = Table(
    "pulse_totals",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("role", SmallInteger, primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("usefulness_sum", BigInteger, nullable=False),
    Column("usefulness_count", Integer, nullable=False),
)

surveys = Table(
    "surveys",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("respondent_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("role", SmallInteger, nullable=False),
    Column("before_score", Float, nullable=True),
    Column("after_score", Float, nullable=True),
    # The answers behind each score ({question key: 1-5}), so the respondent can read them back; NULL for surveys
    # answered before they were kept, and once the respondent is erased (the reports need only the scores).
    Column("before_answers", JSONB(none_as_null=True), nullable=True),
    Column("after_answers", JSONB(none_as_null=True), nullable=True),
)

agreements = Table(
    "agreements",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("document", JSONB, nullable=False),  # the domain's ExpectationsAgreement, serialised
    Column("version", Integer, nullable=False),
)
