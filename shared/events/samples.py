"""Realistic, deterministic sample events for tests (contract tests, service tests, benchmarks).

Every factory takes keyword overrides for any field and validates the result, so a test states only what it cares
about::

    profile = samples.profile_updated(person_id=alice, blocked_person_ids=(bob,))
    envelope = samples.envelope(samples.match_ended(reason_category="no_time"))

Ids are derived from names (uuid5) so the same sample is the same in every run; ``sample_id("person:alice")``
gives the id the samples use for Alice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, TypeVar
from uuid import UUID, uuid5

from shared.events.envelope import EventEnvelope
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
from shared.events.values import FactorWeights, FunctionCatalogueEntry, MatchFactor, MentorshipDomain, PulseQuestion

_NAMESPACE: Final = UUID("7d5bb0f1-3a56-4e8e-9c35-0d6c1b8f2a10")
EventT = TypeVar("EventT", bound=EventData)


def sample_id(name: str) -> UUID:
    """A stable id for a named sample thing, e.g. ``sample_id("person:alice")``."""
    return uuid5(_NAMESPACE, name)


TENANT_ID: Final = sample_id("tenant:northbridge-university")
OTHER_TENANT_ID: Final = sample_id("tenant:harbour-logistics")
CAMPUS_ID: Final = sample_id("campus:northbridge-main")
PROGRAM_ID: Final = sample_id("program:phd-peer-mentoring-2025")
MENTEE_ID: Final = sample_id("person:amara-okafor")
MENTOR_ID: Final = sample_id("person:lukas-berger")
MATCH_ID: Final = sample_id("match:amara-lukas")
ROUND_ID: Final = sample_id("round:2025-fall-1")
CHECK_IN_ID: Final = sample_id("check-in:amara-lukas:1")
MEETING_ID: Final = sample_id("meeting:amara-lukas:1")
SAMPLE_TIME: Final = datetime(2025, 9, 15, 9, 30, tzinfo=UTC)
SAMPLE_TRACEPARENT: Final = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

SAMPLE_FUNCTION_CATALOGUE: Final = tuple(
    FunctionCatalogueEntry(key=key, label=label, domain=domain, is_psychosocial=psychosocial)
    for key, label, domain, psychosocial in (
        ("hidden_curriculum", "Navigating the program's hidden curriculum", MentorshipDomain.ACADEMIC, False),
        ("study_strategies", "Coursework and study strategies", MentorshipDomain.ACADEMIC, False),
        ("research_methods", "Research methods", MentorshipDomain.ACADEMIC, False),
        ("writing_publishing", "Writing and publishing", MentorshipDomain.ACADEMIC, False),
        ("conference_networking", "Conference networking", MentorshipDomain.PROFESSIONAL, False),
        ("career_exploration", "Career exploration", MentorshipDomain.PROFESSIONAL, False),
        ("job_search", "Job search", MentorshipDomain.PROFESSIONAL, False),
        ("work_life_balance", "Work-life balance", MentorshipDomain.PERSONAL, True),
        ("emotional_support", "Emotional support and venting", MentorshipDomain.PERSONAL, True),
        ("belonging_community", "Belonging and community", MentorshipDomain.PERSONAL, True),
        ("time_management", "Time management", MentorshipDomain.PERSONAL, True),
    )
)

SAMPLE_PULSE_QUESTIONS: Final = (
    PulseQuestion(key="usefulness", prompt="How useful was this check-in?", kind="rating_1_5"),
    PulseQuestion(key="trust", prompt="Do you feel safe to be candid?", kind="rating_1_5"),
    PulseQuestion(key="meeting_happened", prompt="Did you meet since the last check-in?", kind="yes_no"),
    PulseQuestion(key="goal_progress", prompt="How far along are your goals?", kind="percent"),
)


def _build(model: type[EventT], defaults: dict[str, Any], overrides: dict[str, Any]) -> EventT:
    unknown = set(overrides) - set(model.model_fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    return model.model_validate({**defaults, **overrides})


def profile_updated(**overrides: Any) -> ProfileUpdated:
    return _build(
        ProfileUpdated,
        {
            "tenant_id": TENANT_ID,
            "person_id": MENTEE_ID,
            "version": 3,
            "external_id": "SIS-2025-004211",
            "display_name": "Amara Okafor",
            "email": "amara.okafor@northbridge.example.edu",
            "campus_id": CAMPUS_ID,
            "department": "Chemical Engineering",
            "team": "Catalysis Lab",
            "manager_person_id": sample_id("person:prof-ines-alvarez"),
            "reporting_line_id": "chem-eng/catalysis",
            "role_level": 1,
            "tenure_start": date(2025, 9, 1),
            "time_zone": "Europe/London",
            "languages": ("en", "yo", "fr"),
            "interests": ("green chemistry", "bouldering", "science communication"),
            "skills": ("python", "spectroscopy"),
            "goals": {
                "tags": ("first paper", "qualifying exam"),
                "text": "Pass my qualifying exam and draft my first paper by summer.",
            },
            "desired_outcomes": {"tags": ("confidence", "lab network"), "text": "Feel at home in the department."},
            "working_style": {"communication": "video_call", "meeting_format": "either", "cadence": "biweekly"},
            "affinity_attributes": ("first_generation", "international_student"),
            "consent": {"affinity_matching": True, "share_email_with_partner": True},
            "blocked_person_ids": (sample_id("person:former-labmate"),),
            "availability": (
                {"weekday": "tuesday", "start": time(17, 0), "end": time(19, 0)},
                {"weekday": "thursday", "start": time(12, 0), "end": time(13, 30)},
                {"weekday": "saturday", "start": time(10, 0), "end": time(12, 0)},
            ),
            "needs": (
                {"function_key": "hidden_curriculum", "level": "critical"},
                {"function_key": "writing_publishing", "level": "critical"},
                {"function_key": "belonging_community", "level": "important"},
                {"function_key": "job_search", "level": "not_relevant"},
            ),
            "offers": ("study_strategies",),
        },
        overrides,
    )


def profile_erased(**overrides: Any) -> ProfileErased:
    return _build(
        ProfileErased,
        {"tenant_id": TENANT_ID, "person_id": MENTEE_ID, "version": 4, "erased_at": SAMPLE_TIME},
        overrides,
    )


def program_updated(**overrides: Any) -> ProgramUpdated:
    return _build(
        ProgramUpdated,
        {
            "tenant_id": TENANT_ID,
            "program_id": PROGRAM_ID,
            "version": 2,
            "name": "PhD Peer Mentoring 2025/26",
            "campus_ids": (CAMPUS_ID,),
            "goals": ("Help first-year PhD students settle in", "Raise first-year retention"),
            "starts_on": date(2025, 9, 1),
            "ends_on": date(2026, 6, 30),
            "check_in_cadence_days": 14,
            "milestones": {
                "first_meeting_within_days": 14,
                "midpoint_review": True,
                "closing_conversation": True,
                "closing_days_before_end": 10,
            },
            "matching_policy": {
                "weights": FactorWeights(needs_coverage=3, goals=2, availability=1.5, background_similarity=0.5),
                "hard_rules": {
                    "exclude_same_reporting_line": True,
                    "exclude_same_team": True,
                    "campus_rule": "same",
                    "seniority": {"min_level_gap": 1, "max_level_gap": 3},
                },
                "proposals_per_mentee": 4,
                "request_window_days": 7,
                "max_open_requests_per_mentee": 2,
                "allow_mentor_network": True,
                "max_mentors_per_mentee": 2,
                "objective": "max_matched_then_score",
            },
            "default_mentor_capacity": 2,
            "min_report_group_size": 5,
            "function_catalogue": SAMPLE_FUNCTION_CATALOGUE,
            "pulse_questions": SAMPLE_PULSE_QUESTIONS,
            "at_risk_threshold": 0.4,
            "reminder_lead_hours": 24,
            "missed_grace_days": 7,
            "pulse_window_days": 5,
            "status": "active",
        },
        overrides,
    )


def enrollment_changed(**overrides: Any) -> EnrollmentChanged:
    return _build(
        EnrollmentChanged,
        {
            "tenant_id": TENANT_ID,
            "enrollment_id": sample_id("enrollment:lukas:phd-2025"),
            "person_id": MENTOR_ID,
            "program_id": PROGRAM_ID,
            "version": 1,
            "role": "mentor",
            "capacity": 2,
            "status": "active",
            "cohort": "2025-fall",
        },
        overrides,
    )


def _pair() -> dict[str, Any]:
    return {
        "tenant_id": TENANT_ID,
        "match_id": MATCH_ID,
        "program_id": PROGRAM_ID,
        "mentee_person_id": MENTEE_ID,
        "mentor_person_id": MENTOR_ID,
    }


def match_proposed(**overrides: Any) -> MatchProposed:
    weights = {
        MatchFactor.NEEDS_COVERAGE: (0.75, 3.0),
        MatchFactor.INTERESTS: (0.33, 1.0),
        MatchFactor.GOALS: (0.6, 2.0),
        MatchFactor.SKILLS: (0.5, 1.0),
        MatchFactor.WORKING_STYLE: (1.0, 1.0),
        MatchFactor.AVAILABILITY: (0.5, 1.5),
        MatchFactor.BACKGROUND_SIMILARITY: (1.0, 0.5),
        MatchFactor.SENIORITY: (1.0, 1.0),
    }
    weight_sum = sum(weight for _, weight in weights.values())
    contributions = {factor: round(score * weight / weight_sum, 4) for factor, (score, weight) in weights.items()}
    breakdown = tuple(
        {"factor": factor, "score": score, "weight": weight, "contribution": contributions[factor]}
        for factor, (score, weight) in weights.items()
    )
    return _build(
        MatchProposed,
        {
            **_pair(),
            "score": round(sum(contributions.values()), 4),
            "breakdown": breakdown,
            "explanation": "Covers both of the mentee's critical needs (Navigating the program's hidden curriculum, "
            "Writing and publishing); 1 shared interest (green chemistry); 3 h/week of shared availability; "
            "the mentor is 1 level ahead",
            "origin": "cohort_round",
            "round_id": ROUND_ID,
            "expires_at": SAMPLE_TIME + timedelta(days=7),
        },
        overrides,
    )


def match_accepted(**overrides: Any) -> MatchAccepted:
    return _build(MatchAccepted, {**_pair(), "activated_at": SAMPLE_TIME, "origin": "cohort_round"}, overrides)


def match_declined(**overrides: Any) -> MatchDeclined:
    return _build(MatchDeclined, {**_pair(), "declined_by": "mentor", "reason": "declined"}, overrides)


def match_ended(**overrides: Any) -> MatchEnded:
    return _build(
        MatchEnded,
        {
            **_pair(),
            "ended_at": SAMPLE_TIME + timedelta(days=60),
            "ended_by": "mentee",
            "reason_category": "not_a_good_fit",
            "rematch_offered": True,
        },
        overrides,
    )


def match_round_completed(**overrides: Any) -> MatchRoundCompleted:
    return _build(
        MatchRoundCompleted,
        {
            "tenant_id": TENANT_ID,
            "round_id": ROUND_ID,
            "program_id": PROGRAM_ID,
            "objective": "max_matched_then_score",
            "mentee_count": 120,
            "mentor_count": 45,
            "capacity_total": 110,
            "proposal_count": 110,
            "unmatched_count": 10,
            "total_score": 78.3,
            "mean_score": 0.7118,
            "min_score": 0.41,
            "max_score": 0.93,
            "distribution": (
                {"lower": 0.4, "upper": 0.5, "count": 6},
                {"lower": 0.5, "upper": 0.6, "count": 14},
                {"lower": 0.6, "upper": 0.7, "count": 31},
                {"lower": 0.7, "upper": 0.8, "count": 36},
                {"lower": 0.8, "upper": 0.9, "count": 19},
                {"lower": 0.9, "upper": 1.0, "count": 4},
            ),
            "unmatched_reasons": (
                {"reason": "capacity_exhausted", "count": 7},
                {"reason": "campus_rule", "count": 3},
            ),
            "upper_bound": 78.3,
            "optimality_gap": 0.0,
            "proven_optimal": True,
            "solver": "ortools.min_cost_flow",
            "started_at": SAMPLE_TIME,
            "completed_at": SAMPLE_TIME + timedelta(seconds=2),
        },
        overrides,
    )


def _meeting() -> dict[str, Any]:
    starts_at = SAMPLE_TIME + timedelta(days=3, hours=7, minutes=30)  # Thursday 17:00 UTC
    return {
        "tenant_id": TENANT_ID,
        "meeting_id": MEETING_ID,
        "match_id": MATCH_ID,
        "program_id": PROGRAM_ID,
        "check_in_id": CHECK_IN_ID,
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(minutes=45),
        "organiser_person_id": MENTEE_ID,
        "sequence": 0,
    }


def meeting_scheduled(**overrides: Any) -> MeetingScheduled:
    return _build(MeetingScheduled, {**_meeting(), "format": "virtual"}, overrides)


def meeting_cancelled(**overrides: Any) -> MeetingCancelled:
    return _build(
        MeetingCancelled,
        {**_meeting(), "sequence": 1, "cancelled_by": "mentor", "reason": "cancelled_by_participant"},
        overrides,
    )


def meeting_completed(**overrides: Any) -> MeetingCompleted:
    return _build(MeetingCompleted, {**_meeting(), "outcome": "held", "marked_by": "mentee"}, overrides)


def _check_in() -> dict[str, Any]:
    return {
        "tenant_id": TENANT_ID,
        "check_in_id": CHECK_IN_ID,
        "match_id": MATCH_ID,
        "program_id": PROGRAM_ID,
        "mentee_person_id": MENTEE_ID,
        "mentor_person_id": MENTOR_ID,
        "occurrence_key": f"{MATCH_ID}:first_meeting:1",
        "due_at": SAMPLE_TIME + timedelta(days=14),
        "phase": "initiation",
        "kind": "first_meeting",
    }


def check_in_due(**overrides: Any) -> CheckInDue:
    return _build(CheckInDue, _check_in(), overrides)


def check_in_reminder_due(**overrides: Any) -> CheckInReminderDue:
    check_in = _check_in()
    return _build(CheckInReminderDue, {**check_in, "remind_at": check_in["due_at"] - timedelta(hours=24)}, overrides)


def check_in_missed(**overrides: Any) -> CheckInMissed:
    return _build(CheckInMissed, {**_check_in(), "missed_at": SAMPLE_TIME + timedelta(days=21)}, overrides)


def feedback_submitted(**overrides: Any) -> FeedbackSubmitted:
    return _build(
        FeedbackSubmitted,
        {
            "tenant_id": TENANT_ID,
            "feedback_id": sample_id("feedback:amara-lukas:1:mentee"),
            "match_id": MATCH_ID,
            "program_id": PROGRAM_ID,
            "check_in_id": CHECK_IN_ID,
            "kind": "pulse",
            "respondent_role": "mentee",
            "scores": {"usefulness": 4, "trust": 5, "meeting_happened": 1, "goal_progress": 20},
            "concern_flagged": False,
            "submitted_at": SAMPLE_TIME + timedelta(days=15),
        },
        overrides,
    )


def match_at_risk(**overrides: Any) -> MatchAtRisk:
    return _build(
        MatchAtRisk,
        {
            "tenant_id": TENANT_ID,
            "match_id": MATCH_ID,
            "program_id": PROGRAM_ID,
            "at_risk": True,
            "health_score": 0.32,
            "threshold": 0.4,
            "reasons": ("missed_check_ins", "partner_silent"),
            "evaluated_at": SAMPLE_TIME + timedelta(days=45),
        },
        overrides,
    )


#: Model class → factory; covers the whole catalogue (a contract test checks that).
FACTORIES: Final[dict[type[EventData], Callable[..., EventData]]] = {
    ProfileUpdated: profile_updated,
    ProfileErased: profile_erased,
    ProgramUpdated: program_updated,
    EnrollmentChanged: enrollment_changed,
    MatchProposed: match_proposed,
    MatchAccepted: match_accepted,
    MatchDeclined: match_declined,
    MatchEnded: match_ended,
    MatchRoundCompleted: match_round_completed,
    MeetingScheduled: meeting_scheduled,
    MeetingCancelled: meeting_cancelled,
    MeetingCompleted: meeting_completed,
    CheckInReminderDue: check_in_reminder_due,
    CheckInDue: check_in_due,
    CheckInMissed: check_in_missed,
    FeedbackSubmitted: feedback_submitted,
    MatchAtRisk: match_at_risk,
}


def sample(model: type[EventT], **overrides: Any) -> EventT:
    """A valid sample of ``model`` with the given fields replaced."""
    event = FACTORIES[model](**overrides)
    assert isinstance(event, model)
    return event


def envelope(data: EventT, **attributes: Any) -> EventEnvelope[EventT]:
    """Wrap ``data`` with deterministic id, time and trace context (override any of them by keyword)."""
    defaults: dict[str, Any] = {
        "id": sample_id(f"event:{type(data).__name__}:{data.model_dump_json()}"),
        "time": SAMPLE_TIME,
        "traceparent": SAMPLE_TRACEPARENT,
    }
    return EventEnvelope.wrap(data, **{**defaults, **attributes})


def all_samples() -> list[EventData]:
    """One sample of every event type, in catalogue order."""
    return [factory() for factory in FACTORIES.values()]
