from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.feedback.domain.health import (
    CheckInRecord,
    FirstMeeting,
    HealthAssessment,
    HealthPolicy,
    Reason,
    ReasonCode,
    RiskState,
    RiskTransition,
    assess_health,
    step_risk,
)

MENTOR = UUID(int=1)
MENTEE = UUID(int=2)
PARTIES = (MENTOR, MENTEE)
START = datetime(2025, 9, 1, tzinfo=UTC)
POLICY = HealthPolicy()


def rated(*values: int, missed: tuple[int, ...] = ()) -> list[CheckInRecord]:
    """One check-in per value, both parties answering every rating question with that value."""

    def scores(value: int) -> dict[str, int | bool]:
        return {"usefulness": value, "trust": value, "goal_progress": value}

    return [
        CheckInRecord(
            due_at=START + timedelta(weeks=2 * index),
            missed=index in missed,
            scores={} if index in missed else {MENTOR: scores(value), MENTEE: scores(value)},
        )
        for index, value in enumerate(values)
    ]


def silenced(check_ins: list[CheckInRecord], party: UUID, last: int) -> list[CheckInRecord]:
    """The same check-ins with ``party``'s pulses removed from the last ``last`` of them."""
    cut = len(check_ins) - last
    return [
        replace(record, scores={who: s for who, s in record.scores.items() if who != party}) if index >= cut else record
        for index, record in enumerate(check_ins)
    ]


def codes(assessment: HealthAssessment) -> set[ReasonCode]:
    return {reason.code for reason in assessment.reasons}


def test_a_match_with_good_ratings_and_no_misses_is_healthy_without_reasons() -> None:
    assessment = assess_health(rated(5, 5, 4, 5), PARTIES)
    assert assessment.score > 0.9
    assert assessment.reasons == ()


def test_a_new_match_without_check_ins_counts_as_healthy() -> None:
    assert assess_health([], PARTIES).score == 1.0


def test_recent_ratings_weigh_more_than_old_ones() -> None:
    no_trend = HealthPolicy(falling_penalty_max=0)
    turned_bad = assess_health(rated(5, 5, 5, 1, 1), PARTIES, no_trend)
    turned_good = assess_health(rated(1, 1, 5, 5, 5), PARTIES, no_trend)
    assert turned_bad.score < turned_good.score


def test_falling_ratings_lower_the_score_and_are_given_as_a_reason() -> None:
    falling = assess_health(rated(5, 5, 4, 4, 3, 3), PARTIES)
    steady = assess_health(rated(3, 3, 3, 3, 3, 3), PARTIES)
    assert ReasonCode.FALLING_RATINGS in codes(falling)
    assert ReasonCode.FALLING_RATINGS not in codes(steady)
    assert falling.score < assess_health(rated(5, 5, 4, 4, 3, 3), PARTIES, HealthPolicy(falling_penalty_max=0)).score


def test_missed_check_ins_lower_the_score_and_are_counted_in_the_reason() -> None:
    attended = assess_health(rated(4, 4, 4, 4), PARTIES)
    missing = assess_health(rated(4, 4, 4, 4, missed=(2, 3)), PARTIES)
    assert missing.score < attended.score
    (reason,) = [reason for reason in missing.reasons if reason.code is ReasonCode.MISSED_CHECK_INS]
    assert reason.detail.startswith("2 of the last 4")


def test_a_partner_silent_for_k_check_ins_while_the_other_answers_is_flagged_with_who() -> None:
    assessment = assess_health(silenced(rated(4, 4, 4, 4), MENTEE, last=2), PARTIES)
    (reason,) = [reason for reason in assessment.reasons if reason.code is ReasonCode.PARTNER_SILENT]
    assert reason.party_id == MENTEE
    assert assessment.score < assess_health(rated(4, 4, 4, 4), PARTIES).score


def test_one_skipped_pulse_is_not_yet_silence() -> None:
    assert ReasonCode.PARTNER_SILENT not in codes(assess_health(silenced(rated(4, 4, 4, 4), MENTEE, last=1), PARTIES))


def run_states(scores: list[float]) -> list[RiskTransition | None]:
    state = RiskState()
    transitions = []
    for index, score in enumerate(scores):
        step = step_risk(state, HealthAssessment(score, ()), START + timedelta(days=index), POLICY)
        state = step.state
        transitions.append(step.transition)
    return transitions


def test_crossing_the_threshold_emits_entered_at_risk_once_and_recovery_clears_it() -> None:
    transitions = run_states([0.8, 0.45, 0.4, 0.3, 0.65, 0.7])
    assert transitions == [None, RiskTransition.ENTERED_AT_RISK, None, None, RiskTransition.RECOVERED, None]


def test_a_score_hovering_around_the_threshold_does_not_flap() -> None:
    transitions = run_states([0.49, 0.51, 0.49, 0.55, 0.48, 0.59, 0.49])
    assert transitions.count(RiskTransition.ENTERED_AT_RISK) == 1
    assert RiskTransition.RECOVERED not in transitions


def test_a_declining_match_enters_at_risk_with_its_reasons() -> None:
    check_ins = rated(5, 4, 3, 2, 1, 1, missed=(5,))
    assessment = assess_health(check_ins, PARTIES)
    step = step_risk(RiskState(), assessment, START, POLICY)
    assert step.transition is RiskTransition.ENTERED_AT_RISK
    assert {ReasonCode.LOW_RATINGS, ReasonCode.FALLING_RATINGS, ReasonCode.MISSED_CHECK_INS} <= codes(step.assessment)


# ---------------------------------------------------------------------------------------------------------------
# Overriding reasons: no first meeting, a flagged concern

FORTNIGHT = timedelta(days=14)


def not_met(activated_at: datetime = START) -> FirstMeeting:
    return FirstMeeting(activated_at=activated_at, within=FORTNIGHT, held=False)


def test_a_match_without_a_first_meeting_after_n_days_is_at_risk_whatever_its_score() -> None:
    now = START + FORTNIGHT + timedelta(seconds=1)
    assessment = assess_health([], PARTIES, now=now, first_meeting=not_met())
    assert assessment.score == 1.0  # the score stays the ratings measure; the reason overrides it
    assert codes(assessment) == {ReasonCode.NO_FIRST_MEETING}
    step = step_risk(RiskState(), assessment, now, POLICY)
    assert step.transition is RiskTransition.ENTERED_AT_RISK


def test_the_first_meeting_is_not_overdue_on_the_last_day_of_the_milestone() -> None:
    # "within 14 days": activated at 1 Sep 00:00, the deadline is 15 Sep 00:00; at that instant it is not late yet.
    assert not_met().deadline == datetime(2025, 9, 15, tzinfo=UTC)
    assert codes(assess_health([], PARTIES, now=START + FORTNIGHT, first_meeting=not_met())) == set()


def test_a_held_meeting_means_no_first_meeting_reason_however_late() -> None:
    met = FirstMeeting(activated_at=START, within=FORTNIGHT, held=True)
    assert codes(assess_health([], PARTIES, now=START + timedelta(days=200), first_meeting=met)) == set()


def test_without_a_known_start_or_clock_the_first_meeting_is_not_judged() -> None:
    late = START + timedelta(days=60)
    assert codes(assess_health([], PARTIES, now=late, first_meeting=None)) == set()
    assert codes(assess_health([], PARTIES, first_meeting=not_met())) == set()


def test_a_flagged_concern_marks_a_healthy_match_at_risk_at_once_naming_who_flagged() -> None:
    assessment = assess_health(rated(5, 5, 5), PARTIES, concerns_from={MENTEE})
    assert assessment.score > 0.9
    [reason] = assessment.reasons
    assert (reason.code, reason.party_id) == (ReasonCode.CONCERN_FLAGGED, MENTEE)
    assert step_risk(RiskState(), assessment, START, POLICY).transition is RiskTransition.ENTERED_AT_RISK


def test_a_concern_from_someone_outside_the_match_is_ignored() -> None:
    assert codes(assess_health(rated(5, 5), PARTIES, concerns_from={UUID(int=99)})) == set()


def test_an_overriding_reason_holds_recovery_off_until_it_goes_away_then_hysteresis_applies() -> None:
    at_risk = RiskState(at_risk=True, since=START)
    # Score 1.0 would recover, but the concern is still open.
    held = step_risk(
        at_risk, HealthAssessment(1.0, (Reason(ReasonCode.CONCERN_FLAGGED, "open", MENTEE),)), START, POLICY
    )
    assert (held.state.at_risk, held.transition) == (True, None)
    # The concern resolved with a score of 0.55: below 0.5 + 0.1, so still at risk (hysteresis).
    assert step_risk(at_risk, HealthAssessment(0.55, ()), START, POLICY).transition is None
    # At 0.6 it recovers.
    assert step_risk(at_risk, HealthAssessment(0.6, ()), START, POLICY).transition is RiskTransition.RECOVERED


def test_a_match_already_at_risk_for_low_ratings_gets_no_second_crossing_from_a_concern() -> None:
    at_risk = RiskState(at_risk=True, since=START)
    assessment = assess_health(rated(1, 1, 1), PARTIES, concerns_from={MENTOR})
    assert {ReasonCode.CONCERN_FLAGGED, ReasonCode.LOW_RATINGS} <= codes(assessment)
    assert step_risk(at_risk, assessment, START, POLICY).transition is None
