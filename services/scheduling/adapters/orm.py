"""The scheduling database: projection of other services' facts, check-ins, meetings, reminders, calendar feeds.

SQLAlchemy Core tables on the service's own metadata (plus the shared outbox/inbox). Rows of a person, program
or match carry the tenant id, and every query filters on it.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
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
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("cadence_days", Integer, nullable=False),
    Column("first_meeting_within_days", Integer, nullable=False),
    Column("midpoint_review", Boolean, nullable=False),
    Column("closing_conversation", Boolean, nullable=False),
    Column("closing_days_before_end", Integer, nullable=False),
    Column("reminder_lead_hours", Integer, nullable=False),
    Column("missed_grace_days", Integer, nullable=False),
    Column("status", Text, nullable=False),
)

people = Table(
    "people",
    metadata,
    Column("person_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    # Null once erased: the person's time zone and availability are personal data.
    Column("time_zone", Text, nullable=True),
    # When this service last saw time_zone change (the person's calendars change with it: their Last-Modified).
    Column("time_zone_changed_at", DateTime(timezone=True), nullable=True),
    Column("availability", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("erased", Boolean, nullable=False, server_default=text("false")),
)

matches = Table(
    "matches",
    metadata,
    Column("match_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_person_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_person_id", UUID(as_uuid=True), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    # False until the program is known: MatchAccepted may overtake ProgramUpdated (different topics).
    Column("planned", Boolean, nullable=False, server_default=text("false")),
    Index("ix_matches_program", "tenant_id", "program_id"),
    Index("ix_matches_mentee", "mentee_person_id"),
    Index("ix_matches_mentor", "mentor_person_id"),
)

check_ins = Table(
    "check_ins",
    metadata,
    Column("check_in_id", UUID(as_uuid=True), primary_key=True),
    # The occurrence key is the "at most once" anchor: one row per planned occurrence, forever.
    Column("occurrence_key", Text, nullable=False, unique=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), ForeignKey("matches.match_id"), nullable=False),
    # Denormalised from the match so the sweeper builds CheckInDue from this row alone.
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_person_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_person_id", UUID(as_uuid=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("phase", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("state", Text, nullable=False),
    Column("deferred_until", DateTime(timezone=True), nullable=True),
    Column("remind_at", DateTime(timezone=True), nullable=False),
    Column("missed_after", DateTime(timezone=True), nullable=False),
    Column("became_due_at", DateTime(timezone=True), nullable=True),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Index("ix_check_ins_match", "match_id", "due_at"),
    Index("ix_check_ins_program", "tenant_id", "program_id", "due_at"),
    # Partial indexes keep each sweep query to the rows it can act on, however much history accumulates.
    Index("ix_check_ins_scheduled_due", "due_at", postgresql_where=text("state = 'scheduled'")),
    Index("ix_check_ins_scheduled_remind", "remind_at", postgresql_where=text("state = 'scheduled'")),
    Index("ix_check_ins_due_missed_after", "missed_after", postgresql_where=text("state = 'due'")),
)

reminders = Table(
    "reminders",
    metadata,
    # One reminder per check-in: the primary key makes a second one impossible.
    Column("check_in_id", UUID(as_uuid=True), ForeignKey("check_ins.check_in_id"), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_person_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_person_id", UUID(as_uuid=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("remind_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_reminders_match", "match_id"),
)

_OPEN_MEETING = text("state IN ('proposed', 'accepted')")

meetings = Table(
    "meetings",
    metadata,
    Column("meeting_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), nullable=False),
    Column("match_id", UUID(as_uuid=True), ForeignKey("matches.match_id"), nullable=False),
    Column("program_id", UUID(as_uuid=True), nullable=False),
    Column("mentee_person_id", UUID(as_uuid=True), nullable=False),
    Column("mentor_person_id", UUID(as_uuid=True), nullable=False),
    Column("proposed_by", UUID(as_uuid=True), nullable=False),
    Column("last_changed_by", UUID(as_uuid=True), nullable=True),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("format", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("sequence", Integer, nullable=False),
    # Counts every change (sequence counts only the ones calendars must see): the meeting's ETag.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("check_in_id", UUID(as_uuid=True), ForeignKey("check_ins.check_in_id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_meetings_match", "match_id", "starts_at"),
    Index("ix_meetings_mentee", "mentee_person_id"),
    Index("ix_meetings_mentor", "mentor_person_id"),
    # Open meetings only: a program's, for the coordinator's list of double bookings, and each person's, so an
    # overlap probe (booking, slots, overlaps_with) reads a person's open meetings, not their whole history.
    Index("ix_meetings_program_open", "tenant_id", "program_id", "starts_at", postgresql_where=_OPEN_MEETING),
    Index("ix_meetings_mentee_open", "mentee_person_id", "starts_at", postgresql_where=_OPEN_MEETING),
    Index("ix_meetings_mentor_open", "mentor_person_id", "starts_at", postgresql_where=_OPEN_MEETING),
)

calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("person_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", UUID(as_uuid=True), primary_key=True),  # the same person id in another tenant: its own feed
    # SHA-256 of the feed token: a 256-bit random token needs no slow hash, and a leaked table reveals no URL.
    Column("token_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("token_hash", name="uq_calendar_feeds_token_hash"),
)
