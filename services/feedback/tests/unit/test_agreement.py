from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from services.feedback.domain.agreement import (
    AgreedPlan,
    AgreementAnswers,
    AgreementError,
    Alignment,
    Aspirations,
    CareerDevelopment,
    Channel,
    Communication,
    ConflictApproach,
    ConflictResolution,
    ExpectationsAgreement,
    FeedbackStyle,
    Goals,
    MeetingFrequency,
    PlanGoal,
    ProgressUpdate,
    ResponseTime,
    Topic,
    WellBeing,
    WorkFeedback,
    compare,
    record_plan,
    submit_answers,
    update_goal_progress,
    view_for,
)

MENTOR = UUID(int=1)
MENTEE = UUID(int=2)
NOW = datetime(2025, 9, 1, 12, tzinfo=UTC)


def mentor_answers() -> AgreementAnswers:
    return AgreementAnswers(
        aspirations=Aspirations(hopes="Help a new student settle in", commitment=5),
        communication=Communication(
            channel=Channel.VIDEO, frequency=MeetingFrequency.FORTNIGHTLY, response_time=ResponseTime.WITHIN_TWO_DAYS
        ),
        well_being=WellBeing(openness_to_personal_topics=4),
        work_feedback=WorkFeedback(wants_feedback_on_work=3, style=FeedbackStyle.DIRECT),
        conflict_resolution=ConflictResolution(approach=ConflictApproach.RAISE_IMMEDIATELY, comfort_raising_issues=4),
        career_development=CareerDevelopment(importance=2),
        goals=Goals(goals=("Publish my first paper!", "Find an internship")),
    )


def mentee_answers() -> AgreementAnswers:
    return AgreementAnswers(
        aspirations=Aspirations(hopes="Someone to ask the silly questions", commitment=2),
        communication=Communication(
            channel=Channel.VIDEO, frequency=MeetingFrequency.WEEKLY, response_time=ResponseTime.WITHIN_TWO_DAYS
        ),
        well_being=WellBeing(openness_to_personal_topics=3),
        work_feedback=WorkFeedback(wants_feedback_on_work=4, style=FeedbackStyle.DIRECT),
        conflict_resolution=ConflictResolution(approach=ConflictApproach.RAISE_IMMEDIATELY, comfort_raising_issues=3),
        career_development=CareerDevelopment(importance=2),
        goals=Goals(goals=("publish first paper", "Improve work-life balance")),
    )


def fresh_agreement() -> ExpectationsAgreement:
    return ExpectationsAgreement(match_id=uuid4(), party_ids=(MENTOR, MENTEE))


def both_submitted() -> ExpectationsAgreement:
    agreement = submit_answers(fresh_agreement(), MENTOR, mentor_answers(), NOW)
    return submit_answers(agreement, MENTEE, mentee_answers(), NOW)


def test_a_party_does_not_see_the_partners_answers_until_both_have_submitted() -> None:
    agreement = submit_answers(fresh_agreement(), MENTOR, mentor_answers(), NOW)

    mentee_view = view_for(agreement, MENTEE)
    mentor_view = view_for(agreement, MENTOR)

    assert mentee_view.partner is None
    assert mentee_view.comparison is None
    assert mentee_view.partner_has_submitted
    assert mentor_view.own == mentor_answers()
    assert mentor_view.partner is None
    assert not mentor_view.partner_has_submitted


def test_both_parties_see_each_others_answers_and_the_comparison_once_both_submitted() -> None:
    agreement = both_submitted()

    mentee_view = view_for(agreement, MENTEE)
    mentor_view = view_for(agreement, MENTOR)

    assert mentee_view.partner == mentor_answers()
    assert mentor_view.partner == mentee_answers()
    assert mentee_view.comparison is not None
    assert mentor_view.comparison is not None


def test_someone_outside_the_match_gets_no_view() -> None:
    with pytest.raises(AgreementError):
        view_for(both_submitted(), uuid4())


def test_a_party_can_revise_answers_until_the_partner_submits_but_not_after() -> None:
    revised = mentor_answers().model_copy(update={"career_development": CareerDevelopment(importance=5)})
    agreement = submit_answers(fresh_agreement(), MENTOR, mentor_answers(), NOW)
    agreement = submit_answers(agreement, MENTOR, revised, NOW)
    assert agreement.answers[MENTOR].career_development.importance == 5

    agreement = submit_answers(agreement, MENTEE, mentee_answers(), NOW)
    with pytest.raises(AgreementError):
        submit_answers(agreement, MENTOR, mentor_answers(), NOW)


def test_free_text_answers_longer_than_the_limit_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Aspirations(hopes="x" * 501, commitment=3)
    with pytest.raises(ValidationError):
        Goals(goals=tuple(f"goal {n}" for n in range(6)))
    with pytest.raises(ValidationError):
        WellBeing(openness_to_personal_topics=6)


def test_the_comparison_shows_where_hand_made_answers_converge_and_diverge() -> None:
    comparison = compare(mentor_answers(), mentee_answers())

    communication = {item.item: item for item in comparison.topic(Topic.COMMUNICATION).items}
    assert communication["channel"].alignment is Alignment.CONVERGE
    assert communication["frequency"].alignment is Alignment.DIVERGE
    assert (communication["frequency"].first, communication["frequency"].second) == ("fortnightly", "weekly")
    assert communication["response_time"].alignment is Alignment.CONVERGE
    assert communication["notes"].alignment is Alignment.TO_DISCUSS

    commitment = next(item for item in comparison.topic(Topic.ASPIRATIONS).items if item.item == "commitment")
    assert (commitment.gap, commitment.alignment) == (3, Alignment.DIVERGE)
    openness = comparison.topic(Topic.WELL_BEING).items[0]
    assert (openness.gap, openness.alignment) == (1, Alignment.CONVERGE)

    goals = comparison.topic(Topic.GOALS).goals
    assert goals is not None
    assert goals.shared == (("Publish my first paper!", "publish first paper"),)
    assert goals.only_first == ("Find an internship",)
    assert goals.only_second == ("Improve work-life balance",)

    assert set(comparison.divergent_topics) == {Topic.ASPIRATIONS, Topic.COMMUNICATION, Topic.GOALS}
    assert comparison.topic(Topic.CAREER_DEVELOPMENT).alignment is Alignment.CONVERGE


def test_a_plan_can_only_be_recorded_after_both_submitted_and_its_goals_take_progress_updates() -> None:
    goal_id = uuid4()
    plan = AgreedPlan(
        goals=(PlanGoal(goal_id=goal_id, text="Submit the first paper by March"),),
        agreements={Topic.COMMUNICATION: "Video call every other Tuesday"},
        recorded_at=NOW,
        recorded_by=MENTEE,
    )
    with pytest.raises(AgreementError):
        record_plan(submit_answers(fresh_agreement(), MENTOR, mentor_answers(), NOW), plan)

    agreement = record_plan(both_submitted(), plan)
    assert agreement.plan is not None
    assert agreement.plan.goals[0].progress == 0

    agreement = update_goal_progress(
        agreement, goal_id, ProgressUpdate(percent=40, note="draft done", recorded_at=NOW, recorded_by=MENTEE)
    )
    agreement = update_goal_progress(
        agreement, goal_id, ProgressUpdate(percent=70, recorded_at=NOW, recorded_by=MENTOR)
    )
    assert agreement.plan is not None
    assert agreement.plan.goals[0].progress == 70
    assert [update.note for update in agreement.plan.goals[0].updates] == ["draft done", ""]


def test_progress_outside_0_to_100_and_updates_by_outsiders_are_refused() -> None:
    with pytest.raises(ValidationError):
        ProgressUpdate(percent=101, recorded_at=NOW, recorded_by=MENTOR)
    goal_id = uuid4()
    plan = AgreedPlan(goals=(PlanGoal(goal_id=goal_id, text="A goal"),), recorded_at=NOW, recorded_by=MENTOR)
    agreement = record_plan(both_submitted(), plan)
    with pytest.raises(AgreementError):
        update_goal_progress(agreement, goal_id, ProgressUpdate(percent=10, recorded_at=NOW, recorded_by=uuid4()))
    with pytest.raises(AgreementError):
        update_goal_progress(agreement, uuid4(), ProgressUpdate(percent=10, recorded_at=NOW, recorded_by=MENTOR))


def test_erasing_a_party_blanks_their_free_text_but_keeps_choices_and_the_lock() -> None:
    from services.feedback.domain.agreement import erase_text_of

    first, second = uuid4(), uuid4()
    answers = _sample_answers_for_erasure()
    agreement = ExpectationsAgreement(match_id=uuid4(), party_ids=(first, second))
    agreement = submit_answers(agreement, first, answers, datetime(2025, 9, 1, tzinfo=UTC))
    agreement = submit_answers(agreement, second, answers, datetime(2025, 9, 2, tzinfo=UTC))

    erased = erase_text_of(agreement, first)

    assert erased.both_submitted
    assert erased.answers[first].aspirations.hopes == ""
    assert erased.answers[first].goals.goals == ()
    assert erased.answers[first].communication.channel == answers.communication.channel
    assert erased.answers[second] == answers


def _sample_answers_for_erasure() -> AgreementAnswers:
    return AgreementAnswers.model_validate(
        {
            "aspirations": {"hopes": "finish my thesis in peace", "commitment": 4},
            "communication": {"channel": "video", "frequency": "fortnightly", "response_time": "within_two_days"},
            "well_being": {"openness_to_personal_topics": 3, "boundaries": "no weekends"},
            "work_feedback": {"wants_feedback_on_work": 5, "style": "direct"},
            "conflict_resolution": {"approach": "raise_immediately", "comfort_raising_issues": 4},
            "career_development": {"importance": 3},
            "goals": {"goals": ["publish a paper"]},
        }
    )


def test_forgetting_a_party_renames_them_everywhere_and_drops_the_plan_wording_they_recorded() -> None:
    from services.feedback.domain.agreement import ERASED_GOAL_TEXT, forget_party

    first, second, replacement = uuid4(), uuid4(), uuid4()
    answers = _sample_answers_for_erasure()
    agreement = ExpectationsAgreement(match_id=uuid4(), party_ids=(first, second))
    agreement = submit_answers(agreement, first, answers, datetime(2025, 9, 1, tzinfo=UTC))
    agreement = submit_answers(agreement, second, answers, datetime(2025, 9, 2, tzinfo=UTC))
    goal_id = uuid4()
    plan = AgreedPlan(
        goals=(PlanGoal(goal_id=goal_id, text="Write the thesis outline"),),
        agreements={Topic.COMMUNICATION: "video every other Tuesday"},
        recorded_at=NOW,
        recorded_by=first,
    )
    agreement = record_plan(agreement, plan)
    agreement = update_goal_progress(
        agreement, goal_id, ProgressUpdate(percent=10, note="mine", recorded_at=NOW, recorded_by=first)
    )
    agreement = update_goal_progress(
        agreement, goal_id, ProgressUpdate(percent=20, note="theirs", recorded_at=NOW, recorded_by=second)
    )

    forgotten = forget_party(agreement, first, replacement)

    assert str(first) not in forgotten.model_dump_json()
    assert forgotten.party_ids == (replacement, second)
    assert forgotten.answers[replacement].aspirations.hopes == ""
    assert forgotten.answers[second] == answers
    assert forgotten.both_submitted
    assert forgotten.plan is not None
    assert forgotten.plan.recorded_by == replacement
    assert forgotten.plan.agreements == {Topic.COMMUNICATION: ""}
    [goal] = forgotten.plan.goals
    assert goal.text == ERASED_GOAL_TEXT
    assert [(update.note, update.recorded_by) for update in goal.updates] == [("", replacement), ("theirs", second)]
    assert forget_party(forgotten, first, uuid4()) == forgotten  # nothing left to forget
