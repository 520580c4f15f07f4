"""Cohort rounds: solve off the event loop, store the report and proposals pending approval, approve in bulk.

MatchRoundCompleted is emitted when the coordinator approves the round (together with the MatchProposed events
of the approved proposals): before approval nothing about the round has left the service, and downstream reports
should count the round that was actually sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import matches, rounds
from services.matching.application import matches as match_cases
from services.matching.application.errors import ConflictError
from services.matching.application.program_data import ProgramData
from services.matching.application.translate import contract_breakdown
from services.matching.domain.approval import ParticipantGone, PendingProposal, recheck_proposals
from services.matching.domain.lifecycle import MatchState
from services.matching.domain.rounds import SCORE_SCALE, RoundReport, RoundStatus, UnmatchedReason, run_cohort_round
from services.matching.domain.rules import ExclusionReason
from shared.events.models import MatchRoundCompleted
from shared.events.values import DeclineReason, MatchOrigin, ObjectiveMode, ScoreBucket, UnmatchedReasonCount
from shared.events.values import UnmatchedReason as ContractUnmatched
from shared.ids import new_id
from shared.messaging.outbox import add_events

SOLVER = "ortools.min_cost_flow.column_generation"

_CONTRACT_UNMATCHED = {
    UnmatchedReason.NO_SLOT_THIS_ROUND: ContractUnmatched.CAPACITY_EXHAUSTED,
    UnmatchedReason.NO_FEASIBLE_MENTOR: ContractUnmatched.NO_ELIGIBLE_MENTOR,
    UnmatchedReason.NO_POSITIVE_SCORE: ContractUnmatched.NO_ELIGIBLE_MENTOR,
    UnmatchedReason.FEASIBLE_MENTORS_FULL: ContractUnmatched.NOT_SELECTED_BY_OPTIMUM,
}


def _report_json(report: RoundReport, mentor_count: int, capacity_total: int) -> dict[str, Any]:
    certificate = report.certificate
    scores = [p.score for p in report.proposals]
    return {
        "objective": report.objective.value,
        "mentee_count": report.mentee_count,
        "mentor_count": mentor_count,
        "capacity_total": capacity_total,
        "proposal_count": len(report.proposals),
        "matched_mentees": report.matched_mentees,
        "unmatched_count": len(report.unmatched),
        "total_score": round(report.total_score, 6),
        "mean_score": round(report.mean_score, 6) if scores else None,
        "min_score": round(report.min_score, 6) if scores else None,
        "max_score": round(max(scores), 6) if scores else None,
        "distribution": [
            {"lower": i / 10, "upper": (i + 1) / 10, "count": count} for i, count in enumerate(report.histogram)
        ],
        "unmatched": [
            {
                "mentee_person_id": u.mentee_id,
                "reason": _CONTRACT_UNMATCHED[u.reason].value,
                "detail": u.describe(),
                "feasible_mentors": u.feasible_mentors,
                "exclusions": {reason.value: count for reason, count in u.exclusions.items()},
            }
            for u in report.unmatched
        ],
        "certificate": {
            "proven_optimal": certificate.proven_optimal,
            "objective_weight": certificate.objective_weight,
            "upper_bound": certificate.upper_bound,
            "optimality_gap": _gap(certificate.upper_bound, certificate.objective_weight),
            "pricing_rounds": certificate.pricing_rounds,
            "candidate_pairs": certificate.candidate_pairs,
            "eligible_pairs": certificate.eligible_pairs,
            "statement": certificate.statement,
        },
        "solver": SOLVER,
        "seconds_scoring": round(report.seconds_scoring, 4),
        "seconds_solving": round(report.seconds_solving, 4),
    }


def _gap(bound: int, achieved: int) -> float:
    return 0.0 if bound <= 0 else max(0.0, (bound - achieved) / bound)


async def run_round(session: AsyncSession, data: ProgramData, now: datetime) -> uuid.UUID:
    """Solve the program's round for every mentee with a free slot; store it with its proposals pending approval."""
    policy = data.policy
    mentees = [m for m in data.mentees.values() if data.held_by_mentee(m.person_id) < policy.mentors_per_mentee]
    capacities = data.capacities()
    mentors = [m for m in data.mentors.values() if capacities[m.person_id].free_slots > 0]
    history = data.history()
    # The solver is CPU-heavy (seconds for thousands of people): never on the event loop.
    report = await asyncio.to_thread(run_cohort_round, mentees, mentors, capacities, policy, history, None, True)
    round_id = new_id()
    completed = now + timedelta(seconds=report.seconds_scoring + report.seconds_solving)
    capacity_total = sum(capacities[m.person_id].free_slots for m in mentors)
    await session.execute(
        rounds.insert().values(
            round_id=round_id,
            tenant_id=data.tenant,
            program_id=data.program.program_id,
            status=RoundStatus.PENDING_APPROVAL.value,
            report=_report_json(report, len(mentors), capacity_total),
            started_at=now,
            completed_at=completed,
        )
    )
    rows: list[dict[str, Any]] = []
    for proposal in report.proposals:
        assert proposal.breakdown is not None
        rows.append(
            {
                "match_id": new_id(),
                "tenant_id": data.tenant,
                "program_id": data.program.program_id,
                "mentee_person_id": uuid.UUID(proposal.mentee_id),
                "mentor_person_id": uuid.UUID(proposal.mentor_id),
                "state": MatchState.PENDING_APPROVAL.value,
                "origin": MatchOrigin.COHORT_ROUND.value,
                "round_id": round_id,
                "score": round(proposal.breakdown.total, 6),
                "breakdown": [f.model_dump(mode="json") for f in contract_breakdown(proposal.breakdown)],
                "explanation": proposal.breakdown.explanation[: match_cases.MAX_EXPLANATION],
                "mentee_accepted": False,
                "mentor_accepted": False,
                "created_at": now,
            }
        )
    await match_cases.insert_pending(session, rows)
    return round_id


_SKIP_TO_CONTRACT: dict[str, ContractUnmatched] = {
    ExclusionReason.CAMPUS_RULE.value: ContractUnmatched.CAMPUS_RULE,
    ExclusionReason.MENTOR_NOT_AHEAD.value: ContractUnmatched.SENIORITY_RULE,
    ExclusionReason.MENTOR_LEVEL_TOO_FAR_AHEAD.value: ContractUnmatched.SENIORITY_RULE,
    ExclusionReason.MENTOR_TENURE_TOO_FAR_AHEAD.value: ContractUnmatched.SENIORITY_RULE,
    ExclusionReason.MENTOR_HAS_NO_FREE_SLOT.value: ContractUnmatched.CAPACITY_EXHAUSTED,
}


def _unsent_reason(skip_reasons: Sequence[str]) -> ContractUnmatched:
    """The contract's reason for a mentee whose proposals were all solved but none was sent."""
    for code in skip_reasons:
        if code in _SKIP_TO_CONTRACT:
            return _SKIP_TO_CONTRACT[code]
    if skip_reasons and all(c in {g.value for g in ParticipantGone} for c in skip_reasons):
        return ContractUnmatched.NO_ELIGIBLE_MENTOR
    # Blocked, same team or line, already matched, dropped by the coordinator or closed meanwhile.
    return ContractUnmatched.BLOCKED_OR_EXCLUDED


def completed_event(round_row: Row[Any], sent: Sequence[Row[Any]] | None = None) -> MatchRoundCompleted:
    """The round as it was sent: figures over the proposals actually proposed (all solved ones when `sent` is None
    and the report has no approval section), the certificate of the solve."""
    report = round_row.report
    unmatched = report["unmatched"]
    reasons: dict[str, int] = {}
    for u in unmatched:
        reasons[u["reason"]] = reasons.get(u["reason"], 0) + 1
    if sent is None:
        matched = report["matched_mentees"]
        pairs = report["proposal_count"]
        total, mean, low, high = report["total_score"], report["mean_score"], report["min_score"], report["max_score"]
        distribution = [ScoreBucket.model_validate(b) for b in report["distribution"]]
    else:
        scores = [float(r.score) for r in sent]
        sent_mentees = {str(r.mentee_person_id) for r in sent}
        matched, pairs = len(sent_mentees), len(sent)
        total = round(sum(scores), 6)
        mean = round(total / len(scores), 6) if scores else None
        low = min(scores) if scores else None
        high = max(scores) if scores else None
        distribution = [
            ScoreBucket(lower=i / 10, upper=(i + 1) / 10, count=count) for i, count in enumerate(_histogram(scores))
        ]
        # Mentees the solve matched whose proposals were not sent: counted with why, once each.
        unsent: dict[str, list[str]] = {}
        for skipped in report.get("approval", {}).get("skipped", []):
            unsent.setdefault(skipped["mentee_person_id"], []).extend(skipped["reasons"])
        for dropped in report.get("approval", {}).get("dropped_by_coordinator", []):
            unsent.setdefault(dropped, [])
        for mentee, codes in unsent.items():
            if mentee not in sent_mentees:
                reason = _unsent_reason(codes).value
                reasons[reason] = reasons.get(reason, 0) + 1
    certificate = report["certificate"]
    achieved_gap = max(0, certificate["upper_bound"] - certificate["objective_weight"]) / SCORE_SCALE
    return MatchRoundCompleted(
        tenant_id=round_row.tenant_id,
        round_id=round_row.round_id,
        program_id=round_row.program_id,
        objective=ObjectiveMode(report["objective"]),
        mentee_count=report["mentee_count"],
        mentor_count=report["mentor_count"],
        capacity_total=report["capacity_total"],
        # The contract counts mentees; in a mentor network one mentee may get several proposals.
        proposal_count=matched,
        unmatched_count=report["mentee_count"] - matched,
        total_score=total,
        mean_score=mean,
        min_score=low,
        max_score=high,
        distribution=tuple(distribution) if pairs == matched else (),
        unmatched_reasons=tuple(
            UnmatchedReasonCount(reason=ContractUnmatched(r), count=c) for r, c in sorted(reasons.items())
        ),
        # The certificate is the solve's (in scaled score units; the matched bonus cancels out between bound and
        # objective): the bound stays the solved round's, whatever the approval left out.
        upper_bound=report["total_score"] + achieved_gap,
        optimality_gap=certificate["optimality_gap"],
        proven_optimal=certificate["proven_optimal"],
        solver=report["solver"],
        started_at=round_row.started_at,
        completed_at=round_row.completed_at,
    )


def _histogram(scores: Sequence[float]) -> list[int]:
    counts = [0] * 10
    for score in scores:
        counts[min(9, max(0, int(score * 10)))] += 1
    return counts


async def approve_round(
    session: AsyncSession,
    round_row: Row[Any],
    data: ProgramData,
    selected: set[uuid.UUID] | None,
    now: datetime,
    window: timedelta,
) -> None:
    """Send the chosen proposals (all when `selected` is None) that still pass the hard rules now; drop the rest
    unsent; record what was skipped and why in the round's report; then MatchRoundCompleted for what was sent.

    The caller locks the round row and the enrolments of the round's people (`lock_enrolments`) before loading `data`, so the
    capacity counted here cannot be taken by a concurrent request or approval until this transaction ends.
    """
    require_pending(round_row)
    rows = (
        await session.execute(
            select(matches)
            .where(matches.c.round_id == round_row.round_id, matches.c.tenant_id == round_row.tenant_id)
            .order_by(matches.c.match_id)
            .with_for_update()
        )
    ).all()
    pending = [r for r in rows if r.state == MatchState.PENDING_APPROVAL.value]
    if selected is not None:
        unknown = selected - {r.match_id for r in pending}
        if unknown:
            raise ConflictError(f"not pending proposals of this round: {', '.join(sorted(map(str, unknown)))}")
    closed = [r for r in rows if r.state != MatchState.PENDING_APPROVAL.value]
    # Rejected one by one by a coordinator (POST /matches/{id}/decline) before this approval: dropped like the rest.
    rejected_before = [r for r in closed if r.decline_reason == DeclineReason.REJECTED_BY_COORDINATOR.value]
    skipped_report: list[dict[str, Any]] = [
        # Closed between the solve and the approval (erasure, withdrawal, another match activated): never sent.
        _skipped_json(r, [r.decline_reason or r.state])
        for r in closed
        if r.decline_reason != DeclineReason.REJECTED_BY_COORDINATOR.value
    ]
    chosen = [r for r in pending if selected is None or r.match_id in selected]
    dropped = [r for r in pending if not (selected is None or r.match_id in selected)]
    for row in dropped:
        await match_cases.reject(session, row, now)
    dropped += rejected_before
    # Unsent proposals (this round's and other rounds') do not count against what is being sent now.
    others = data.as_sent()
    by_id = {str(r.match_id): r for r in chosen}
    verdict = recheck_proposals(
        [
            PendingProposal(str(r.match_id), str(r.mentee_person_id), str(r.mentor_person_id), float(r.score))
            for r in chosen
        ],
        others.mentees,
        others.mentors,
        others.policy,
        others.history(),
        others.capacities(),
    )
    sent: list[Row[Any]] = []
    for proposal in verdict.passed:
        sent.append(await match_cases.approve(session, by_id[proposal.proposal_id], now, window))
    for proposal, reasons in verdict.skipped:
        await match_cases.skip(session, by_id[proposal.proposal_id], now)
        skipped_report.append(_skipped_json(by_id[proposal.proposal_id], [r.value for r in reasons]))
    report = {
        **round_row.report,
        "approval": {
            "sent_count": len(sent),
            "skipped_count": len(skipped_report),
            "dropped_by_coordinator_count": len(dropped),
            "skipped": sorted(skipped_report, key=lambda s: (s["mentee_person_id"], s["mentor_person_id"])),
            "dropped_by_coordinator": sorted({str(r.mentee_person_id) for r in dropped}),
        },
    }
    updated = (
        await session.execute(
            update(rounds)
            .where(rounds.c.round_id == round_row.round_id, rounds.c.status == RoundStatus.PENDING_APPROVAL.value)
            .values(status=RoundStatus.APPROVED.value, approved_at=now, report=report)
            .returning(rounds)
        )
    ).first()
    if updated is None:
        raise ConflictError("this round was approved already")
    await add_events(session, [completed_event(updated, sent)])


def require_pending(round_row: Row[Any]) -> None:
    """409 unless the round still awaits approval, saying what became of it."""
    if round_row.status == RoundStatus.EXPIRED:
        raise ConflictError(
            "this round expired unapproved: the program stopped taking new matches and its proposals lapsed; "
            "nothing of it can be sent"
        )
    if round_row.status != RoundStatus.PENDING_APPROVAL:
        raise ConflictError("this round was approved already")


async def expire_rounds_of_stopped_programs(
    session: AsyncSession, now: datetime, program_id: uuid.UUID | None = None
) -> int:
    """Rounds awaiting approval in a program closed, archived or past its last day expire with their proposals
    (`matches.close_finished_programs` lapses those); all such rounds, or those of `program_id`."""
    query = (
        update(rounds)
        .where(
            rounds.c.status == RoundStatus.PENDING_APPROVAL.value,
            match_cases.of_its_program(rounds),
            match_cases.program_closes_its_proposals(now),
        )
        .values(status=RoundStatus.EXPIRED.value)
        .returning(rounds.c.round_id)
    )
    if program_id is not None:
        query = query.where(rounds.c.program_id == program_id)
    return len((await session.execute(query)).all())


def _skipped_json(row: Row[Any], reasons: Sequence[str]) -> dict[str, Any]:
    return {
        "match_id": str(row.match_id),
        "mentee_person_id": str(row.mentee_person_id),
        "mentor_person_id": str(row.mentor_person_id),
        "score": float(row.score),
        "reasons": list(reasons),
    }
