"""Cohort rounds: the assignment of mentees to mentors that maximises total compatibility, proven optimal.

The problem is a bipartite b-matching (mentee i takes at most `mentee_caps[i]` mentors, mentor j at most
`mentor_caps[j]` mentees, each pair at most once), an integral min-cost flow:

    S --(cap c_i, 0)--> mentee i --(cap 1, -w_ij)--> mentor j --(cap k_j, 0)--> T,   S --(0)--> T (unmatched)

Scores are scaled to integers (`SCORE_SCALE`), so the flow is exact. For "max_matched_then_score" every pair weighs
`M + w_ij` with M larger than any possible total score, which makes the optimum lexicographic (count, then score).

Speed comes from column generation: OR-Tools' min-cost flow solves the problem on a candidate subset (each mentee's
top-K mentors and each mentor's best mentees per free slot); node potentials (shortest distances on the residual
graph, a vectorised Bellman-Ford) then price every excluded pair of the full matrix with numpy. A pair with positive
reduced cost could improve the solution: the best few per mentee are added and the subset is solved again, until
none is left. The same potentials give a Lagrangian upper bound that
holds for the full problem; when it equals the objective, the round is proven optimal (the certificate).
"""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from ortools.graph.python import min_cost_flow

from services.matching.domain.encoding import Embedder, PoolVocabulary, encode_side
from services.matching.domain.model import (
    MatchHistory,
    MentorCapacity,
    Objective,
    Participant,
    ProgramPolicy,
)
from services.matching.domain.rules import (
    ExclusionReason,
    PairwiseExclusions,
    describe_exclusions,
    exclusion_masks,
    mentee_slots,
)
from services.matching.domain.scoring import BlockScorer, PairScore, score_pair

SCORE_SCALE = 10_000  # scores become integers 0..10000: exact arithmetic in the flow and the certificate
INFEASIBLE = -1
ROW_BLOCK_CELLS = 4_000_000  # cells per numpy block: bounds temporary memory whatever the cohort size

IntMatrix = npt.NDArray[np.integer]
IntVector = npt.NDArray[np.int64]


SCORING_THREADS = min(4, os.cpu_count() or 1)


def _row_blocks(rows: int, columns: int) -> list[slice]:
    step = max(1, ROW_BLOCK_CELLS // max(1, columns))
    return [slice(start, min(rows, start + step)) for start in range(0, rows, step)]


def _eligible(block: npt.NDArray[np.integer], objective: Objective) -> npt.NDArray[np.bool_]:
    """Pairs worth matching: feasible ones; for max_total_score only those with a positive score."""
    if objective is Objective.MAX_TOTAL_SCORE:
        return block > 0
    return block >= 0


@dataclass(frozen=True, slots=True)
class Certificate:
    """Why the assignment is optimal (or how far from optimal it can be at most), in scaled-weight units."""

    objective_weight: int  # sum of pair weights (with the matched bonus M in lexicographic mode)
    upper_bound: int  # Lagrangian / LP bound over ALL eligible pairs, valid whatever the candidate subset
    pricing_rounds: int
    candidate_pairs: int  # pairs in the final solved subset
    eligible_pairs: int  # pairs the full problem has
    violating_pairs_left: int  # excluded pairs with positive reduced cost at the end (0 when proven)
    statement: str

    @property
    def gap(self) -> int:
        return self.upper_bound - self.objective_weight

    @property
    def proven_optimal(self) -> bool:
        return self.gap == 0 and self.violating_pairs_left == 0


@dataclass(frozen=True, slots=True)
class Assignment:
    mentee_index: IntVector
    mentor_index: IntVector
    scaled_scores: IntVector
    certificate: Certificate | None = None  # None for heuristics (greedy)

    @property
    def total_scaled(self) -> int:
        return int(self.scaled_scores.sum())

    @property
    def pairs(self) -> int:
        return len(self.mentee_index)


def matched_bonus(mentee_caps: IntVector) -> int:
    """M for the lexicographic objective: more than any achievable total score, so one more match always wins."""
    return int(SCORE_SCALE * max(1, int(mentee_caps.sum())) + 1)


def _top_candidates(weights: IntMatrix, objective: Objective, per_mentee: int) -> tuple[IntVector, IntVector]:
    """Each mentee's `per_mentee` best eligible mentors (ties broken arbitrarily)."""
    n, m = weights.shape
    rows_out: list[IntVector] = [np.zeros(0, dtype=np.int64)]
    cols_out: list[IntVector] = [np.zeros(0, dtype=np.int64)]
    k = min(per_mentee, m)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    for block_rows in _row_blocks(n, m):
        block = np.asarray(weights[block_rows], dtype=np.int32)
        ranked = np.where(_eligible(block, objective), block, np.int32(-(2**30)))
        top = np.argpartition(-ranked, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (len(block), 1))
        keep = _eligible(np.take_along_axis(block, top, axis=1), objective)
        local_rows = np.broadcast_to(np.arange(len(block))[:, None], top.shape)
        rows_out.append(local_rows[keep].astype(np.int64) + block_rows.start)
        cols_out.append(top[keep].astype(np.int64))
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _residual_potentials(nodes: int, tails: IntVector, heads: IntVector, costs: IntVector) -> IntVector:
    """Shortest distances from a virtual root joined to every node by a 0-cost arc (so all start at 0).

    On the residual graph of an optimal flow there is no negative cycle, and these distances are potentials under
    which every residual arc has a non-negative reduced cost. A frontier-based Bellman-Ford (SPFA-like), vectorised:
    each pass relaxes only the arcs leaving nodes whose distance just dropped. Hand-written because scipy's
    Bellman-Ford always makes |V| full passes (seconds on a 10k-mentee round) and OR-Tools does not expose its
    potentials.
    """
    order = np.argsort(tails, kind="stable")
    tails, heads, costs = tails[order], heads[order], costs[order]
    first_arc = np.searchsorted(tails, np.arange(nodes + 1))
    distance = np.zeros(nodes, dtype=np.int64)
    frontier = np.arange(nodes)
    for _ in range(nodes + 1):
        starts = first_arc[frontier]
        counts = first_arc[frontier + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return distance
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        candidate = distance[tails[offsets]] + costs[offsets]
        targets = heads[offsets]
        better = candidate < distance[targets]
        if not better.any():
            return distance
        np.minimum.at(distance, targets[better], candidate[better])
        frontier = np.unique(targets[better])
    raise RuntimeError("negative cycle in the residual graph: the flow is not optimal")


def _top_per_mentor(weights: IntMatrix, objective: Objective, per_mentor: IntVector) -> tuple[IntVector, IntVector]:
    """Each mentor's `per_mentor[j]` best eligible mentees (a running top-L over row blocks)."""
    n, m = weights.shape
    limit = int(min(n, per_mentor.max(initial=0)))
    if limit == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    best_rows = np.zeros((0, m), dtype=np.int64)
    best_values = np.zeros((0, m), dtype=np.int32)
    for block_rows in _row_blocks(n, m):
        block = np.asarray(weights[block_rows], dtype=np.int32)
        block = np.where(_eligible(block, objective), block, np.int32(-(2**30)))
        values = np.concatenate([best_values, block])
        rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(block_rows.start, block_rows.stop)[:, None], block.shape)]
        )
        if len(values) > limit:
            top = np.argpartition(-values, limit - 1, axis=0)[:limit]
            values, rows = np.take_along_axis(values, top, axis=0), np.take_along_axis(rows, top, axis=0)
        best_values, best_rows = values, rows
    order = np.argsort(-best_values, axis=0, kind="stable")
    best_values, best_rows = (
        np.take_along_axis(best_values, order, axis=0),
        np.take_along_axis(best_rows, order, axis=0),
    )
    keep = (best_values > -(2**30)) & (np.arange(len(best_values))[:, None] < per_mentor[None, :])
    return best_rows[keep], np.broadcast_to(np.arange(m)[None, :], keep.shape)[keep].astype(np.int64)


def _best_per_row(gain: npt.NDArray[np.int64], per_row: int) -> tuple[IntVector, IntVector]:
    """Up to `per_row` positive entries with the largest gain in each row (adding every violating pair at once
    bloats the flow: early potentials are loose and price far too many pairs as improving)."""
    rows_with = np.flatnonzero((gain > 0).any(axis=1))
    sub = gain[rows_with]
    k = min(per_row, sub.shape[1])
    top = (
        np.argpartition(-sub, k - 1, axis=1)[:, :k]
        if k < sub.shape[1]
        else np.tile(np.arange(sub.shape[1]), (len(sub), 1))
    )
    keep = np.take_along_axis(sub, top, axis=1) > 0
    rows = np.broadcast_to(rows_with[:, None], top.shape)[keep]
    return rows.astype(np.int64), top[keep].astype(np.int64)


@dataclass(slots=True)
class _FlowSolution:
    flow_on_pairs: IntVector
    objective_weight: int
    potentials: IntVector  # per node: mentees 0..n-1, mentors n..n+m-1, S, T
    bound_on_subset: int  # upper bound (max weight) from the potentials over the subset network


def _solve_subset(
    rows: IntVector,
    cols: IntVector,
    pair_weight: IntVector,
    mentee_caps: IntVector,
    mentor_caps: IntVector,
) -> _FlowSolution:
    n, m = len(mentee_caps), len(mentor_caps)
    source, sink = n + m, n + m + 1
    supply = int(mentee_caps.sum())
    tails = np.concatenate([np.full(n, source), rows, n + np.arange(m), [source]]).astype(np.int32)
    heads = np.concatenate([np.arange(n), n + cols, np.full(m, sink), [sink]]).astype(np.int32)
    capacities = np.concatenate([mentee_caps, np.ones(len(rows), dtype=np.int64), mentor_caps, [supply]])
    costs = np.concatenate([np.zeros(n, dtype=np.int64), -pair_weight, np.zeros(m + 1, dtype=np.int64)])
    capacities = capacities.astype(np.int64)
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = np.asarray(solver.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs), dtype=np.int32)
    solver.set_node_supply(source, supply)
    solver.set_node_supply(sink, -supply)
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    flows = np.asarray(solver.flows(arcs), dtype=np.int64)

    # residual graph: forward arcs with room left, backward arcs carrying flow (cost negated)
    forward, backward = flows < capacities, flows > 0
    res_tails = np.concatenate([tails[forward], heads[backward]]).astype(np.int64)
    res_heads = np.concatenate([heads[forward], tails[backward]]).astype(np.int64)
    res_costs = np.concatenate([costs[forward], -costs[backward]])
    potentials = _residual_potentials(n + m + 2, res_tails, res_heads, res_costs)

    # Lagrangian bound: for any potentials p, min cost >= -sum_v p_v b_v + sum_a cap_a * min(0, reduced cost_a)
    reduced = costs + potentials[tails] - potentials[heads]
    lower = -(potentials[source] * supply - potentials[sink] * supply) + int(
        (capacities * np.minimum(0, reduced)).sum()
    )
    return _FlowSolution(
        flow_on_pairs=flows[n : n + len(rows)],
        objective_weight=-int(solver.optimal_cost()),
        potentials=potentials,
        bound_on_subset=-int(lower),
    )


def solve_assignment(
    weights: IntMatrix,
    mentee_caps: npt.ArrayLike,
    mentor_caps: npt.ArrayLike,
    objective: Objective = Objective.MAX_TOTAL_SCORE,
    candidates_per_mentee: int = 16,
    max_pricing_rounds: int = 50,
    added_per_mentee: int = 8,
    candidates_per_mentor_slot: int = 8,
) -> Assignment:
    """Optimal assignment for a scaled score matrix (`INFEASIBLE` = -1 where a hard rule excludes the pair).

    Mentees with no slot and mentors with no capacity are simply never matched.
    """
    n, m = weights.shape
    mentee_room: IntVector = np.asarray(mentee_caps, dtype=np.int64).clip(min=0)
    mentor_room: IntVector = np.asarray(mentor_caps, dtype=np.int64).clip(min=0)
    bonus = matched_bonus(mentee_room) if objective is Objective.MAX_MATCHED_THEN_SCORE else 0
    rows, cols = _top_candidates(weights, objective, candidates_per_mentee)
    if candidates_per_mentor_slot > 0:
        # mentors mostly end up full, so each mentor's own best mentees belong in the first subset too
        extra_rows, extra_cols = _top_per_mentor(weights, objective, mentor_room * candidates_per_mentor_slot)
        flat = np.unique(np.concatenate([rows * m + cols, extra_rows * m + extra_cols]))
        rows, cols = flat // m, flat % m
    usable = (mentee_room[rows] > 0) & (mentor_room[cols] > 0)
    rows, cols = rows[usable], cols[usable]
    eligible_total = 0
    for block_rows in _row_blocks(n, m):
        eligible_block = _eligible(np.asarray(weights[block_rows]), objective)
        eligible_block &= (mentee_room[block_rows] > 0)[:, None] & (mentor_room > 0)[None, :]
        eligible_total += int(np.count_nonzero(eligible_block))

    rounds = 0
    violating = 0
    while True:
        rounds += 1
        pair_weight = np.asarray(weights[rows, cols], dtype=np.int64) + bonus
        solution = _solve_subset(rows, cols, pair_weight, mentee_room, mentor_room)
        mentee_potential = solution.potentials[:n]
        mentor_potential = solution.potentials[n : n + m]
        in_subset = sp.csr_matrix((np.ones(len(rows), dtype=np.bool_), (rows, cols)), shape=(n, m), dtype=np.bool_)
        new_rows: list[IntVector] = []
        new_cols: list[IntVector] = []
        violating = 0
        excess = 0  # sum of positive reduced costs of excluded pairs: what the bound still has to add
        for block_rows in _row_blocks(n, m):
            block = np.asarray(weights[block_rows], dtype=np.int64)
            eligible = _eligible(block, objective)
            eligible &= (mentee_room[block_rows] > 0)[:, None] & (mentor_room > 0)[None, :]
            # reduced cost of arc i->j is -w + p_i - p_j; a pair could improve the flow when w > p_i - p_j
            gain = (block + bonus) - (mentee_potential[block_rows][:, None] - mentor_potential[None, :])
            improving = eligible & (gain > 0)
            if improving.any():
                improving &= ~in_subset[block_rows].toarray()
            if improving.any():
                violating += int(np.count_nonzero(improving))
                excess += int(gain[improving].sum())
                found_rows, found_cols = _best_per_row(np.where(improving, gain, 0), added_per_mentee)
                new_rows.append(found_rows + block_rows.start)
                new_cols.append(found_cols)
        if violating == 0 or rounds >= max_pricing_rounds:
            break
        rows = np.concatenate([rows, *new_rows])
        cols = np.concatenate([cols, *new_cols])

    matched = solution.flow_on_pairs > 0
    chosen_rows, chosen_cols = rows[matched], cols[matched]
    upper_bound = solution.bound_on_subset + excess
    objective_weight = solution.objective_weight
    if violating == 0 and upper_bound == objective_weight:
        statement = (
            f"optimal: no excluded pair has positive reduced cost after {rounds} pricing round(s); "
            f"the dual bound equals the objective ({objective_weight})"
        )
    else:
        statement = (
            f"not proven: {violating} excluded pair(s) still priced positive after {rounds} round(s); "
            f"objective {objective_weight}, bound {upper_bound}"
        )
    certificate = Certificate(
        objective_weight=objective_weight,
        upper_bound=upper_bound,
        pricing_rounds=rounds,
        candidate_pairs=len(rows),
        eligible_pairs=eligible_total,
        violating_pairs_left=violating,
        statement=statement,
    )
    order = np.lexsort((chosen_cols, chosen_rows))
    return Assignment(
        mentee_index=chosen_rows[order],
        mentor_index=chosen_cols[order],
        scaled_scores=np.asarray(weights[chosen_rows[order], chosen_cols[order]], dtype=np.int64),
        certificate=certificate,
    )


def greedy_assignment(
    weights: IntMatrix,
    mentee_caps: npt.ArrayLike,
    mentor_caps: npt.ArrayLike,
    objective: Objective = Objective.MAX_TOTAL_SCORE,
    chunk: int = 32,
) -> Assignment:
    """Baseline: repeatedly take the best remaining pair whose mentee and mentor both have room.

    Exact global greedy without sorting all pairs: a heap holds each mentee's best remaining mentor; a mentee whose
    short list runs out re-ranks its row among mentors that still have room (full mentors never reopen).
    """
    mentee_left = np.asarray(mentee_caps, dtype=np.int64).clip(min=0).copy()
    mentor_left = np.asarray(mentor_caps, dtype=np.int64).clip(min=0).copy()
    taken: dict[int, list[int]] = {}
    lists: dict[int, list[int]] = {}

    def refill(i: int) -> int | None:
        row = np.asarray(weights[i], dtype=np.int64)
        open_row = _eligible(row, objective) & (mentor_left > 0)
        open_row[taken.get(i, [])] = False
        candidates = np.flatnonzero(open_row)
        if len(candidates) == 0:
            return None
        k = min(chunk, len(candidates))
        best = candidates[np.argpartition(-row[candidates], k - 1)[:k]]
        best = best[np.argsort(-row[best], kind="stable")]
        lists[i] = [int(j) for j in best[::-1]]  # pop() from the end gives the best
        return int(row[best[0]])

    heap: list[tuple[int, int]] = []
    # first lists in vectorised blocks (the per-row refill is only for mentees whose list runs out)
    rows, cols = _top_candidates(weights, objective, chunk)
    rows, cols = rows[mentor_left[cols] > 0], cols[mentor_left[cols] > 0]
    values = np.asarray(weights[rows, cols], dtype=np.int64)
    order = np.lexsort((values, rows))  # by mentee, best last
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(rows)].astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        i = int(rows[start])
        if mentee_left[i] > 0:
            lists[i] = cols[start:end].tolist()
            heap.append((-int(values[end - 1]), i))
    heapq.heapify(heap)
    chosen: list[tuple[int, int]] = []
    while heap:
        _, i = heapq.heappop(heap)
        pending = lists[i]
        while pending and mentor_left[pending[-1]] <= 0:
            pending.pop()
        if not pending:
            top = refill(i)
            if top is not None:
                heapq.heappush(heap, (-top, i))
            continue
        j = pending.pop()
        chosen.append((i, j))
        taken.setdefault(i, []).append(j)
        mentor_left[j] -= 1
        mentee_left[i] -= 1
        if mentee_left[i] > 0:
            while pending and mentor_left[pending[-1]] <= 0:
                pending.pop()
            top = int(weights[i, pending[-1]]) if pending else refill(i)
            if top is not None:
                heapq.heappush(heap, (-top, i))
    chosen.sort()
    chosen_rows = np.array([i for i, _ in chosen], dtype=np.int64)
    chosen_cols = np.array([j for _, j in chosen], dtype=np.int64)
    return Assignment(
        chosen_rows,
        chosen_cols,
        np.asarray(weights[chosen_rows, chosen_cols], dtype=np.int64).reshape(len(chosen_rows)),
    )


# --- the round on participants ------------------------------------------------------------------------------------


class RoundStatus(StrEnum):
    """Where a cohort round stands: its proposals wait for a coordinator's approval, were sent, or lapsed."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    #: Still awaiting approval when its program stopped taking new matches: its proposals lapsed, nothing is sent.
    EXPIRED = "expired"


class UnmatchedReason(StrEnum):
    NO_SLOT_THIS_ROUND = "no_slot_this_round"  # the mentee already holds as many mentors as the program allows
    NO_FEASIBLE_MENTOR = "no_feasible_mentor"  # hard rules exclude every mentor
    NO_POSITIVE_SCORE = "no_positive_score"  # feasible mentors exist, but none scores above 0 (max_total_score)
    FEASIBLE_MENTORS_FULL = "feasible_mentors_full"  # every feasible mentor is filled by the optimal assignment


@dataclass(frozen=True, slots=True)
class UnmatchedMentee:
    mentee_id: str
    reason: UnmatchedReason
    feasible_mentors: int
    exclusions: Mapping[ExclusionReason, int] = field(default_factory=dict)  # mentors excluded by each rule

    def describe(self) -> str:
        if self.reason is UnmatchedReason.NO_FEASIBLE_MENTOR:
            return describe_exclusions(self.exclusions)
        if self.reason is UnmatchedReason.NO_POSITIVE_SCORE:
            return f"{self.feasible_mentors} feasible mentor(s), none with a positive score"
        if self.reason is UnmatchedReason.FEASIBLE_MENTORS_FULL:
            return f"all {self.feasible_mentors} feasible mentor(s) are full in the optimal assignment"
        return "already has as many mentors as the program allows"


@dataclass(frozen=True, slots=True)
class Proposal:
    mentee_id: str
    mentor_id: str
    score: float
    breakdown: PairScore | None = None


@dataclass(frozen=True, slots=True)
class RoundReport:
    objective: Objective
    proposals: tuple[Proposal, ...]
    mentee_count: int
    matched_mentees: int
    total_score: float
    mean_score: float
    min_score: float
    histogram: tuple[int, ...]  # proposals per score decile [0, 0.1), [0.1, 0.2), …, [0.9, 1.0]
    unmatched: tuple[UnmatchedMentee, ...]
    certificate: Certificate
    seconds_scoring: float
    seconds_solving: float

    @property
    def matched_share(self) -> float:
        return self.matched_mentees / self.mentee_count if self.mentee_count else 0.0


@dataclass(frozen=True, slots=True)
class ScoredCohort:
    """The scaled score matrix of a cohort (INFEASIBLE where a hard rule excludes the pair) and its capacities."""

    weights: npt.NDArray[np.int16]
    mentee_caps: IntVector
    mentor_caps: IntVector


def score_cohort(
    mentees: Sequence[Participant],
    mentors: Sequence[Participant],
    capacities: Mapping[str, MentorCapacity],
    policy: ProgramPolicy,
    history: MatchHistory = MatchHistory(),
    embedder: Embedder | None = None,
) -> ScoredCohort:
    vocabulary = PoolVocabulary.from_mentors(mentors)
    mentee_side = encode_side(mentees, vocabulary, policy, embedder)
    mentor_side = encode_side(mentors, vocabulary, policy, embedder)
    pairwise = PairwiseExclusions.build(mentees, mentors, policy, history)
    mentor_caps = np.array(
        [capacities[p.person_id].free_slots if p.person_id in capacities else 0 for p in mentors], dtype=np.int64
    ).reshape(len(mentors))
    mentee_caps = mentee_slots(mentees, policy, history)
    # int16 holds 0..SCORE_SCALE and -1: a 20k x 5k cohort is 200 MB instead of 800 MB of float64
    weights = np.empty((len(mentees), len(mentors)), dtype=np.int16)
    scorer = BlockScorer(mentee_side, mentor_side, policy)

    def score_block(block_rows: slice) -> None:
        scores = scorer.score(block_rows)
        excluded = np.zeros(scores.shape, dtype=np.bool_)
        for mask in exclusion_masks(
            mentee_side, mentor_side, policy, pairwise, mentor_caps, mentee_caps, block_rows
        ).values():
            excluded |= mask
        weights[block_rows] = np.where(excluded, INFEASIBLE, np.rint(scores * SCORE_SCALE)).astype(np.int16)

    # Blocks write disjoint rows and NumPy releases the GIL in its kernels, so threads use every core.
    with ThreadPoolExecutor(max_workers=SCORING_THREADS) as pool:
        list(pool.map(score_block, _row_blocks(len(mentees), len(mentors))))
    return ScoredCohort(weights=weights, mentee_caps=mentee_caps, mentor_caps=mentor_caps)


def run_cohort_round(
    mentees: Sequence[Participant],
    mentors: Sequence[Participant],
    capacities: Mapping[str, MentorCapacity],
    policy: ProgramPolicy,
    history: MatchHistory = MatchHistory(),
    embedder: Embedder | None = None,
    with_breakdown: bool = False,
    candidates_per_mentee: int = 16,
) -> RoundReport:
    """The optimal round for these unmatched mentees and these mentors' free slots, with its quality report."""
    started = time.perf_counter()
    cohort = score_cohort(mentees, mentors, capacities, policy, history, embedder)
    scored = time.perf_counter()
    assignment = solve_assignment(
        cohort.weights, cohort.mentee_caps, cohort.mentor_caps, policy.objective, candidates_per_mentee
    )
    solved = time.perf_counter()
    assert assignment.certificate is not None
    scores = assignment.scaled_scores / SCORE_SCALE
    proposals = tuple(
        Proposal(
            mentee_id=mentees[i].person_id,
            mentor_id=mentors[j].person_id,
            score=float(s),
            breakdown=score_pair(mentees[i], mentors[j], policy, embedder) if with_breakdown else None,
        )
        for i, j, s in zip(assignment.mentee_index, assignment.mentor_index, scores, strict=True)
    )
    matched = np.zeros(len(mentees), dtype=np.bool_)
    matched[assignment.mentee_index] = True
    histogram, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    return RoundReport(
        objective=policy.objective,
        proposals=proposals,
        mentee_count=len(mentees),
        matched_mentees=int(matched.sum()),
        total_score=float(scores.sum()),
        mean_score=float(scores.mean()) if len(scores) else 0.0,
        min_score=float(scores.min()) if len(scores) else 0.0,
        histogram=tuple(int(h) for h in histogram),
        unmatched=_explain_unmatched(mentees, mentors, policy, history, cohort, matched),
        certificate=assignment.certificate,
        seconds_scoring=scored - started,
        seconds_solving=solved - scored,
    )


def _explain_unmatched(
    mentees: Sequence[Participant],
    mentors: Sequence[Participant],
    policy: ProgramPolicy,
    history: MatchHistory,
    cohort: ScoredCohort,
    matched: npt.NDArray[np.bool_],
) -> tuple[UnmatchedMentee, ...]:
    unmatched_rows = np.flatnonzero(~matched)
    if len(unmatched_rows) == 0:
        return ()
    # re-encode only the unmatched mentees to count, per rule, how many mentors each rule excluded
    subset = [mentees[i] for i in unmatched_rows.tolist()]
    vocabulary = PoolVocabulary.from_mentors(mentors)
    subset_side = encode_side(subset, vocabulary, policy)
    mentor_side = encode_side(mentors, vocabulary, policy)
    pairwise = PairwiseExclusions.build(subset, mentors, policy, history)
    counts: dict[ExclusionReason, IntVector] = {}
    for block_rows in _row_blocks(len(subset), len(mentors)):
        masks = exclusion_masks(
            subset_side,
            mentor_side,
            policy,
            pairwise,
            cohort.mentor_caps,
            cohort.mentee_caps[unmatched_rows],
            block_rows,
        )
        for reason, mask in masks.items():
            counts.setdefault(reason, np.zeros(len(subset), dtype=np.int64))[block_rows] += mask.sum(axis=1)
    result: list[UnmatchedMentee] = []
    for position, i in enumerate(unmatched_rows.tolist()):
        row = np.asarray(cohort.weights[i])
        feasible = int(np.count_nonzero(row >= 0))
        exclusions = {reason: int(c[position]) for reason, c in counts.items() if c[position] > 0}
        if cohort.mentee_caps[i] <= 0:
            why = UnmatchedReason.NO_SLOT_THIS_ROUND
        elif feasible == 0:
            why = UnmatchedReason.NO_FEASIBLE_MENTOR
        elif policy.objective is Objective.MAX_TOTAL_SCORE and not (row > 0).any():
            why = UnmatchedReason.NO_POSITIVE_SCORE
        else:
            why = UnmatchedReason.FEASIBLE_MENTORS_FULL
        result.append(UnmatchedMentee(mentees[i].person_id, why, feasible, exclusions))
    return tuple(result)
