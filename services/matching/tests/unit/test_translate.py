"""Contract snapshots become the domain's values with the program's rules and the person's consents intact."""

from __future__ import annotations

from services.matching.application.translate import contract_breakdown, participant_of, policy_of
from services.matching.domain.model import CampusRule, Objective
from services.matching.domain.rules import ExclusionReason, check_pair
from services.matching.domain.scoring import score_pair
from shared.events import samples
from shared.events.values import SeniorityRule


def test_a_programs_matching_policy_becomes_the_domain_policy() -> None:
    policy = policy_of(samples.program_updated())
    assert policy.campus_rule is CampusRule.SAME
    assert policy.exclude_same_team
    assert policy.seniority.max_level_gap == 3
    assert policy.mentors_per_mentee == 2
    assert policy.objective is Objective.MAX_MATCHED_THEN_SCORE
    assert policy.weights.needs == 3
    assert policy.weights.background == 0.5


def test_a_programs_tenure_gaps_in_months_become_day_bounds_of_thirty_days_a_month() -> None:
    policy = samples.program_updated().matching_policy
    seniority = {"min_level_gap": 1, "min_tenure_gap_months": 6, "max_tenure_gap_months": 24}
    hard_rules = policy.hard_rules.model_copy(update={"seniority": SeniorityRule(**seniority)})
    program = samples.program_updated(matching_policy=policy.model_copy(update={"hard_rules": hard_rules}))
    rule = policy_of(program).seniority
    assert (rule.min_tenure_lead_days, rule.max_tenure_lead_days) == (180, 720)


def test_a_program_without_a_maximum_tenure_gap_sets_no_upper_bound() -> None:
    assert policy_of(samples.program_updated()).seniority.max_tenure_lead_days is None


def test_people_on_the_same_reporting_line_are_kept_apart() -> None:
    program = samples.program_updated()
    mentee = participant_of(samples.profile_updated(blocked_person_ids=()), program.program_id)
    colleague = participant_of(
        samples.profile_updated(person_id=samples.MENTOR_ID, role_level=3, team="Other", blocked_person_ids=()),
        program.program_id,
    )
    reasons = check_pair(mentee, colleague, policy_of(program))
    assert ExclusionReason.SAME_REPORTING_LINE in reasons


def test_affinity_attributes_count_only_with_consent() -> None:
    consented = participant_of(samples.profile_updated(), samples.PROGRAM_ID)
    assert set(consented.affinity) == {"first_generation", "international_student"}
    withheld = participant_of(
        samples.profile_updated(affinity_attributes=(), consent={"affinity_matching": False}), samples.PROGRAM_ID
    )
    assert withheld.affinity == {}


def test_the_breakdown_in_contract_shape_adds_up_to_the_score() -> None:
    program = samples.program_updated()
    policy = policy_of(program)
    mentee = participant_of(samples.profile_updated(), program.program_id)
    mentor = participant_of(
        samples.profile_updated(person_id=samples.MENTOR_ID, role_level=3, offers=("hidden_curriculum",)),
        program.program_id,
    )
    score = score_pair(mentee, mentor, policy)
    breakdown = contract_breakdown(score)
    assert abs(sum(f.contribution for f in breakdown) - score.total) < 1e-5
    assert len({f.factor for f in breakdown}) == len(breakdown)


def test_a_programs_function_catalogue_gives_the_policy_its_labels() -> None:
    labels = policy_of(samples.program_updated()).function_labels
    assert labels["writing_publishing"] == "Writing and publishing"
    assert labels["job_search"] == "Job search"
