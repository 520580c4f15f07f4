"""Which event type lives on which topic, under which CloudEvents type, keyed by which id.

Topics are owned by one service each and carry a version; keys are aggregate ids so that one aggregate's events
stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from shared.events.models import (
    CheckInDue,
    CheckInMissed,
    CheckInReminderDue,
    EnrollmentChanged,
    EventData,
    FeedbackSubmitted,
    MatchAccepted,
    MatchAtRisk,
    MatchDeclined,
    MatchEnded,
    MatchProposed,
    MatchRoundCompleted,
    MeetingCancelled,
    MeetingCompleted,
    MeetingScheduled,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.ids import id_text

PROFILES_TOPIC: Final = "mentorloom.profiles.v1"
MATCHING_TOPIC: Final = "mentorloom.matching.v1"
SCHEDULING_TOPIC: Final = "mentorloom.scheduling.v1"
FEEDBACK_TOPIC: Final = "mentorloom.feedback.v1"
TOPICS: Final = (PROFILES_TOPIC, MATCHING_TOPIC, SCHEDULING_TOPIC, FEEDBACK_TOPIC)

DEAD_LETTER_SUFFIX: Final = ".dlq"
CE_TYPE_PREFIX: Final = "org.mentorloom."


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``mentorloom.profiles.v1`` → ``mentorloom.profiles.v1.dlq``."""
    if topic.endswith(DEAD_LETTER_SUFFIX):
        raise ValueError(f"{topic!r} is already a dead-letter topic")
    return topic + DEAD_LETTER_SUFFIX


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything the wire needs to know about one event type."""

    model: type[EventData]
    ce_type: str
    topic: str
    producer: str  # owning service; also the ce_source path
    key_field: str  # aggregate id used as Kafka key: decides ordering
    subject_field: str  # id put in ce_subject: the thing the event is about
    meaning: str

    @property
    def name(self) -> str:
        return self.model.__name__

    @property
    def source(self) -> str:
        return f"/mentorloom/{self.producer}"

    def key_of(self, data: EventData) -> bytes:
        value: UUID = getattr(data, self.key_field)
        return str(value).encode()

    def subject_of(self, data: EventData) -> str:
        return id_text(getattr(data, self.subject_field))


def _spec(
    model: type[EventData], ce_name: str, topic: str, key_field: str, subject_field: str, meaning: str
) -> EventSpec:
    producer = topic.split(".")[1]
    return EventSpec(model, f"{CE_TYPE_PREFIX}{ce_name}.v1", topic, producer, key_field, subject_field, meaning)


_SPECS: Final = (
    _spec(ProfileUpdated, "profile.updated", PROFILES_TOPIC, "person_id", "person_id",
          "A participant's profile was created or changed (full snapshot)."),
    _spec(ProfileErased, "profile.erased", PROFILES_TOPIC, "person_id", "person_id",
          "A person was erased: drop all their personal data."),
    _spec(ProgramUpdated, "program.updated", PROFILES_TOPIC, "program_id", "program_id",
          "A program was created or its configuration changed (full snapshot)."),
    # Keyed by person, not enrolment, so a person's enrolments, profile updates and erasure share one partition
    # and arrive in order (an erasure is never overtaken by an older enrolment).
    _spec(EnrollmentChanged, "enrollment.changed", PROFILES_TOPIC, "person_id", "enrollment_id",
          "An enrolment was created or changed: role, capacity, status (full snapshot)."),
    _spec(MatchProposed, "match.proposed", MATCHING_TOPIC, "match_id", "match_id",
          "A mentor was proposed to a mentee, with score and explanation."),
    _spec(MatchAccepted, "match.accepted", MATCHING_TOPIC, "match_id", "match_id",
          "Both parties consented: the match is active."),
    _spec(MatchDeclined, "match.declined", MATCHING_TOPIC, "match_id", "match_id",
          "A proposal was declined, withdrawn or expired."),
    _spec(MatchEnded, "match.ended", MATCHING_TOPIC, "match_id", "match_id",
          "An active match ended (reason category only)."),
    # Keyed by program so successive rounds of one program stay ordered.
    _spec(MatchRoundCompleted, "match-round.completed", MATCHING_TOPIC, "program_id", "round_id",
          "A cohort round finished: its quality report."),
    _spec(MeetingScheduled, "meeting.scheduled", SCHEDULING_TOPIC, "match_id", "meeting_id",
          "A meeting was scheduled or rescheduled."),
    _spec(MeetingCancelled, "meeting.cancelled", SCHEDULING_TOPIC, "match_id", "meeting_id",
          "A meeting was cancelled."),
    _spec(MeetingCompleted, "meeting.completed", SCHEDULING_TOPIC, "match_id", "meeting_id",
          "A meeting was marked held or missed."),
    _spec(CheckInReminderDue, "check-in.reminder-due", SCHEDULING_TOPIC, "match_id", "check_in_id",
          "A planned check-in comes due soon: remind its participants (once per check-in)."),
    _spec(CheckInDue, "check-in.due", SCHEDULING_TOPIC, "match_id", "check_in_id",
          "A planned check-in came due (once per occurrence)."),
    _spec(CheckInMissed, "check-in.missed", SCHEDULING_TOPIC, "match_id", "check_in_id",
          "A check-in passed its grace period without completion."),
    _spec(FeedbackSubmitted, "feedback.submitted", FEEDBACK_TOPIC, "match_id", "feedback_id",
          "A participant answered a pulse or survey (scores only)."),
    _spec(MatchAtRisk, "match.at-risk", FEEDBACK_TOPIC, "match_id", "match_id",
          "A match entered (at_risk true) or left (false) the at-risk state."),
)  # fmt: skip

#: ce_type → spec: the lookup the decoder does for every message.
BY_TYPE: Final[dict[str, EventSpec]] = {spec.ce_type: spec for spec in _SPECS}
#: model class → spec: the lookup the encoder does.
BY_MODEL: Final[dict[type[EventData], EventSpec]] = {spec.model: spec for spec in _SPECS}
ALL_SPECS: Final[tuple[EventSpec, ...]] = _SPECS


def spec_for(event: EventData | type[EventData] | str) -> EventSpec:
    """The spec of an event instance, model class or ce_type; ``KeyError`` when it is not in the catalogue."""
    if isinstance(event, str):
        return BY_TYPE[event]
    model = event if isinstance(event, type) else type(event)
    return BY_MODEL[model]


def topics_consumed_by(*models: type[EventData]) -> tuple[str, ...]:
    """The topics a consumer of these event types subscribes to, in catalogue order."""
    wanted = {BY_MODEL[model].topic for model in models}
    return tuple(topic for topic in TOPICS if topic in wanted)
