from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from services.feedback.domain.pulse import (
    DEFAULT_QUESTIONS,
    Pulse,
    PulseConfig,
    PulseError,
    PulseQuestion,
    PulseStatus,
    PulseValidationError,
    QuestionKind,
    open_pulses,
    scores_only_payload,
    submit_pulse,
    validate_answers,
)

PROGRAM = UUID(int=10)
MATCH = UUID(int=20)
CHECK_IN = UUID(int=30)
MENTOR = UUID(int=1)
MENTEE = UUID(int=2)
DUE = datetime(2025, 10, 1, 9, tzinfo=UTC)
CONFIG = PulseConfig(window=timedelta(days=5))
SECRET_NOTE = "my partner keeps cancelling and I feel awkward"


def opened() -> tuple[Pulse, Pulse]:
    return open_pulses(
        program_id=PROGRAM, match_id=MATCH, check_in_id=CHECK_IN, due_at=DUE, party_ids=(MENTOR, MENTEE), config=CONFIG
    )


def good_answers() -> dict[str, object]:
    return {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 3, "private_note": SECRET_NOTE}


def test_a_check_in_due_opens_one_pulse_per_party_that_closes_after_the_window() -> None:
    mentor_pulse, mentee_pulse = opened()

    assert (mentor_pulse.respondent_id, mentee_pulse.respondent_id) == (MENTOR, MENTEE)
    assert mentor_pulse.pulse_id != mentee_pulse.pulse_id
    assert mentor_pulse.closes_at == DUE + timedelta(days=5)
    assert mentor_pulse.status(DUE + timedelta(days=4)) is PulseStatus.OPEN
    assert mentor_pulse.status(DUE + timedelta(days=5)) is PulseStatus.CLOSED


def test_a_pulse_id_is_not_derived_from_the_check_in_and_the_person() -> None:
    # Derived ids would lead back to an erased person; a redelivery is stopped by the store (one pulse per side).
    assert {pulse.pulse_id for pulse in opened()}.isdisjoint(pulse.pulse_id for pulse in opened())


def test_valid_answers_are_accepted_and_the_optional_note_may_be_left_out() -> None:
    answers = good_answers()
    del answers["private_note"]
    assert validate_answers(DEFAULT_QUESTIONS, answers) == answers


def test_every_invalid_answer_is_reported_at_once() -> None:
    with pytest.raises(PulseValidationError) as caught:
        validate_answers(
            DEFAULT_QUESTIONS,
            {
                "usefulness": 6,
                "trust": True,  # a bool is not a scale value
                "meeting_happened": 1,  # nor is an int a yes/no
                "private_note": "x" * 2001,
                "mood": 3,
            },
        )
    assert set(caught.value.problems) == {
        "usefulness",
        "trust",
        "meeting_happened",
        "goal_progress",  # required, missing
        "private_note",
        "mood",  # not a question of this program
    }


def test_program_specific_questions_are_validated_against_their_own_bounds() -> None:
    questions = (PulseQuestion(key="energy", prompt="Energy after the meeting", kind=QuestionKind.SCALE, scale_max=10),)
    assert validate_answers(questions, {"energy": 9}) == {"energy": 9}
    with pytest.raises(PulseValidationError):
        validate_answers(questions, {"energy": 11})


def test_a_pulse_cannot_be_answered_twice_or_after_it_closed() -> None:
    mentor_pulse, mentee_pulse = opened()
    answered = submit_pulse(mentor_pulse, good_answers(), config=CONFIG, now=DUE + timedelta(days=1))
    assert answered.status(DUE + timedelta(days=1)) is PulseStatus.SUBMITTED
    with pytest.raises(PulseError):
        submit_pulse(answered, good_answers(), config=CONFIG, now=DUE + timedelta(days=2))
    with pytest.raises(PulseError):
        submit_pulse(mentee_pulse, good_answers(), config=CONFIG, now=DUE + timedelta(days=6))


def test_the_feedback_submitted_payload_carries_scores_and_never_text() -> None:
    mentor_pulse, _ = opened()
    answered = submit_pulse(mentor_pulse, good_answers(), config=CONFIG, now=DUE + timedelta(hours=3))

    payload = scores_only_payload(answered, CONFIG.questions)

    assert payload.scores == {"usefulness": 4, "trust": 5, "meeting_happened": True, "goal_progress": 3}
    assert all(not isinstance(value, str) for value in payload.scores.values())
    assert SECRET_NOTE not in payload.model_dump_json()


def test_no_payload_exists_for_an_unanswered_pulse() -> None:
    with pytest.raises(PulseError):
        scores_only_payload(opened()[0], CONFIG.questions)


def test_a_config_with_duplicate_question_keys_is_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        PulseConfig(questions=(DEFAULT_QUESTIONS[0], DEFAULT_QUESTIONS[0]))
