"""Mentee chooses: a ranked, explained short list of mentors, with exposure spread across the pool.

A popular mentor would otherwise top everyone's list and then have to decline most requests. Each mentor may appear
on at most `exposure_limit` open short lists (free slots x (1 + the program's margin)); the caller passes how many
open lists show each mentor now, and mentors at their limit are passed over for the next best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.matching.domain.encoding import Embedder, PoolVocabulary, SideArrays, encode_side
from services.matching.domain.model import MatchHistory, MentorCapacity, Participant, ProgramPolicy
from services.matching.domain.rules import ExclusionReason, PairwiseExclusions, exclusion_masks
from services.matching.domain.scoring import BlockScorer, MentorSideMatrices, PairScore, score_pair


@dataclass(frozen=True, slots=True)
class ShortlistEntry:
    rank: int  # 1 = best
    mentor_id: str
    score: PairScore


@dataclass(frozen=True, slots=True)
class Shortlist:
    mentee_id: str
    entries: tuple[ShortlistEntry, ...]
    feasible_mentors: int  # mentors no hard rule excludes (with a free slot)
    passed_over_for_exposure: int  # better-scoring mentors left out because they are shown enough already
    exclusions: Mapping[ExclusionReason, int] = field(default_factory=dict)  # mentors excluded by each hard rule


def exposure_limit(free_slots: int, margin: float) -> int:
    """How many open short lists may show a mentor with this many free slots."""
    if free_slots <= 0:
        return 0
    return max(free_slots, math.floor(free_slots * (1 + margin)))


class MentorPool:
    """The mentors of one program, encoded once so each short list costs one vectorised row."""

    def __init__(
        self,
        mentors: Sequence[Participant],
        capacities: Mapping[str, MentorCapacity],
        policy: ProgramPolicy,
        embedder: Embedder | None = None,
    ) -> None:
        self.mentors = tuple(mentors)
        self.policy = policy
        self.embedder = embedder
        self.vocabulary = PoolVocabulary.from_mentors(self.mentors)
        self.side: SideArrays = encode_side(self.mentors, self.vocabulary, policy, embedder)
        # the mentor half of the score products, for the mentors' own levels and styles (a mentee with a level or
        # style no mentor has gets a one-off universe instead)
        self.matrices = MentorSideMatrices.for_cohort(self.side, self.side, policy)
        self.index = {m.person_id: j for j, m in enumerate(self.mentors)}
        self.free_slots = np.array(
            [capacities[m.person_id].free_slots if m.person_id in capacities else 0 for m in self.mentors],
            dtype=np.int64,
        ).reshape(len(self.mentors))
        self.limits = np.array(
            [exposure_limit(int(f), policy.exposure_margin) for f in self.free_slots], dtype=np.int64
        ).reshape(len(self.mentors))
        # who blocked whom, and whose reporting chain holds whom, looked up per mentee without scanning the pool
        self._blocked_by: dict[str, list[int]] = {}
        self._chain_holds: dict[str, list[int]] = {}
        for j, mentor in enumerate(self.mentors):
            for person in mentor.blocked_ids:
                self._blocked_by.setdefault(person, []).append(j)
            for boss in mentor.manager_chain:
                self._chain_holds.setdefault(boss, []).append(j)

    def _pairwise(self, mentee: Participant, history: MatchHistory) -> PairwiseExclusions:
        found: dict[ExclusionReason, list[int]] = {}

        def add(reason: ExclusionReason, columns: Sequence[int]) -> None:
            if columns:
                found.setdefault(reason, []).extend(columns)

        def ids(people: Sequence[str] | frozenset[str]) -> list[int]:
            return [self.index[p] for p in people if p in self.index]

        add(ExclusionReason.SAME_PERSON, ids([mentee.person_id]))
        add(ExclusionReason.BLOCKED_BY_MENTEE, ids(mentee.blocked_ids))
        add(ExclusionReason.BLOCKED_BY_MENTOR, self._blocked_by.get(mentee.person_id, []))
        if self.policy.exclude_same_reporting_line:
            add(ExclusionReason.SAME_REPORTING_LINE, ids(mentee.manager_chain))
            add(ExclusionReason.SAME_REPORTING_LINE, self._chain_holds.get(mentee.person_id, []))
        me = mentee.person_id
        add(
            ExclusionReason.ENDED_OR_DECLINED_BEFORE,
            ids([b if a == me else a for a, b in history.ended_or_declined if me in (a, b)]),
        )
        add(ExclusionReason.ALREADY_MATCHED, ids([b for a, b in history.active if a == me]))
        return PairwiseExclusions(
            by_reason={
                reason: (np.zeros(len(cols), dtype=np.int64), np.array(cols, dtype=np.int64))
                for reason, cols in found.items()
            }
        )

    def feasible_and_scores(
        self, mentee: Participant, history: MatchHistory = MatchHistory()
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        feasible, scores, _ = self._evaluate(mentee, history)
        return feasible, scores

    def _evaluate(
        self, mentee: Participant, history: MatchHistory
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], dict[ExclusionReason, int]]:
        """Which mentors the hard rules allow, every mentor's score, and how many mentors each rule excluded."""
        row = encode_side([mentee], self.vocabulary, self.policy, self.embedder)
        active = sum(1 for a, _ in history.active if a == mentee.person_id)
        mentee_free = np.array([max(0, self.policy.mentors_per_mentee - active)], dtype=np.int64)
        masks = exclusion_masks(
            row, self.side, self.policy, self._pairwise(mentee, history), self.free_slots, mentee_free
        )
        excluded = np.zeros(len(self.mentors), dtype=np.bool_)
        exclusions: dict[ExclusionReason, int] = {}
        for reason, mask in masks.items():
            excluded |= mask[0]
            if count := int(np.count_nonzero(mask[0])):
                exclusions[reason] = count
        scores = BlockScorer(row, self.side, self.policy, self.matrices).score()[0]
        return ~excluded, scores, exclusions

    def shortlist(
        self,
        mentee: Participant,
        exposure: Mapping[str, int],
        history: MatchHistory = MatchHistory(),
        size: int | None = None,
    ) -> Shortlist:
        """The best `size` (default: the program's proposals per mentee) feasible mentors under their exposure cap."""
        size = size or self.policy.proposals_per_mentee
        feasible, scores, exclusions = self._evaluate(mentee, history)
        shown = np.array([exposure.get(m.person_id, 0) for m in self.mentors], dtype=np.int64).reshape(
            len(self.mentors)
        )
        open_to_show = feasible & (shown < self.limits)
        chosen = self._best(scores, open_to_show, size)
        threshold = scores[chosen[-1]] if len(chosen) == size else -1.0
        passed_over = int(np.count_nonzero(feasible & ~open_to_show & (scores > threshold)))
        entries = tuple(
            ShortlistEntry(
                rank=rank,
                mentor_id=self.mentors[j].person_id,
                score=score_pair(mentee, self.mentors[j], self.policy, self.embedder),
            )
            for rank, j in enumerate(chosen.tolist(), start=1)
        )
        return Shortlist(
            mentee_id=mentee.person_id,
            entries=entries,
            feasible_mentors=int(feasible.sum()),
            passed_over_for_exposure=passed_over,
            exclusions=exclusions,
        )

    @staticmethod
    def _best(scores: npt.NDArray[np.float64], allowed: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.int64]:
        candidates = np.flatnonzero(allowed)
        # best first; equal scores in pool order, so lists are stable
        order = np.lexsort((candidates, -scores[candidates]))[:size]
        return candidates[order].astype(np.int64)


def build_shortlist(
    mentee: Participant,
    mentors: Sequence[Participant],
    capacities: Mapping[str, MentorCapacity],
    policy: ProgramPolicy,
    exposure: Mapping[str, int],
    history: MatchHistory = MatchHistory(),
    embedder: Embedder | None = None,
) -> Shortlist:
    """One-off short list (encodes the pool each call; keep a `MentorPool` to serve many mentees)."""
    return MentorPool(mentors, capacities, policy, embedder).shortlist(mentee, exposure, history)
