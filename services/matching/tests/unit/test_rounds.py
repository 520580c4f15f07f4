"""Cohort-round solver: optimal against brute force, both objectives, certificate, greedy baseline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain.model import MentorCapacity, Objective
from services.matching.domain.rounds import (
    INFEASIBLE,
    Assignment,
    Certificate,
    UnmatchedReason,
    greedy_assignment,
    run_cohort_round,
    solve_assignment,
)
from services.matching.tests.unit.profiles import mentee, mentor, only, policy

TOTAL, MATCHED = Objective.MAX_TOTAL_SCORE, Objective.MAX_MATCHED_THEN_SCORE


def certificate_of(assignment: Assignment) -> Certificate:
    assert assignment.certificate is not None
    return assignment.certificate


def brute_force(
    weights: np.ndarray, mentee_caps: np.ndarray, mentor_caps: np.ndarray, objective: Objective
) -> tuple[int, int]:
    """Best (matched mentees, total) or best total, by enumerating every mentee's set of mentors."""
    n, m = weights.shape
    options = []
    for i in range(n):
        usable = [j for j in range(m) if weights[i, j] > 0 or (objective is MATCHED and weights[i, j] == 0)]
        options.append([s for size in range(mentee_caps[i] + 1) for s in itertools.combinations(usable, size)])
    best: tuple[int, int] | None = None
    for choice in itertools.product(*options):
        load = np.zeros(m, dtype=int)
        for chosen in choice:
            load[list(chosen)] += 1
        if (load > mentor_caps).any():
            continue
        total = sum(int(weights[i, j]) for i, chosen in enumerate(choice) for j in chosen)
        pairs = sum(len(chosen) for chosen in choice)
        value = (pairs, total) if objective is MATCHED else (0, total)
        best = value if best is None or value > best else best
    assert best is not None
    return best


@st.composite
def instances(draw: st.DrawFn):
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    cells = st.sampled_from([INFEASIBLE, 0, 1, 2, 3, 5, 8, 13, 40])
    weights = np.array(draw(st.lists(st.lists(cells, min_size=m, max_size=m), min_size=n, max_size=n)), dtype=np.int16)
    mentee_caps = np.array(draw(st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=n, max_size=n)), dtype=np.int64)
    mentor_caps = np.array(draw(st.lists(st.integers(0, 2), min_size=m, max_size=m)), dtype=np.int64)
    objective = draw(st.sampled_from([TOTAL, MATCHED]))
    return weights, mentee_caps, mentor_caps, objective, draw(st.integers(1, 3)), draw(st.integers(0, 1))


def check_feasible(
    assignment: Assignment, weights: np.ndarray, mentee_caps: np.ndarray, mentor_caps: np.ndarray
) -> None:
    pairs = list(zip(assignment.mentee_index.tolist(), assignment.mentor_index.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    assert all(weights[i, j] >= 0 for i, j in pairs)
    assert (np.bincount(assignment.mentee_index, minlength=len(mentee_caps)) <= mentee_caps).all()
    assert (np.bincount(assignment.mentor_index, minlength=len(mentor_caps)) <= mentor_caps).all()


@settings(max_examples=200, deadline=None)
@given(instances())
def test_the_round_solver_finds_the_brute_force_optimum_and_proves_it(instance):
    weights, mentee_caps, mentor_caps, objective, per_mentee, per_slot = instance
    assignment = solve_assignment(
        weights,
        mentee_caps,
        mentor_caps,
        objective,
        candidates_per_mentee=per_mentee,
        candidates_per_mentor_slot=per_slot,
        added_per_mentee=1,
    )
    check_feasible(assignment, weights, mentee_caps, mentor_caps)
    pairs, total = brute_force(weights, mentee_caps, mentor_caps, objective)
    assert assignment.total_scaled == total
    if objective is MATCHED:
        assert assignment.pairs == pairs
    assert certificate_of(assignment).proven_optimal


def test_the_solver_adds_priced_pairs_when_the_first_candidates_are_not_enough():
    # both mentees' single best mentor is r0 (capacity 1): the second-best pair must come in through pricing
    weights = np.array([[90, 80, 0], [91, 10, 60]], dtype=np.int16)
    assignment = solve_assignment(
        weights, np.ones(2), np.ones(3), TOTAL, candidates_per_mentee=1, candidates_per_mentor_slot=0
    )
    assert assignment.total_scaled == 80 + 91
    assert certificate_of(assignment).pricing_rounds >= 2
    assert certificate_of(assignment).proven_optimal
    assert "optimal" in certificate_of(assignment).statement


def test_max_total_score_may_leave_a_mentee_unmatched_where_max_matched_does_not():
    weights = np.array([[90, 10], [50, INFEASIBLE]], dtype=np.int16)
    by_score = solve_assignment(weights, np.ones(2), np.ones(2), TOTAL)
    by_count = solve_assignment(weights, np.ones(2), np.ones(2), MATCHED)
    assert (by_score.pairs, by_score.total_scaled) == (1, 90)
    assert (by_count.pairs, by_count.total_scaled) == (2, 60)


def test_max_matched_then_score_picks_the_best_total_among_maximum_matchings():
    weights = np.array([[30, 20], [10, 25]], dtype=np.int16)
    assignment = solve_assignment(weights, np.ones(2), np.ones(2), MATCHED)
    assert assignment.pairs == 2
    assert assignment.total_scaled == 55


def test_max_total_score_does_not_match_zero_score_pairs_but_max_matched_does():
    weights = np.array([[0]], dtype=np.int16)
    assert solve_assignment(weights, np.ones(1), np.ones(1), TOTAL).pairs == 0
    assert solve_assignment(weights, np.ones(1), np.ones(1), MATCHED).pairs == 1


def test_a_mentee_in_a_mentor_network_gets_several_distinct_mentors():
    weights = np.array([[50, 40, 30]], dtype=np.int16)
    assignment = solve_assignment(weights, np.array([2]), np.ones(3), TOTAL)
    assert sorted(assignment.mentor_index.tolist()) == [0, 1]


def test_the_solver_matches_an_all_pairs_solve_on_a_medium_random_instance():
    rng = np.random.default_rng(7)
    weights = rng.integers(0, 10_000, size=(120, 40)).astype(np.int16)
    weights[rng.random(weights.shape) < 0.3] = INFEASIBLE
    mentor_caps = rng.integers(1, 5, size=40)
    few = solve_assignment(
        weights, np.ones(120), mentor_caps, TOTAL, candidates_per_mentee=2, candidates_per_mentor_slot=0
    )
    every = solve_assignment(weights, np.ones(120), mentor_caps, TOTAL, candidates_per_mentee=40)
    assert few.total_scaled == every.total_scaled
    assert certificate_of(few).proven_optimal
    assert certificate_of(every).pricing_rounds == 1


@settings(max_examples=100, deadline=None)
@given(instances())
def test_greedy_is_feasible_and_never_beats_the_optimum(instance):
    weights, mentee_caps, mentor_caps, objective, _, _ = instance
    greedy = greedy_assignment(weights, mentee_caps, mentor_caps, objective, chunk=1)
    check_feasible(greedy, weights, mentee_caps, mentor_caps)
    optimum = solve_assignment(weights, mentee_caps, mentor_caps, TOTAL)
    assert greedy.total_scaled <= optimum.total_scaled


def test_greedy_takes_the_best_pair_first_even_when_that_is_not_optimal():
    weights = np.array([[90, 80], [85, 0]], dtype=np.int16)
    greedy = greedy_assignment(weights, np.ones(2), np.ones(2))
    assert list(zip(greedy.mentee_index.tolist(), greedy.mentor_index.tolist(), strict=True)) == [(0, 0)]
    assert solve_assignment(weights, np.ones(2), np.ones(2)).total_scaled == 80 + 85


def test_a_round_report_gives_total_mean_minimum_distribution_and_certificate():
    shared = frozenset({"jazz", "chess"})
    mentees = [mentee("e1", interests=shared), mentee("e2", interests=frozenset({"jazz"})), mentee("e3")]
    mentors = [mentor("r1", interests=shared), mentor("r2", interests=frozenset({"jazz", "go"}))]
    capacities = {m.person_id: MentorCapacity(m.person_id, 1) for m in mentors}
    report = run_cohort_round(mentees, mentors, capacities, policy(weights=only(interests=1)), with_breakdown=True)
    assert {(p.mentee_id, p.mentor_id) for p in report.proposals} == {("e1", "r1"), ("e2", "r2")}
    assert report.total_score == pytest.approx(1.0 + 0.5)
    assert report.mean_score == pytest.approx(0.75)
    assert report.min_score == pytest.approx(0.5)
    assert report.histogram[5] == 1
    assert report.histogram[9] == 1
    assert sum(report.histogram) == 2
    assert report.matched_mentees == 2
    assert report.matched_share == pytest.approx(2 / 3)
    assert report.certificate.proven_optimal
    assert all(p.breakdown is not None and "shared interest" in p.breakdown.explanation for p in report.proposals)
    (unmatched,) = report.unmatched
    assert unmatched.mentee_id == "e3"


def test_a_mentee_whose_feasible_mentors_all_score_zero_is_reported_as_such():
    mentees = [mentee("e", interests=frozenset({"jazz"}))]
    mentors = [mentor("r", interests=frozenset({"chess"}))]
    report = run_cohort_round(mentees, mentors, {"r": MentorCapacity("r", 1)}, policy(weights=only(interests=1)))
    assert report.unmatched[0].reason is UnmatchedReason.NO_POSITIVE_SCORE
    matched_mode = policy(weights=only(interests=1), objective=MATCHED)
    assert run_cohort_round(mentees, mentors, {"r": MentorCapacity("r", 1)}, matched_mode).matched_mentees == 1


def test_an_empty_side_gives_an_empty_but_certified_round():
    report = run_cohort_round([mentee("e")], [], {}, policy())
    assert report.proposals == ()
    assert report.unmatched[0].reason is UnmatchedReason.NO_FEASIBLE_MENTOR
    assert report.certificate.proven_optimal
    assert run_cohort_round([], [mentor("r")], {"r": MentorCapacity("r", 1)}, policy()).mentee_count == 0


def test_a_mentee_who_already_holds_enough_mentors_is_reported_as_having_no_slot():
    from services.matching.domain.model import MatchHistory

    history = MatchHistory(active=frozenset({("e", "old")}))
    report = run_cohort_round([mentee("e")], [mentor("r")], {"r": MentorCapacity("r", 1)}, policy(), history)
    assert report.unmatched[0].reason is UnmatchedReason.NO_SLOT_THIS_ROUND
