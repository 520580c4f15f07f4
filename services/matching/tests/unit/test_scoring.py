"""Each score factor on hand-computed cases, the weighted total, explanations and the semantic hook."""

from __future__ import annotations

import re
import sys
import types
from datetime import date

import numpy as np
import pytest

from services.matching.domain.encoding import reference_week_start, weekly_utc_hours
from services.matching.domain.model import (
    FactorWeights,
    MeetingFormat,
    NeedLevel,
    Participant,
    SeniorityRule,
    WorkingStyle,
)
from services.matching.domain.scoring import Factor, load_goal_embedder, score_pair
from services.matching.tests.unit.profiles import mentee, mentor, only, policy, window
from shared.events.models import MatchProposed

CRITICAL, IMPORTANT, IRRELEVANT = NeedLevel.CRITICAL, NeedLevel.IMPORTANT, NeedLevel.NOT_RELEVANT


def factor_value(a, b, factor: Factor, **policy_fields):
    return score_pair(a, b, policy(**policy_fields)).factor(factor)


def test_needs_coverage_counts_a_critical_need_twice_as_much_as_an_important_one():
    a = mentee(
        "e",
        needs={
            "writing": CRITICAL,
            "research": CRITICAL,
            "career": CRITICAL,
            "time": CRITICAL,
            "belonging": IMPORTANT,
            "venting": IRRELEVANT,
        },
    )
    b = mentor("r", offers=frozenset({"writing", "research", "career", "belonging", "venting"}))
    assert factor_value(a, b, Factor.NEEDS).value == pytest.approx((2 * 3 + 1) / (2 * 4 + 1))


def test_the_critical_need_weight_is_a_program_setting():
    a = mentee("e", needs={"writing": CRITICAL, "belonging": IMPORTANT})
    b = mentor("r", offers=frozenset({"belonging"}))
    assert factor_value(a, b, Factor.NEEDS, critical_need_weight=3.0).value == pytest.approx(1 / 4)


def test_shared_interests_are_the_jaccard_overlap():
    a = mentee("e", interests=frozenset({"jazz", "climbing", "chess"}))
    b = mentor("r", interests=frozenset({"climbing", "chess", "go"}))
    assert factor_value(a, b, Factor.INTERESTS).value == pytest.approx(2 / 4)


def test_goal_alignment_is_the_share_of_the_mentees_goals_and_outcomes_the_mentor_shares():
    a = mentee("e", goal_tags=frozenset({"publish"}), desired_outcomes=frozenset({"industry_job"}))
    b = mentor("r", goal_tags=frozenset({"publish"}), desired_outcomes=frozenset({"phd"}))
    assert factor_value(a, b, Factor.GOALS).value == pytest.approx(1 / 2)


def test_a_goal_and_an_outcome_with_the_same_name_do_not_count_as_shared():
    a = mentee("e", goal_tags=frozenset({"teaching"}))
    b = mentor("r", desired_outcomes=frozenset({"teaching"}))
    assert factor_value(a, b, Factor.GOALS).value == 0


def test_skills_factor_is_the_share_of_wanted_skills_the_mentor_has():
    a = mentee("e", skills_wanted=frozenset({"python", "statistics", "writing"}))
    b = mentor("r", skills=frozenset({"python", "statistics", "piano"}))
    assert factor_value(a, b, Factor.SKILLS).value == pytest.approx(2 / 3)


def test_working_style_averages_communication_meeting_format_and_cadence():
    a = mentee("e", working_style=WorkingStyle("chat", MeetingFormat.VIRTUAL, 7))
    b = mentor("r", working_style=WorkingStyle("chat", MeetingFormat.EITHER, 14))
    assert factor_value(a, b, Factor.WORKING_STYLE).value == pytest.approx((1 + 1 + 0.5) / 3)


def test_in_person_and_virtual_meeting_formats_do_not_fit():
    a = mentee("e", working_style=WorkingStyle(meeting_format=MeetingFormat.IN_PERSON))
    b = mentor("r", working_style=WorkingStyle(meeting_format=MeetingFormat.VIRTUAL))
    assert factor_value(a, b, Factor.WORKING_STYLE).value == 0


def test_availability_overlap_is_counted_in_utc_across_time_zones():
    # January: New York is UTC-5 (Mon 09-12 = 14-17 UTC), Berlin UTC+1 (Mon 15-20 = 14-19 UTC): 3 shared hours
    a = mentee("e", time_zone="America/New_York", availability=(window(0, 9, 12),))
    b = mentor("r", time_zone="Europe/Berlin", availability=(window(0, 15, 20),))
    score = factor_value(a, b, Factor.AVAILABILITY, availability_target_hours=4.0)
    assert score.value == pytest.approx(3 / 4)
    assert "3 h/week of shared availability" in score.detail


def test_the_reference_week_decides_daylight_saving_offsets():
    # mid-March 2026 New York is already on summer time (UTC-4) and Berlin not yet (UTC+1): 13-16 vs 14-19 UTC
    a = mentee("e", time_zone="America/New_York", availability=(window(0, 9, 12),))
    b = mentor("r", time_zone="Europe/Berlin", availability=(window(0, 15, 20),))
    score = factor_value(a, b, Factor.AVAILABILITY, reference_week=date(2026, 3, 16))
    assert "2 h/week" in score.detail


def test_a_window_that_crosses_the_end_of_the_week_in_utc_wraps_to_its_start():
    hours = weekly_utc_hours((window(6, 22, 24),), "America/New_York", reference_week_start(policy()))
    assert np.flatnonzero(hours).tolist() == [3, 4]  # Sunday 22-24 in New York = Monday 03-05 UTC


def test_availability_does_not_count_when_one_side_stated_none():
    a = mentee("e", availability=(window(0, 9, 12),))
    assert not factor_value(a, mentor("r"), Factor.AVAILABILITY).applies


def test_background_similarity_uses_only_attributes_both_consented_to():
    a = mentee("e", affinity={"first_generation": "yes", "caregiver": "no", "moved": "yes"})
    b = mentor("r", affinity={"first_generation": "yes", "caregiver": "yes"})
    score = factor_value(a, b, Factor.BACKGROUND)
    assert score.value == pytest.approx(1 / 2)
    assert "first_generation" not in score.detail
    assert "yes" not in score.detail


def test_background_does_not_apply_without_a_shared_consented_attribute():
    a = mentee("e", affinity={"moved": "yes"})
    b = mentor("r", affinity={"caregiver": "yes"})
    assert not factor_value(a, b, Factor.BACKGROUND).applies


@pytest.mark.parametrize(
    ("mentee_level", "mentor_level", "expected"),
    [(1, 2, 1.0), (1, 3, 1.0), (1, 4, 0.75), (1, 5, 0.5), (1, 9, 0.0), (2, 2, 0.0)],
)
def test_seniority_is_full_within_the_comfortable_gap_and_falls_beyond_it(mentee_level, mentor_level, expected):
    rule = SeniorityRule(min_level_gap=1, comfortable_level_gap=2, penalty_per_level=0.25)
    a, b = mentee("e", level=mentee_level), mentor("r", level=mentor_level)
    assert factor_value(a, b, Factor.SENIORITY, seniority=rule).value == pytest.approx(expected)


def test_total_is_the_weighted_mean_of_the_factors_that_apply():
    a = mentee("e", needs={"writing": CRITICAL, "research": IMPORTANT}, interests=frozenset({"jazz", "chess"}))
    b = mentor("r", offers=frozenset({"writing"}), interests=frozenset({"chess"}))
    score = score_pair(a, b, policy(weights=only(needs=3, interests=1, skills=5)))
    # needs (2*1 + 0)/(2*1 + 1) = 2/3 at weight 3, interests 1/2 at weight 1; skills do not apply (none wanted)
    assert score.total == pytest.approx((3 * 2 / 3 + 1 * 1 / 2) / 4)
    assert score.factor(Factor.NEEDS).weight == pytest.approx(3 / 4)
    assert score.factor(Factor.SKILLS).weight == 0


def test_explanation_names_the_covered_critical_needs_and_shared_hours():
    a = mentee(
        "e",
        needs={
            "writing_and_publishing": CRITICAL,
            "research_methods": CRITICAL,
            "time_management": CRITICAL,
            "belonging": CRITICAL,
        },
        availability=(window(1, 8, 14),),
    )
    b = mentor(
        "r",
        offers=frozenset({"writing_and_publishing", "research_methods", "time_management"}),
        availability=(window(1, 9, 20),),
    )
    explanation = score_pair(a, b, policy()).explanation
    assert explanation.startswith(
        "Covers 3 of the mentee's 4 critical needs (research methods, time management, writing"
    )
    assert "5 h/week of shared availability" in explanation


def test_explanation_says_so_when_no_critical_need_is_covered():
    a = mentee("e", needs={"writing": CRITICAL, "career": CRITICAL})
    assert "Covers none of the mentee's 2 critical needs" in score_pair(a, mentor("r"), policy()).explanation
    a = mentee("e", needs={"writing": CRITICAL})
    assert "Does not cover the mentee's critical need" in score_pair(a, mentor("r"), policy()).explanation


def test_needs_none_of_which_is_covered_read_as_one_negation_without_a_but():
    needs = {"writing": CRITICAL, "career": CRITICAL, "job_search": IMPORTANT}
    nothing = score_pair(mentee("e", needs=needs), mentor("r"), policy()).factor(Factor.NEEDS).detail
    assert nothing == "covers none of the mentee's 2 critical needs or their important need"
    one_critical = mentee("e", needs={"writing": CRITICAL, "career": IMPORTANT, "job_search": IMPORTANT})
    offers_writing = mentor("r", offers=frozenset({"writing"}))
    assert score_pair(one_critical, offers_writing, policy()).factor(Factor.NEEDS).detail == (
        "covers the mentee's critical need (writing) but none of their 2 important needs"
    )
    lone_critical_missed = mentee("e", needs={"writing": CRITICAL, "career": IMPORTANT, "job_search": IMPORTANT})
    assert score_pair(lone_critical_missed, mentor("r"), policy()).factor(Factor.NEEDS).detail == (
        "does not cover the mentee's critical need or their 2 important needs"
    )


def test_semantic_goal_factor_falls_back_cleanly_when_the_model_package_is_missing():
    assert load_goal_embedder("a_module_that_is_not_installed_here") is None
    a, b = mentee("e", goals_text="publish a paper"), mentor("r", goals_text="publish papers")
    with_hook = score_pair(a, b, policy(), embedder=load_goal_embedder("a_module_that_is_not_installed_here"))
    without = score_pair(a, b, policy(weights=FactorWeights(semantic_goals=0)))
    assert not with_hook.factor(Factor.SEMANTIC_GOALS).applies
    assert with_hook.total == pytest.approx(without.total)


def test_a_broken_model_package_also_falls_back(monkeypatch):
    broken = types.ModuleType("broken_embedding_model")

    def load_model():
        raise OSError("weights missing")

    broken.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "broken_embedding_model", broken)
    assert load_goal_embedder("broken_embedding_model") is None


def test_an_installed_model_package_adds_semantic_similarity_of_free_text_goals(monkeypatch):
    fake = types.ModuleType("fake_embedding_model")

    class Model:
        def encode(self, texts):
            return np.array([[1.0, 0.0] if "publish" in t else [0.0, 1.0] for t in texts])

    fake.load_model = Model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_embedding_model", fake)
    embedder = load_goal_embedder("fake_embedding_model")
    assert embedder is not None
    a = mentee("e", goals_text="publish a paper")
    similar, different = mentor("r1", goals_text="publish more"), mentor("r2", goals_text="find a job")
    rules = policy(weights=only(semantic_goals=1))
    assert score_pair(a, similar, rules, embedder).total == pytest.approx(1.0)
    assert score_pair(a, different, rules, embedder).total == pytest.approx(0.0)
    assert score_pair(a, similar, rules, embedder).factor(Factor.SEMANTIC_GOALS).applies


def test_explanation_of_important_needs_alone_reads_as_a_sentence():
    a = mentee("e", needs={"job_search": IMPORTANT, "teaching": IMPORTANT})
    b = mentor("r", offers=frozenset({"job_search"}))
    assert score_pair(a, b, policy()).explanation.startswith("Covers 1 of the mentee's 2 important needs (job search)")


def test_explanation_adds_important_needs_after_critical_ones():
    a = mentee("e", needs={"writing": CRITICAL, "job_search": IMPORTANT})
    b = mentor("r", offers=frozenset({"writing", "job_search"}))
    explanation = score_pair(a, b, policy()).explanation
    assert explanation.startswith("Covers the mentee's critical need (writing) and their important need (job search)")


# --- explanations read right for the mentee, the mentor and coordinators alike ---------------------------------------

SECOND_PERSON = re.compile(r"\b(you|your|yours)\b", re.IGNORECASE)


def full_pair() -> tuple[Participant, Participant]:
    a = mentee(
        "e",
        needs={"writing": CRITICAL, "research": CRITICAL, "career": IMPORTANT, "job_search": IMPORTANT},
        interests=frozenset({"chess"}),
        goal_tags=frozenset({"publish", "teach"}),
        skills_wanted=frozenset({"python", "statistics"}),
        working_style=WorkingStyle("chat", MeetingFormat.VIRTUAL, 14),
        availability=(window(1, 8, 14),),
        affinity={"first_generation": "yes"},
    )
    b = mentor(
        "r",
        level=2,
        offers=frozenset({"writing", "research", "career"}),
        interests=frozenset({"chess"}),
        goal_tags=frozenset({"publish"}),
        skills=frozenset({"python"}),
        working_style=WorkingStyle("chat", MeetingFormat.VIRTUAL, 14),
        availability=(window(1, 9, 20),),
        affinity={"first_generation": "yes"},
    )
    return a, b


def test_the_explanation_and_every_factor_detail_speak_of_the_mentee_and_the_mentor_never_of_you():
    a, b = full_pair()
    score = score_pair(a, b, policy())
    assert score.explanation.startswith(
        "Covers both of the mentee's critical needs (research, writing) and 1 of their 2 important needs (career)"
    )
    texts = [score.explanation] + [f.detail for f in score.factors]
    texts += [f.detail for f in score_pair(mentee("e"), mentor("r"), policy()).factors]  # the "not stated" ones
    assert [t for t in texts if SECOND_PERSON.search(t)] == []


def test_needs_are_named_by_the_programs_catalogue_labels_and_by_their_key_when_the_catalogue_has_none():
    a = mentee("e", needs={"writing_publishing": CRITICAL, "job_search": CRITICAL, "belonging": CRITICAL})
    b = mentor("r", offers=frozenset({"writing_publishing", "job_search"}))
    labels = {"writing_publishing": "Writing and publishing", "belonging": "Belonging and community"}
    explanation = score_pair(a, b, policy(function_labels=labels)).explanation
    assert explanation.startswith("Covers 2 of the mentee's 3 critical needs (job search, Writing and publishing)")


@pytest.mark.parametrize(
    ("mentee_days", "mentor_days", "phrase"),
    [(14, 14, "both want to meet every 14 days"), (14, 7, "meeting every 7 and every 14 days")],
)
def test_the_cadence_says_plainly_how_often_each_wants_to_meet(mentee_days, mentor_days, phrase):
    a = mentee("e", working_style=WorkingStyle(cadence_days=mentee_days))
    b = mentor("r", working_style=WorkingStyle(cadence_days=mentor_days))
    detail = factor_value(a, b, Factor.WORKING_STYLE).detail
    assert detail == phrase
    assert " vs " not in detail


def test_the_same_communication_and_meeting_format_are_named_in_words():
    a = mentee("e", working_style=WorkingStyle("video_call", MeetingFormat.IN_PERSON))
    b = mentor("r", working_style=WorkingStyle("video_call", MeetingFormat.IN_PERSON))
    detail = factor_value(a, b, Factor.WORKING_STYLE).detail
    assert detail == "both prefer video calls, both prefer to meet in person"


@pytest.mark.parametrize(
    ("mentor_level", "phrase"),
    [
        (2, "the mentor is 1 level ahead"),
        (3, "the mentor is 2 levels ahead"),
        (5, "the mentor is 4 levels ahead (further than ideal)"),
        (1, "the mentor is at the mentee's level"),
        (0, "the mentor is 1 level below the mentee"),
    ],
)
def test_the_seniority_gap_reads_right_also_when_the_mentor_is_not_ahead(mentor_level, phrase):
    # a program without a minimum level gap scores mentors at or below the mentee's level too
    rule = SeniorityRule(min_level_gap=-1_000)
    detail = factor_value(mentee("e", level=1), mentor("r", level=mentor_level), Factor.SENIORITY, seniority=rule)
    assert detail.detail == phrase


def test_counts_of_one_read_in_the_singular():
    a = mentee(
        "e",
        needs={"writing": CRITICAL, "career": IMPORTANT},
        interests=frozenset({"chess"}),
        goal_tags=frozenset({"publish"}),
    )
    b = mentor(
        "r", offers=frozenset({"career"}), interests=frozenset({"chess", "go"}), goal_tags=frozenset({"publish"})
    )
    score = score_pair(a, b, policy())
    assert score.factor(Factor.NEEDS).detail == (
        "does not cover the mentee's critical need but covers their important need (career)"
    )
    assert score.factor(Factor.INTERESTS).detail == "1 shared interest (chess)"
    assert score.factor(Factor.GOALS).detail == "shares the mentee's goal (publish)"


def test_the_explanation_stays_within_the_contracts_maximum_length_with_the_longest_labels_and_tags():
    keys = [f"function_{k}" for k in range(8)]
    tags = frozenset(f"{k}" * 64 for k in "abcdefgh")
    a = mentee(
        "e",
        needs={k: CRITICAL if n % 2 else IMPORTANT for n, k in enumerate(keys)},
        interests=tags,
        goal_tags=tags,
        skills_wanted=tags,
    )
    b = mentor("r", offers=frozenset(keys), interests=tags, goal_tags=tags, skills=tags)
    labels = {k: f"{k} " + "x" * 190 for k in keys}
    explanation = score_pair(a, b, policy(function_labels=labels)).explanation
    (max_length,) = (m.max_length for m in MatchProposed.model_fields["explanation"].metadata)
    assert len(explanation) <= max_length
    assert explanation.endswith("…")
