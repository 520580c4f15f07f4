"""Approving a round re-checks each proposal against the program as it is now, with the solver's hard rules."""

from __future__ import annotations

from collections.abc import Iterable

from services.matching.domain.approval import ParticipantGone, PendingProposal, recheck_proposals
from services.matching.domain.model import MatchHistory, MentorCapacity, Participant, ProgramPolicy
from services.matching.domain.rules import ExclusionReason as R
from services.matching.tests.unit.profiles import mentee, mentor, policy


def proposal(mentee_id: str, mentor_id: str, score: float = 0.5) -> PendingProposal:
    return PendingProposal(f"{mentee_id}-{mentor_id}", mentee_id, mentor_id, score)


def recheck(
    proposals: list[PendingProposal],
    mentees: Iterable[Participant] = (),
    mentors: Iterable[Participant] = (),
    rules: ProgramPolicy | None = None,
    history: MatchHistory = MatchHistory(),
    capacity: dict[str, int] | None = None,
    held: dict[str, int] | None = None,
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    mentor_list = list(mentors)
    capacities = {
        m.person_id: MentorCapacity(m.person_id, (capacity or {}).get(m.person_id, 1), (held or {}).get(m.person_id, 0))
        for m in mentor_list
    }
    verdict = recheck_proposals(
        proposals,
        {m.person_id: m for m in mentees},
        {m.person_id: m for m in mentor_list},
        rules or policy(),
        history,
        capacities,
    )
    return (
        [p.proposal_id for p in verdict.passed],
        {p.proposal_id: tuple(r.value for r in reasons) for p, reasons in verdict.skipped},
    )


def test_proposals_that_still_pass_every_rule_are_all_sent():
    passed, skipped = recheck(
        [proposal("a", "x"), proposal("b", "y")], [mentee("a"), mentee("b")], [mentor("x"), mentor("y")]
    )
    assert sorted(passed) == ["a-x", "b-y"]
    assert skipped == {}


def test_a_proposal_whose_mentee_left_the_program_is_skipped_as_mentee_not_active():
    passed, skipped = recheck([proposal("a", "x")], [], [mentor("x")])
    assert passed == []
    assert skipped == {"a-x": (ParticipantGone.MENTEE_NOT_ACTIVE.value,)}


def test_a_proposal_whose_mentor_was_erased_is_skipped_as_mentor_not_active():
    passed, skipped = recheck([proposal("a", "x")], [mentee("a")], [])
    assert (passed, skipped) == ([], {"a-x": (ParticipantGone.MENTOR_NOT_ACTIVE.value,)})


def test_a_block_added_after_the_solve_skips_the_proposal_with_the_blocking_side():
    passed, skipped = recheck(
        [proposal("a", "x"), proposal("b", "y")],
        [mentee("a"), mentee("b", blocked_ids=frozenset({"y"}))],
        [mentor("x", blocked_ids=frozenset({"a"})), mentor("y")],
    )
    assert passed == []
    assert skipped == {"a-x": (R.BLOCKED_BY_MENTOR.value,), "b-y": (R.BLOCKED_BY_MENTEE.value,)}


def test_a_mentor_filled_by_another_match_since_the_solve_gets_no_more_proposals():
    passed, skipped = recheck([proposal("a", "x")], [mentee("a")], [mentor("x")], capacity={"x": 2}, held={"x": 2})
    assert (passed, skipped) == ([], {"a-x": (R.MENTOR_HAS_NO_FREE_SLOT.value,)})


def test_when_a_mentor_lost_capacity_the_best_scoring_proposals_keep_the_remaining_slots():
    proposals = [proposal("a", "x", 0.4), proposal("b", "x", 0.9), proposal("c", "x", 0.6)]
    passed, skipped = recheck(
        proposals, [mentee("a"), mentee("b"), mentee("c")], [mentor("x")], capacity={"x": 3}, held={"x": 1}
    )
    assert passed == ["b-x", "c-x"]
    assert skipped == {"a-x": (R.MENTOR_HAS_NO_FREE_SLOT.value,)}


def test_a_mentee_matched_elsewhere_since_the_solve_is_not_sent_another_mentor():
    history = MatchHistory(active=frozenset({("a", "z")}))
    passed, skipped = recheck([proposal("a", "x")], [mentee("a")], [mentor("x")], history=history)
    assert (passed, skipped) == ([], {"a-x": (R.MENTEE_HAS_ENOUGH_MENTORS.value,)})


def test_a_pair_already_matched_since_the_solve_is_reported_as_already_matched():
    history = MatchHistory(active=frozenset({("a", "x")}))
    rules = policy(allow_mentor_network=True, max_mentors_per_mentee=3)
    passed, skipped = recheck([proposal("a", "x")], [mentee("a")], [mentor("x")], rules, history, capacity={"x": 2})
    assert (passed, skipped) == ([], {"a-x": (R.ALREADY_MATCHED.value,)})


def test_in_a_mentor_network_a_mentee_gets_no_more_mentors_than_the_program_allows():
    rules = policy(allow_mentor_network=True, max_mentors_per_mentee=2)
    history = MatchHistory(active=frozenset({("a", "z")}))
    proposals = [proposal("a", "x", 0.9), proposal("a", "y", 0.8)]
    passed, skipped = recheck(proposals, [mentee("a")], [mentor("x"), mentor("y")], rules, history)
    assert passed == ["a-x"]
    assert skipped == {"a-y": (R.MENTEE_HAS_ENOUGH_MENTORS.value,)}


def test_a_same_team_rule_switched_on_since_the_solve_applies_at_approval():
    rules = policy(exclude_same_team=True)
    passed, skipped = recheck([proposal("a", "x")], [mentee("a", team_id="lab")], [mentor("x", team_id="lab")], rules)
    assert (passed, skipped) == ([], {"a-x": (R.SAME_TEAM.value,)})
