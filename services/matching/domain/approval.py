"""Approving a cohort round: re-check every proposal against the program as it is now, before anything is sent.

Between the solve and the approval people leave, block each other, fill up through other matches or lose capacity.
The re-check applies the same hard rules as the solver (`rules.check_pair`), in the round's order of preference
(best score first), and lets each proposal that still passes take its slots, so the proposals sent never exceed a
mentor's capacity or a mentee's mentors-per-mentee together with what is already open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.matching.domain.model import MatchHistory, MentorCapacity, Participant, ProgramPolicy
from services.matching.domain.rules import ExclusionReason, check_pair


class ParticipantGone(StrEnum):
    """A person of the proposal is no longer an active participant of the program in that role."""

    MENTEE_NOT_ACTIVE = "mentee_not_active"
    MENTOR_NOT_ACTIVE = "mentor_not_active"


SkipReason = ExclusionReason | ParticipantGone


@dataclass(frozen=True, slots=True)
class PendingProposal:
    proposal_id: str
    mentee_id: str
    mentor_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Recheck:
    """Which proposals may still be sent, and why each other one may not."""

    passed: tuple[PendingProposal, ...]
    skipped: tuple[tuple[PendingProposal, tuple[SkipReason, ...]], ...]


def recheck_proposals(
    proposals: Sequence[PendingProposal],
    mentees: Mapping[str, Participant],
    mentors: Mapping[str, Participant],
    policy: ProgramPolicy,
    history: MatchHistory,
    capacities: Mapping[str, MentorCapacity],
) -> Recheck:
    """Re-check `proposals` against the current program.

    `history` and `capacities` describe every open pair *except* these proposals (they must not count against
    themselves); a proposal that passes takes a slot of its mentor and of its mentee for the ones after it.
    """
    taken_by_mentor: Counter[str] = Counter()
    taken_by_mentee: Counter[str] = Counter()
    passed: list[PendingProposal] = []
    skipped: list[tuple[PendingProposal, tuple[SkipReason, ...]]] = []
    for proposal in sorted(proposals, key=lambda p: (-p.score, p.mentee_id, p.mentor_id, p.proposal_id)):
        mentee = mentees.get(proposal.mentee_id)
        mentor = mentors.get(proposal.mentor_id)
        gone: list[SkipReason] = []
        if mentee is None:
            gone.append(ParticipantGone.MENTEE_NOT_ACTIVE)
        if mentor is None:
            gone.append(ParticipantGone.MENTOR_NOT_ACTIVE)
        if mentee is None or mentor is None:
            skipped.append((proposal, tuple(gone)))
            continue
        current = capacities.get(mentor.person_id, MentorCapacity(mentor.person_id, 0))
        capacity = MentorCapacity(
            current.person_id, current.capacity, current.active_matches + taken_by_mentor[mentor.person_id]
        )
        held = history.active_mentor_count(mentee.person_id) + taken_by_mentee[mentee.person_id]
        broken = check_pair(mentee, mentor, policy, history, capacity=capacity, mentee_active_mentors=held)
        if broken:
            skipped.append((proposal, broken))
            continue
        passed.append(proposal)
        taken_by_mentor[mentor.person_id] += 1
        taken_by_mentee[mentee.person_id] += 1
    return Recheck(tuple(passed), tuple(skipped))
