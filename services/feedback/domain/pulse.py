"""Check-in pulses: a short questionnaire per party per due check-in, open for a window, then closed.

Questions are program-configurable; answers are validated against them. The only thing that leaves the service
about a pulse is :func:`scores_only_payload`: numbers and yes/no, never free text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

QuestionKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Answer = int | bool | str
Score = int | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuestionKind(StrEnum):
    SCALE = "scale"  # integer between scale_min and scale_max
    YES_NO = "yes_no"
    TEXT = "text"  # private free text: never leaves the service, never seen by the partner


class PulseQuestion(_Frozen):
    key: QuestionKey
    prompt: str = Field(min_length=1, max_length=300)
    kind: QuestionKind
    required: bool = True
    scale_min: int = 1
    scale_max: int = 5
    max_length: int = Field(default=2000, ge=1, le=10_000)

    @model_validator(mode="after")
    def _scale_bounds_are_ordered(self) -> Self:
        if self.kind is QuestionKind.SCALE and self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be below scale_max")
        return self


USEFULNESS = "usefulness"
TRUST = "trust"
MEETING_HAPPENED = "meeting_happened"
GOAL_PROGRESS = "goal_progress"
PRIVATE_NOTE = "private_note"

DEFAULT_QUESTIONS: tuple[PulseQuestion, ...] = (
    PulseQuestion(key=USEFULNESS, prompt="How useful was this period of mentoring?", kind=QuestionKind.SCALE),
    PulseQuestion(key=TRUST, prompt="How safe do you feel to be candid with your partner?", kind=QuestionKind.SCALE),
    PulseQuestion(key=MEETING_HAPPENED, prompt="Did the planned meeting happen?", kind=QuestionKind.YES_NO),
    PulseQuestion(key=GOAL_PROGRESS, prompt="How much progress on your goals?", kind=QuestionKind.SCALE),
    PulseQuestion(
        key=PRIVATE_NOTE,
        prompt="Private note (your partner never sees it)",
        kind=QuestionKind.TEXT,
        required=False,
    ),
)


class PulseConfig(_Frozen):
    """A program's pulse settings."""

    questions: tuple[PulseQuestion, ...] = Field(default=DEFAULT_QUESTIONS, min_length=1, max_length=20)
    window: timedelta = Field(default=timedelta(days=7), description="How long a pulse stays open after the due time.")

    @model_validator(mode="after")
    def _keys_are_unique_and_window_positive(self) -> Self:
        keys = [question.key for question in self.questions]
        if len(set(keys)) != len(keys):
            raise ValueError("question keys must be unique")
        if self.window <= timedelta(0):
            raise ValueError("the window must be positive")
        return self


class PulseStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"
    CLOSED = "closed"  # the window passed without an answer


class Pulse(_Frozen):
    pulse_id: UUID
    program_id: UUID
    match_id: UUID
    check_in_id: UUID
    respondent_id: UUID
    opened_at: datetime
    closes_at: datetime
    answers: dict[str, Answer] | None = None
    submitted_at: datetime | None = None
    concern_flagged: bool = False  # lets the coordinator read the note; set only by the respondent

    def status(self, now: datetime) -> PulseStatus:
        if self.submitted_at is not None:
            return PulseStatus.SUBMITTED
        return PulseStatus.OPEN if now < self.closes_at else PulseStatus.CLOSED


def open_pulses(
    *,
    program_id: UUID,
    match_id: UUID,
    check_in_id: UUID,
    due_at: datetime,
    party_ids: tuple[UUID, UUID],
    config: PulseConfig,
) -> tuple[Pulse, Pulse]:
    """One pulse per party for a CheckInDue.

    Ids are random: one derived from (check-in id, person id) led anyone knowing both to the person's answers after
    an erasure. A redelivered event opens nothing new because the store keeps one pulse per check-in and side.
    """
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    first, second = (
        Pulse(
            pulse_id=uuid4(),
            program_id=program_id,
            match_id=match_id,
            check_in_id=check_in_id,
            respondent_id=party_id,
            opened_at=due_at,
            closes_at=due_at + config.window,
        )
        for party_id in party_ids
    )
    return first, second


class PulseError(Exception):
    """The pulse cannot take this submission."""


class PulseValidationError(PulseError):
    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in sorted(problems.items())))
        self.problems = dict(problems)


def validate_answers(questions: tuple[PulseQuestion, ...], raw: Mapping[str, object]) -> dict[str, Answer]:
    """Check raw answers (e.g. a request body) against the program's questions; report every problem at once.

    Hand-written instead of a generated pydantic model because questions change per program at run time and
    the strictness wanted (a bool is not a scale value, an int is not a yes/no) is simpler to state directly.
    """
    by_key = {question.key: question for question in questions}
    problems: dict[str, str] = {key: "unknown question" for key in raw if key not in by_key}
    answers: dict[str, Answer] = {}
    for key, question in by_key.items():
        value = raw.get(key)
        if value is None or (question.kind is QuestionKind.TEXT and isinstance(value, str) and not value.strip()):
            if question.required:
                problems[key] = "an answer is required"
            continue
        problem = _problem_with(question, value)
        if problem is not None:
            problems[key] = problem
            continue
        assert isinstance(value, int | str)
        answers[key] = value.strip() if isinstance(value, str) else value
    if problems:
        raise PulseValidationError(problems)
    return answers


def _problem_with(question: PulseQuestion, value: object) -> str | None:
    match question.kind:
        case QuestionKind.SCALE:
            if isinstance(value, bool) or not isinstance(value, int):
                return "must be a whole number"
            if not question.scale_min <= value <= question.scale_max:
                return f"must be between {question.scale_min} and {question.scale_max}"
        case QuestionKind.YES_NO:
            if not isinstance(value, bool):
                return "must be true or false"
        case QuestionKind.TEXT:
            if not isinstance(value, str):
                return "must be text"
            if len(value.strip()) > question.max_length:
                return f"must be at most {question.max_length} characters"
    return None


def submit_pulse(
    pulse: Pulse,
    raw_answers: Mapping[str, object],
    *,
    config: PulseConfig,
    now: datetime,
    concern_flagged: bool = False,
) -> Pulse:
    status = pulse.status(now)
    if status is PulseStatus.SUBMITTED:
        raise PulseError("this pulse has already been answered")
    if status is PulseStatus.CLOSED:
        raise PulseError("this pulse has closed")
    answers = validate_answers(config.questions, raw_answers)
    return pulse.model_copy(update={"answers": answers, "submitted_at": now, "concern_flagged": concern_flagged})


class FeedbackScores(_Frozen):
    """Data of the FeedbackSubmitted event: scores only. Text answers are left out by construction."""

    pulse_id: UUID
    program_id: UUID
    match_id: UUID
    check_in_id: UUID
    respondent_id: UUID
    submitted_at: datetime
    scores: dict[str, Score]


def scores_only_payload(pulse: Pulse, questions: tuple[PulseQuestion, ...]) -> FeedbackScores:
    if pulse.answers is None or pulse.submitted_at is None:
        raise PulseError("the pulse has not been answered")
    scored_keys = {question.key for question in questions if question.kind is not QuestionKind.TEXT}
    scores: dict[str, Score] = {}
    for key, value in pulse.answers.items():
        # Both checks: the question's kind says "not text", and the value itself must not be a string either
        # (defends against a question whose kind was changed after answers were stored).
        if key in scored_keys and not isinstance(value, str):
            scores[key] = value
    return FeedbackScores(
        pulse_id=pulse.pulse_id,
        program_id=pulse.program_id,
        match_id=pulse.match_id,
        check_in_id=pulse.check_in_id,
        respondent_id=pulse.respondent_id,
        submitted_at=pulse.submitted_at,
        scores=scores,
    )
