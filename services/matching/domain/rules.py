"""Hard rules: pairs that must never be proposed, each exclusion with a reason code.

`check_pair` answers for one pair; `exclusion_masks` answers for a block of mentees x mentors at once (numpy), with
the same definitions, so a round can both respect the rules and say why a mentee stayed unmatched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from services.matching.domain.encoding import SideArrays
from services.matching.domain.model import (
    CampusRule,
    MatchHistory,
    MentorCapacity,
    Participant,
    ProgramPolicy,
)

BoolMatrix = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.int64]


class ExclusionReason(StrEnum):
    SAME_PERSON = "same_person"
    OTHER_ORGANISATION = "other_organisation"
    OTHER_PROGRAM = "other_program"
    MENTOR_HAS_NO_FREE_SLOT = "mentor_has_no_free_slot"
    MENTEE_HAS_ENOUGH_MENTORS = "mentee_has_enough_mentors"
    CAMPUS_RULE = "campus_rule"
    BLOCKED_BY_MENTEE = "blocked_by_mentee"
    BLOCKED_BY_MENTOR = "blocked_by_mentor"
    SAME_REPORTING_LINE = "same_reporting_line"
    SAME_TEAM = "same_team"
    ENDED_OR_DECLINED_BEFORE = "ended_or_declined_before"
    ALREADY_MATCHED = "already_matched"
    MENTOR_NOT_AHEAD = "mentor_not_ahead"
    # Two codes, not one: a coordinator fixes a level gap and a tenure gap in different places of the policy.
    # Reports stored before the split say "mentor_too_far_ahead" for either.
    MENTOR_LEVEL_TOO_FAR_AHEAD = "mentor_level_too_far_ahead"
    MENTOR_TENURE_TOO_FAR_AHEAD = "mentor_tenure_too_far_ahead"

    @property
    def phrase(self) -> str:
        """What excluded a mentor, for a coordinator's round report: "2 <phrase>" reads as a sentence."""
        return _EXCLUSION_PHRASES[self]


_EXCLUSION_PHRASES: dict[ExclusionReason, str] = {
    ExclusionReason.SAME_PERSON: "the mentee themselves",
    ExclusionReason.OTHER_ORGANISATION: "in another organisation",
    ExclusionReason.OTHER_PROGRAM: "not enrolled in this program",
    ExclusionReason.MENTOR_HAS_NO_FREE_SLOT: "with no free mentoring slot",
    ExclusionReason.MENTEE_HAS_ENOUGH_MENTORS: "beyond the number of mentors the mentee may have",
    ExclusionReason.CAMPUS_RULE: "on another campus (the program or the mentee asks for the same campus)",
    ExclusionReason.BLOCKED_BY_MENTEE: "blocked by the mentee",
    ExclusionReason.BLOCKED_BY_MENTOR: "who blocked the mentee",
    ExclusionReason.SAME_REPORTING_LINE: "in the mentee's reporting line",
    ExclusionReason.SAME_TEAM: "in the mentee's team",
    ExclusionReason.ENDED_OR_DECLINED_BEFORE: "matched with the mentee before (ended or declined)",
    ExclusionReason.ALREADY_MATCHED: "already matched with the mentee",
    ExclusionReason.MENTOR_NOT_AHEAD: "not far enough ahead (role level or tenure)",
    ExclusionReason.MENTOR_LEVEL_TOO_FAR_AHEAD: (
        "too far ahead in role level (more levels above the mentee than the program allows)"
    ),
    ExclusionReason.MENTOR_TENURE_TOO_FAR_AHEAD: (
        "too far ahead in tenure (started longer before the mentee than the program allows)"
    ),
}


#: Exclusions a mentee is not told of (coordinators are): whom a mentor blocked is that mentor's own business.
HIDDEN_FROM_MENTEE = frozenset({ExclusionReason.BLOCKED_BY_MENTOR})


def describe_exclusions(exclusions: Mapping[ExclusionReason, int], most: int = 3) -> str:
    """Why no mentor passes the hard rules, in words: the `most` commonest reasons, each with its count and code.

    The one wording of round reports and short lists. A mentor failing several rules counts under each, so the parts
    may add up to more than the mentors.
    """
    parts = "; ".join(
        f"{count} {reason.phrase} [{reason.value}]" for reason, count in Counter(exclusions).most_common(most)
    )
    return f"no mentor passes the hard rules: {parts}" if parts else "no mentor passes the hard rules"


def campus_required(mentee: Participant, policy: ProgramPolicy) -> bool:
    return policy.campus_rule is CampusRule.SAME or mentee.same_campus_only


def same_reporting_line(mentee: Participant, mentor: Participant) -> bool:
    """Supervisor and report (at any depth of the chain), or two reports of the same manager."""
    if mentor.person_id in mentee.manager_chain or mentee.person_id in mentor.manager_chain:
        return True
    return mentee.manager_id is not None and mentee.manager_id == mentor.manager_id


def check_pair(
    mentee: Participant,
    mentor: Participant,
    policy: ProgramPolicy,
    history: MatchHistory = MatchHistory(),
    capacity: MentorCapacity | None = None,
    mentee_active_mentors: int | None = None,
) -> tuple[ExclusionReason, ...]:
    """Every hard rule the pair breaks (empty: the pair may be proposed)."""
    reasons: list[ExclusionReason] = []
    if mentee.person_id == mentor.person_id:
        reasons.append(ExclusionReason.SAME_PERSON)
    if policy.organisation_id != mentee.organisation_id or policy.organisation_id != mentor.organisation_id:
        reasons.append(ExclusionReason.OTHER_ORGANISATION)
    if policy.program_id != mentee.program_id or policy.program_id != mentor.program_id:
        reasons.append(ExclusionReason.OTHER_PROGRAM)
    if capacity is not None and capacity.free_slots <= 0:
        reasons.append(ExclusionReason.MENTOR_HAS_NO_FREE_SLOT)
    active = history.active_mentor_count(mentee.person_id) if mentee_active_mentors is None else mentee_active_mentors
    if active >= policy.mentors_per_mentee:
        reasons.append(ExclusionReason.MENTEE_HAS_ENOUGH_MENTORS)
    if campus_required(mentee, policy) and (mentee.campus_id is None or mentee.campus_id != mentor.campus_id):
        reasons.append(ExclusionReason.CAMPUS_RULE)
    if mentor.person_id in mentee.blocked_ids:
        reasons.append(ExclusionReason.BLOCKED_BY_MENTEE)
    if mentee.person_id in mentor.blocked_ids:
        reasons.append(ExclusionReason.BLOCKED_BY_MENTOR)
    if policy.exclude_same_reporting_line and same_reporting_line(mentee, mentor):
        reasons.append(ExclusionReason.SAME_REPORTING_LINE)
    if policy.exclude_same_team and mentee.team_id is not None and mentee.team_id == mentor.team_id:
        reasons.append(ExclusionReason.SAME_TEAM)
    if history.never_again(mentee.person_id, mentor.person_id):
        reasons.append(ExclusionReason.ENDED_OR_DECLINED_BEFORE)
    if history.is_active(mentee.person_id, mentor.person_id):
        reasons.append(ExclusionReason.ALREADY_MATCHED)
    rule = policy.seniority
    gap = mentor.role_level - mentee.role_level
    lead_days = (mentee.tenure_start - mentor.tenure_start).days
    if gap < rule.min_level_gap or (rule.min_tenure_lead_days is not None and lead_days < rule.min_tenure_lead_days):
        reasons.append(ExclusionReason.MENTOR_NOT_AHEAD)
    if rule.max_level_gap is not None and gap > rule.max_level_gap:
        reasons.append(ExclusionReason.MENTOR_LEVEL_TOO_FAR_AHEAD)
    if rule.max_tenure_lead_days is not None and lead_days > rule.max_tenure_lead_days:
        reasons.append(ExclusionReason.MENTOR_TENURE_TOO_FAR_AHEAD)
    return tuple(reasons)


@dataclass(frozen=True, slots=True)
class PairwiseExclusions:
    """The rules that concern individual pairs (ids, not attributes), as index pairs into a cohort.

    Built once per cohort from blocked lists, reporting chains and history, so the masks stay vectorised.
    """

    by_reason: dict[ExclusionReason, tuple[IndexArray, IndexArray]]

    @classmethod
    def build(
        cls,
        mentees: Sequence[Participant],
        mentors: Sequence[Participant],
        policy: ProgramPolicy,
        history: MatchHistory,
    ) -> PairwiseExclusions:
        mentee_index = {p.person_id: i for i, p in enumerate(mentees)}
        mentor_index = {p.person_id: j for j, p in enumerate(mentors)}
        pairs: dict[ExclusionReason, list[tuple[int, int]]] = {}

        def add(reason: ExclusionReason, mentee_id: str, mentor_id: str) -> None:
            i, j = mentee_index.get(mentee_id), mentor_index.get(mentor_id)
            if i is not None and j is not None:
                pairs.setdefault(reason, []).append((i, j))

        for mentee in mentees:
            if mentee.person_id in mentor_index:
                add(ExclusionReason.SAME_PERSON, mentee.person_id, mentee.person_id)
            for blocked in mentee.blocked_ids:
                add(ExclusionReason.BLOCKED_BY_MENTEE, mentee.person_id, blocked)
            if policy.exclude_same_reporting_line:
                for boss in mentee.manager_chain:
                    add(ExclusionReason.SAME_REPORTING_LINE, mentee.person_id, boss)
        for mentor in mentors:
            for blocked in mentor.blocked_ids:
                add(ExclusionReason.BLOCKED_BY_MENTOR, blocked, mentor.person_id)
            if policy.exclude_same_reporting_line:
                for boss in mentor.manager_chain:
                    add(ExclusionReason.SAME_REPORTING_LINE, boss, mentor.person_id)
        for a, b in history.ended_or_declined:
            add(ExclusionReason.ENDED_OR_DECLINED_BEFORE, a, b)
            add(ExclusionReason.ENDED_OR_DECLINED_BEFORE, b, a)
        for mentee_id, mentor_id in history.active:
            add(ExclusionReason.ALREADY_MATCHED, mentee_id, mentor_id)
        return cls(
            by_reason={
                reason: (
                    np.array([i for i, _ in found], dtype=np.int64),
                    np.array([j for _, j in found], dtype=np.int64),
                )
                for reason, found in pairs.items()
            }
        )


def mentee_slots(mentees: Sequence[Participant], policy: ProgramPolicy, history: MatchHistory) -> IndexArray:
    """How many more mentors each mentee may get in this round."""
    active = Counter(mentee_id for mentee_id, _ in history.active)
    return np.array([max(0, policy.mentors_per_mentee - active[p.person_id]) for p in mentees], dtype=np.int64)


def exclusion_masks(
    mentees: SideArrays,
    mentors: SideArrays,
    policy: ProgramPolicy,
    pairwise: PairwiseExclusions,
    mentor_free_slots: IndexArray,
    mentee_free_slots: IndexArray,
    rows: slice | None = None,
) -> dict[ExclusionReason, BoolMatrix]:
    """For mentees[rows] x all mentors: one boolean matrix per reason (True = excluded for that reason)."""
    rows = rows or slice(0, mentees.size)
    start, stop, _ = rows.indices(mentees.size)
    n, m = stop - start, mentors.size
    masks: dict[ExclusionReason, BoolMatrix] = {}

    def put(reason: ExclusionReason, mask: npt.NDArray[np.bool_]) -> None:
        full = np.broadcast_to(mask, (n, m))
        if full.any():
            masks[reason] = masks[reason] | full if reason in masks else full.copy()

    put(ExclusionReason.OTHER_ORGANISATION, ~mentees.org_ok[rows][:, None] | ~mentors.org_ok[None, :])
    put(ExclusionReason.OTHER_PROGRAM, ~mentees.program_ok[rows][:, None] | ~mentors.program_ok[None, :])
    put(ExclusionReason.MENTOR_HAS_NO_FREE_SLOT, (mentor_free_slots <= 0)[None, :])
    put(ExclusionReason.MENTEE_HAS_ENOUGH_MENTORS, (mentee_free_slots[rows] <= 0)[:, None])
    needs_campus = (policy.campus_rule is CampusRule.SAME) | mentees.same_campus_only[rows]
    mentee_campus = mentees.campus[rows][:, None]
    same_campus = (mentee_campus == mentors.campus[None, :]) & (mentee_campus >= 0)
    put(ExclusionReason.CAMPUS_RULE, needs_campus[:, None] & ~same_campus)
    if policy.exclude_same_team:
        team = mentees.team[rows][:, None]
        put(ExclusionReason.SAME_TEAM, (team == mentors.team[None, :]) & (team >= 0))
    if policy.exclude_same_reporting_line:
        manager = mentees.manager[rows][:, None]
        put(ExclusionReason.SAME_REPORTING_LINE, (manager == mentors.manager[None, :]) & (manager >= 0))
    rule = policy.seniority
    gap = mentors.level[None, :] - mentees.level[rows][:, None]
    lead = mentees.tenure_day[rows][:, None] - mentors.tenure_day[None, :]
    not_ahead = gap < rule.min_level_gap
    if rule.min_tenure_lead_days is not None:
        not_ahead = not_ahead | (lead < rule.min_tenure_lead_days)
    put(ExclusionReason.MENTOR_NOT_AHEAD, not_ahead)
    if rule.max_level_gap is not None:
        put(ExclusionReason.MENTOR_LEVEL_TOO_FAR_AHEAD, gap > rule.max_level_gap)
    if rule.max_tenure_lead_days is not None:
        put(ExclusionReason.MENTOR_TENURE_TOO_FAR_AHEAD, lead > rule.max_tenure_lead_days)
    for reason, (pair_rows, pair_cols) in pairwise.by_reason.items():
        inside = (pair_rows >= start) & (pair_rows < stop)
        if inside.any():
            mask = np.zeros((n, m), dtype=np.bool_)
            mask[pair_rows[inside] - start, pair_cols[inside]] = True
            put(reason, mask)
    return masks


def feasible_block(
    mentees: SideArrays,
    mentors: SideArrays,
    policy: ProgramPolicy,
    pairwise: PairwiseExclusions,
    mentor_free_slots: IndexArray,
    mentee_free_slots: IndexArray,
    rows: slice | None = None,
) -> BoolMatrix:
    """True where no hard rule excludes the pair."""
    masks = exclusion_masks(mentees, mentors, policy, pairwise, mentor_free_slots, mentee_free_slots, rows)
    start, stop, _ = (rows or slice(0, mentees.size)).indices(mentees.size)
    excluded = np.zeros((stop - start, mentors.size), dtype=np.bool_)
    for mask in masks.values():
        excluded |= mask
    return ~excluded
