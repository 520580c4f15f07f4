"""The numpy scorer and rule masks give exactly what the one-pair scorer and rule check give."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain.encoding import PoolVocabulary, encode_side
from services.matching.domain.model import (
    CampusRule,
    FactorWeights,
    MatchHistory,
    MentorCapacity,
    SeniorityRule,
)
from services.matching.domain.rounds import run_cohort_round
from services.matching.domain.rules import PairwiseExclusions, check_pair, exclusion_masks, mentee_slots
from services.matching.domain.scoring import score_block, score_pair
from services.matching.domain.shortlist import MentorPool
from services.matching.tests.unit.profiles import participants, policy

MENTEE_IDS = ["e0", "e1", "e2"]
MENTOR_IDS = ["r0", "r1", "r2"]
ALL_IDS = MENTEE_IDS + MENTOR_IDS


@st.composite
def cohorts(draw: st.DrawFn):
    mentees = [draw(participants(pid, ALL_IDS)) for pid in MENTEE_IDS[: draw(st.integers(1, 3))]]
    mentors = [draw(participants(pid, ALL_IDS)) for pid in MENTOR_IDS[: draw(st.integers(1, 3))]]
    weights = FactorWeights(**{name: draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])) for name in FactorWeights.__slots__})
    rules = policy(
        weights=weights,
        campus_rule=draw(st.sampled_from(list(CampusRule))),
        exclude_same_team=draw(st.booleans()),
        exclude_same_reporting_line=draw(st.booleans()),
        allow_mentor_network=draw(st.booleans()),
        max_mentors_per_mentee=draw(st.integers(1, 2)),
        seniority=SeniorityRule(
            min_level_gap=draw(st.integers(-1, 2)),
            max_level_gap=draw(st.sampled_from([None, 2, 4])),
            comfortable_level_gap=draw(st.integers(0, 3)),
            min_tenure_lead_days=draw(st.sampled_from([None, 0, 365])),
            max_tenure_lead_days=draw(st.sampled_from([None, 0, 365, 1825])),
        ),
    )
    pairs = st.tuples(st.sampled_from(ALL_IDS), st.sampled_from(ALL_IDS))
    history = MatchHistory(
        ended_or_declined=draw(st.frozensets(pairs, max_size=3)), active=draw(st.frozensets(pairs, max_size=3))
    )
    capacities = {
        m.person_id: MentorCapacity(m.person_id, draw(st.integers(0, 3)), draw(st.integers(0, 2))) for m in mentors
    }
    return mentees, mentors, rules, history, capacities


@settings(max_examples=40, deadline=None)
@given(cohorts())
def test_the_matrix_scorer_equals_the_pair_scorer(cohort):
    mentees, mentors, rules, _, _ = cohort
    vocabulary = PoolVocabulary.from_mentors(mentors)
    matrix = score_block(encode_side(mentees, vocabulary, rules), encode_side(mentors, vocabulary, rules), rules)
    expected = np.array([[score_pair(a, b, rules).total for b in mentors] for a in mentees])
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=2e-6)


@settings(max_examples=40, deadline=None)
@given(cohorts())
def test_the_rule_masks_equal_the_pair_rule_check(cohort):
    mentees, mentors, rules, history, capacities = cohort
    vocabulary = PoolVocabulary.from_mentors(mentors)
    free = np.array([capacities[m.person_id].free_slots for m in mentors])
    masks = exclusion_masks(
        encode_side(mentees, vocabulary, rules),
        encode_side(mentors, vocabulary, rules),
        rules,
        PairwiseExclusions.build(mentees, mentors, rules, history),
        free,
        mentee_slots(mentees, rules, history),
    )
    for i, a in enumerate(mentees):
        for j, b in enumerate(mentors):
            from_masks = {reason for reason, mask in masks.items() if mask[i, j]}
            assert from_masks == set(check_pair(a, b, rules, history, capacities[b.person_id])), (a, b)


def test_a_fake_embedder_gives_the_same_semantic_scores_both_ways():
    def embed(texts):
        return np.array([[t.count("publish") + 0.1, t.count("job") + 0.1, len(t) / 10] for t in texts])

    from services.matching.tests.unit.profiles import mentee, mentor, only

    rules = policy(weights=only(semantic_goals=2, interests=1))
    mentees = [mentee("e0", goals_text="publish a paper"), mentee("e1", goals_text="get a job"), mentee("e2")]
    mentors = [mentor("r0", goals_text="publish, publish"), mentor("r1", goals_text="industry job")]
    vocabulary = PoolVocabulary.from_mentors(mentors)
    matrix = score_block(
        encode_side(mentees, vocabulary, rules, embed), encode_side(mentors, vocabulary, rules, embed), rules
    )
    expected = np.array([[score_pair(a, b, rules, embed).total for b in mentors] for a in mentees])
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(cohorts())
def test_the_mentor_pool_scores_and_filters_like_the_pair_functions(cohort):
    mentees, mentors, rules, history, capacities = cohort
    pool = MentorPool(mentors, capacities, rules)
    for a in mentees:
        feasible, scores = pool.feasible_and_scores(a, history)
        np.testing.assert_allclose(scores, [score_pair(a, b, rules).total for b in mentors], rtol=0, atol=2e-6)
        expected = [not check_pair(a, b, rules, history, capacities[b.person_id]) for b in mentors]
        assert feasible.tolist() == expected


@settings(max_examples=30, deadline=None)
@given(cohorts())
def test_a_cohort_round_on_random_profiles_breaks_no_hard_rule_and_no_capacity(cohort):
    mentees, mentors, rules, history, capacities = cohort
    report = run_cohort_round(mentees, mentors, capacities, rules, history)
    by_id = {p.person_id: p for p in mentees} | {f"mentor:{p.person_id}": p for p in mentors}
    slots = dict(zip((p.person_id for p in mentees), mentee_slots(mentees, rules, history).tolist(), strict=True))
    for proposal in report.proposals:
        a, b = by_id[proposal.mentee_id], by_id[f"mentor:{proposal.mentor_id}"]
        assert check_pair(a, b, rules, history, capacities[b.person_id]) == ()
    for mentor_id, load in Counter(p.mentor_id for p in report.proposals).items():
        assert load <= capacities[mentor_id].free_slots
    for mentee_id, load in Counter(p.mentee_id for p in report.proposals).items():
        assert load <= slots[mentee_id]
    assert report.certificate.proven_optimal
