"""Mentee-chooses short lists: ranked, explained, feasible only, and spread over the mentor pool."""

from __future__ import annotations

from typing import Any

from services.matching.domain.model import MatchHistory, MentorCapacity, NeedLevel, Participant
from services.matching.domain.shortlist import MentorPool, build_shortlist, exposure_limit
from services.matching.tests.unit.profiles import mentee, mentor, only, policy

JAZZ = frozenset({"jazz"})


def pool_of(mentors: list[Participant], free: int = 1, **policy_fields: Any) -> MentorPool:
    capacities = {m.person_id: MentorCapacity(m.person_id, free) for m in mentors}
    return MentorPool(mentors, capacities, policy(**policy_fields))


def interest_mentors() -> list[Participant]:
    # r0 shares 3 of 3 interests, r1 2, r2 1, r3 none
    tags = ["jazz", "chess", "go"]
    return [mentor(f"r{k}", interests=frozenset(tags[: 3 - k])) for k in range(4)]


def test_the_short_list_ranks_the_best_mentors_first_and_has_the_programs_length():
    a = mentee("e", interests=frozenset({"jazz", "chess", "go"}))
    shortlist = pool_of(interest_mentors(), weights=only(interests=1), proposals_per_mentee=3).shortlist(a, {})
    assert [entry.mentor_id for entry in shortlist.entries] == ["r0", "r1", "r2"]
    assert [entry.rank for entry in shortlist.entries] == [1, 2, 3]
    assert shortlist.entries[0].score.total > shortlist.entries[1].score.total > shortlist.entries[2].score.total


def test_every_entry_explains_why_it_was_chosen():
    a = mentee("e", needs={"writing_and_publishing": NeedLevel.CRITICAL, "career": NeedLevel.CRITICAL})
    mentors = [mentor("r", offers=frozenset({"writing_and_publishing"}))]
    (entry,) = pool_of(mentors).shortlist(a, {}).entries
    assert "Covers 1 of the mentee's 2 critical needs (writing and publishing)" in entry.score.explanation


def test_a_mentor_excluded_by_a_hard_rule_is_never_on_the_list():
    a = mentee("e", interests=JAZZ, blocked_ids=frozenset({"r0"}))
    mentors = [mentor("r0", interests=JAZZ), mentor("r1"), mentor("r2", blocked_ids=frozenset({"e"}), interests=JAZZ)]
    history = MatchHistory(ended_or_declined=frozenset({("e", "r1")}))
    shortlist = pool_of(mentors, weights=only(interests=1)).shortlist(a, {}, history)
    assert shortlist.entries == ()
    assert shortlist.feasible_mentors == 0


def test_a_mentor_shown_to_enough_mentees_is_passed_over_for_the_next_best():
    a = mentee("e", interests=frozenset({"jazz", "chess", "go"}))
    pool = pool_of(interest_mentors(), free=1, weights=only(interests=1), exposure_margin=1.0, proposals_per_mentee=2)
    shortlist = pool.shortlist(a, {"r0": 2})
    assert [entry.mentor_id for entry in shortlist.entries] == ["r1", "r2"]
    assert shortlist.passed_over_for_exposure == 1
    assert [e.mentor_id for e in pool.shortlist(a, {"r0": 1}).entries] == ["r0", "r1"]


def test_the_exposure_limit_is_free_slots_times_one_plus_the_margin():
    assert exposure_limit(2, 0.5) == 3
    assert exposure_limit(4, 0.25) == 5
    assert exposure_limit(1, 0.5) == 1
    assert exposure_limit(0, 3.0) == 0


def test_short_lists_handed_out_one_after_another_spread_a_popular_mentor():
    star = mentor("star", interests=JAZZ)
    others = [mentor(f"r{k}", interests=frozenset({"jazz", f"x{k}"})) for k in range(6)]
    pool = pool_of([star, *others], free=2, weights=only(interests=1), exposure_margin=0.5, proposals_per_mentee=3)
    exposure: dict[str, int] = {}
    for k in range(8):
        for entry in pool.shortlist(mentee(f"e{k}", interests=JAZZ), exposure).entries:
            exposure[entry.mentor_id] = exposure.get(entry.mentor_id, 0) + 1
    assert exposure["star"] == exposure_limit(2, 0.5) == 3
    assert max(exposure.values()) <= 3
    assert set(exposure) == {"star", *(m.person_id for m in others)}  # the less popular ones got shown instead


def test_a_mentor_with_no_free_slot_is_not_shown():
    a = mentee("e", interests=JAZZ)
    mentors = [mentor("full", interests=JAZZ), mentor("open")]
    capacities = {"full": MentorCapacity("full", 2, 2), "open": MentorCapacity("open", 1)}
    shortlist = build_shortlist(a, mentors, capacities, policy(weights=only(interests=1)), {})
    assert [entry.mentor_id for entry in shortlist.entries] == ["open"]
