"""Every hard rule, for one pair and inside cohort rounds, with its reason code."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.matching.domain.model import CampusRule, MatchHistory, MentorCapacity, SeniorityRule
from services.matching.domain.rounds import UnmatchedMentee, UnmatchedReason, run_cohort_round
from services.matching.domain.rules import ExclusionReason as R
from services.matching.domain.rules import check_pair
from services.matching.tests.unit.profiles import mentee, mentor, policy


def test_a_plain_pair_in_the_same_program_is_allowed():
    assert check_pair(mentee("e"), mentor("r"), policy()) == ()


@pytest.mark.parametrize(
    ("a", "b", "rules", "history", "reason"),
    [
        (mentee("x"), mentor("x"), policy(), MatchHistory(), R.SAME_PERSON),
        (mentee("e", organisation_id="other"), mentor("r"), policy(), MatchHistory(), R.OTHER_ORGANISATION),
        (mentee("e"), mentor("r", organisation_id="other"), policy(), MatchHistory(), R.OTHER_ORGANISATION),
        (mentee("e"), mentor("r", program_id="other"), policy(), MatchHistory(), R.OTHER_PROGRAM),
        (
            mentee("e", campus_id="north"),
            mentor("r", campus_id="south"),
            policy(campus_rule=CampusRule.SAME),
            MatchHistory(),
            R.CAMPUS_RULE,
        ),
        (
            mentee("e", campus_id="north", same_campus_only=True),
            mentor("r", campus_id="south"),
            policy(campus_rule=CampusRule.ANY),
            MatchHistory(),
            R.CAMPUS_RULE,
        ),
        (mentee("e", blocked_ids=frozenset({"r"})), mentor("r"), policy(), MatchHistory(), R.BLOCKED_BY_MENTEE),
        (mentee("e"), mentor("r", blocked_ids=frozenset({"e"})), policy(), MatchHistory(), R.BLOCKED_BY_MENTOR),
        (mentee("e", manager_chain=("r",)), mentor("r"), policy(), MatchHistory(), R.SAME_REPORTING_LINE),
        (mentee("e", manager_chain=("m", "r")), mentor("r"), policy(), MatchHistory(), R.SAME_REPORTING_LINE),
        (mentee("e"), mentor("r", manager_chain=("e",)), policy(), MatchHistory(), R.SAME_REPORTING_LINE),
        (
            mentee("e", manager_chain=("boss",)),
            mentor("r", manager_chain=("boss",)),
            policy(),
            MatchHistory(),
            R.SAME_REPORTING_LINE,
        ),
        (
            mentee("e", team_id="lab-7"),
            mentor("r", team_id="lab-7"),
            policy(exclude_same_team=True),
            MatchHistory(),
            R.SAME_TEAM,
        ),
        (
            mentee("e"),
            mentor("r"),
            policy(),
            MatchHistory(ended_or_declined=frozenset({("e", "r")})),
            R.ENDED_OR_DECLINED_BEFORE,
        ),
        (
            mentee("e"),
            mentor("r"),
            policy(),
            MatchHistory(ended_or_declined=frozenset({("r", "e")})),
            R.ENDED_OR_DECLINED_BEFORE,
        ),
        (mentee("e"), mentor("r"), policy(), MatchHistory(active=frozenset({("e", "r")})), R.ALREADY_MATCHED),
        (
            mentee("e"),
            mentor("r2"),
            policy(),
            MatchHistory(active=frozenset({("e", "r")})),
            R.MENTEE_HAS_ENOUGH_MENTORS,
        ),
        (mentee("e", level=3), mentor("r", level=3), policy(), MatchHistory(), R.MENTOR_NOT_AHEAD),
        (
            mentee("e", level=1, tenure_start=date(2020, 1, 1)),
            mentor("r", level=3, tenure_start=date(2019, 12, 1)),
            policy(seniority=SeniorityRule(min_tenure_lead_days=365)),
            MatchHistory(),
            R.MENTOR_NOT_AHEAD,
        ),
        (
            mentee("e", level=1),
            mentor("r", level=6),
            policy(seniority=SeniorityRule(max_level_gap=3)),
            MatchHistory(),
            R.MENTOR_LEVEL_TOO_FAR_AHEAD,
        ),
        (
            mentee("e", level=1, tenure_start=date(2024, 9, 1)),
            mentor("r", level=3, tenure_start=date(2010, 9, 1)),
            policy(seniority=SeniorityRule(max_tenure_lead_days=720)),
            MatchHistory(),
            R.MENTOR_TENURE_TOO_FAR_AHEAD,
        ),
    ],
)
def test_each_hard_rule_excludes_the_pair_with_its_reason(a, b, rules, history, reason):
    assert reason in check_pair(a, b, rules, history)


@pytest.mark.parametrize(("lead_days", "allowed"), [(719, True), (720, True), (721, False)])
def test_a_mentor_may_have_started_up_to_the_maximum_tenure_lead_before_the_mentee_and_no_more(
    lead_days: int, allowed: bool
) -> None:
    near_peer = mentor("r", tenure_start=date(2020, 1, 1))
    newcomer = mentee("e", tenure_start=date(2020, 1, 1) + timedelta(days=lead_days))
    reasons = check_pair(newcomer, near_peer, policy(seniority=SeniorityRule(max_tenure_lead_days=720)))
    assert reasons == (() if allowed else (R.MENTOR_TENURE_TOO_FAR_AHEAD,))


def test_a_cohort_round_leaves_a_mentee_unmatched_when_every_mentor_started_too_long_before_them() -> None:
    mentees = [mentee("e", tenure_start=date(2025, 9, 1))]
    mentors = [mentor("r1", tenure_start=date(2012, 9, 1)), mentor("r2", tenure_start=date(2019, 9, 1))]
    rules = policy(seniority=SeniorityRule(max_tenure_lead_days=720))
    report = run_cohort_round(mentees, mentors, {m.person_id: MentorCapacity(m.person_id, 1) for m in mentors}, rules)
    assert report.proposals == ()
    (unmatched,) = report.unmatched
    assert unmatched.reason is UnmatchedReason.NO_FEASIBLE_MENTOR
    assert unmatched.exclusions == {R.MENTOR_TENURE_TOO_FAR_AHEAD: 2}


def test_a_mentor_too_far_ahead_in_role_level_and_in_tenure_is_excluded_under_two_codes_with_their_own_words() -> None:
    veteran = mentor("r", level=9, tenure_start=date(2005, 9, 1))
    newcomer = mentee("e", level=1, tenure_start=date(2025, 9, 1))
    rules = policy(seniority=SeniorityRule(max_level_gap=3, max_tenure_lead_days=720))
    assert check_pair(newcomer, veteran, rules) == (R.MENTOR_LEVEL_TOO_FAR_AHEAD, R.MENTOR_TENURE_TOO_FAR_AHEAD)
    report = run_cohort_round([newcomer], [veteran], {"r": MentorCapacity("r", 1)}, rules)
    (unmatched,) = report.unmatched
    assert unmatched.exclusions == {R.MENTOR_LEVEL_TOO_FAR_AHEAD: 1, R.MENTOR_TENURE_TOO_FAR_AHEAD: 1}
    assert unmatched.describe() == (
        "no mentor passes the hard rules: 1 too far ahead in role level (more levels above the mentee than the "
        "program allows) [mentor_level_too_far_ahead]; 1 too far ahead in tenure (started longer before the mentee "
        "than the program allows) [mentor_tenure_too_far_ahead]"
    )


def test_a_mentor_without_a_free_slot_is_excluded():
    assert R.MENTOR_HAS_NO_FREE_SLOT in check_pair(
        mentee("e"), mentor("r"), policy(), capacity=MentorCapacity("r", 2, 2)
    )


def test_the_same_team_is_allowed_when_the_program_does_not_exclude_it():
    assert check_pair(mentee("e", team_id="t"), mentor("r", team_id="t"), policy(exclude_same_team=False)) == ()


def test_the_same_manager_is_allowed_when_the_program_does_not_exclude_reporting_lines():
    a, b = mentee("e", manager_chain=("boss",)), mentor("r", manager_chain=("boss",))
    assert check_pair(a, b, policy(exclude_same_reporting_line=False)) == ()


def test_a_mentor_network_lets_a_mentee_with_one_active_mentor_get_another():
    rules = policy(allow_mentor_network=True, max_mentors_per_mentee=2)
    assert check_pair(mentee("e"), mentor("r2"), rules, MatchHistory(active=frozenset({("e", "r")}))) == ()


def test_a_cohort_round_never_proposes_an_excluded_pair_even_when_it_scores_best():
    interests = frozenset({"jazz"})
    mentees = [
        mentee("e1", interests=interests, blocked_ids=frozenset({"r1"})),
        mentee("e2", interests=interests, manager_chain=("r2",)),
        mentee("e3", interests=interests, campus_id="north", same_campus_only=True),
        mentee("e4", interests=interests, team_id="lab"),
        mentee("e5", interests=interests, level=5),
        mentee("e6", interests=interests),
    ]
    mentors = [
        mentor("r1", interests=interests, campus_id="south"),
        mentor("r2", interests=interests, campus_id="south", team_id="lab"),
        mentor("r3", interests=interests, campus_id="south", blocked_ids=frozenset({"e6"})),
        mentor("r4", interests=frozenset({"chess"}), campus_id="north"),
    ]
    capacities = {m.person_id: MentorCapacity(m.person_id, 3) for m in mentors}
    history = MatchHistory(ended_or_declined=frozenset({("e4", "r1")}))
    rules = policy(exclude_same_team=True)
    report = run_cohort_round(mentees, mentors, capacities, rules, history)
    by_id = {p.person_id: p for p in [*mentees, *mentors]}
    assert report.proposals
    for proposal in report.proposals:
        a, b = by_id[proposal.mentee_id], by_id[proposal.mentor_id]
        assert check_pair(a, b, rules, history, capacities[b.person_id]) == ()
    assert {"e1", "e2", "e3", "e4", "e6"} <= {p.mentee_id for p in report.proposals}
    unmatched = {u.mentee_id: u for u in report.unmatched}
    assert unmatched["e5"].reason is UnmatchedReason.NO_FEASIBLE_MENTOR
    assert unmatched["e5"].exclusions[R.MENTOR_NOT_AHEAD] == 4


def test_a_cohort_round_respects_free_slots_and_reports_who_stayed_unmatched_because_mentors_are_full():
    mentees = [mentee(f"e{i}", interests=frozenset({"jazz"})) for i in range(5)]
    mentors = [mentor("r1", interests=frozenset({"jazz"})), mentor("r2", interests=frozenset({"jazz"}))]
    capacities = {"r1": MentorCapacity("r1", 3, 1), "r2": MentorCapacity("r2", 1)}
    report = run_cohort_round(mentees, mentors, capacities, policy())
    load: dict[str, int] = {}
    for proposal in report.proposals:
        load[proposal.mentor_id] = load.get(proposal.mentor_id, 0) + 1
    assert load == {"r1": 2, "r2": 1}
    assert len(report.unmatched) == 2
    assert {u.reason for u in report.unmatched} == {UnmatchedReason.FEASIBLE_MENTORS_FULL}


def test_a_cohort_round_says_when_every_mentor_fails_the_campus_rule():
    mentees = [mentee("e", campus_id="north", same_campus_only=True)]
    mentors = [mentor("r1", campus_id="south"), mentor("r2")]
    report = run_cohort_round(
        mentees, mentors, {m.person_id: MentorCapacity(m.person_id, 1) for m in mentors}, policy()
    )
    (unmatched,) = report.unmatched
    assert unmatched.reason is UnmatchedReason.NO_FEASIBLE_MENTOR
    assert unmatched.exclusions == {R.CAMPUS_RULE: 2}
    assert unmatched.describe() == (
        "no mentor passes the hard rules: 2 on another campus (the program or the mentee asks for the same campus) "
        "[campus_rule]"
    )


@pytest.mark.parametrize("reason", list(R))
def test_every_exclusion_reason_reads_as_a_sentence_in_a_round_report(reason: R) -> None:
    unmatched = UnmatchedMentee("e", UnmatchedReason.NO_FEASIBLE_MENTOR, 0, {reason: 1})
    detail = unmatched.describe()
    assert detail.startswith(f"no mentor passes the hard rules: 1 {reason.phrase} [{reason.value}]")
    assert reason.value not in reason.phrase  # a phrase for a person, not the code again


def test_a_round_without_any_mentor_says_no_mentor_passes_the_hard_rules_without_an_empty_list() -> None:
    unmatched = UnmatchedMentee("e", UnmatchedReason.NO_FEASIBLE_MENTOR, 0, {})
    assert unmatched.describe() == "no mentor passes the hard rules"
