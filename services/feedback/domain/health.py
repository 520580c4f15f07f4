"""Per-match health and the at-risk state machine.

The score in [0, 1] blends recency-weighted pulse ratings with check-in attendance, then subtracts penalties for a
falling rating trend and for one partner going silent. The state machine turns scores into MatchAtRisk-style
transitions: "entered at risk" once when the score drops below the program's threshold, "recovered" only when it
climbs back above threshold + margin (hysteresis, so a score hovering at the threshold does not flap).

Two reasons are not measures but facts a coordinator must act on, so they mark the match at risk whatever the score
(and hold recovery off while they last); the score itself stays the ratings-and-attendance measure:

- ``no_first_meeting``: the match has been active longer than the program's first-meeting milestone ("first meeting
  within N days of the match") and no meeting has been held. It goes away once a meeting is held.
- ``concern_flagged``: a participant flagged a concern in a pulse. It lasts until a coordinator of the program
  resolves it: a concern is a request for a coordinator's attention, so it must not disappear because the
  participant's next pulse happens to be calm, nor while nobody has looked at it.

When the last such reason goes away, recovery follows the usual hysteresis rule on the score.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Self
from uuid import UUID

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.feedback.domain.pulse import GOAL_PROGRESS, TRUST, USEFULNESS


class HealthPolicy(BaseModel):
    """A program's health settings (ratings on the pulse's 1–5 scale)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(default=6, ge=1, le=52, description="How many recent check-ins count.")
    half_life: float = Field(default=2.0, gt=0, description="Check-ins after which a rating weighs half.")
    rating_keys: tuple[str, ...] = (USEFULNESS, TRUST, GOAL_PROGRESS)
    scale_min: int = 1
    scale_max: int = 5
    ratings_weight: float = Field(default=0.6, ge=0, le=1, description="Attendance weighs 1 - this.")
    low_ratings_below: float = Field(default=0.5, ge=0, le=1)
    falling_slope_below: float = Field(
        default=-0.05, lt=0, description="Trend (normalised rating per check-in) below which ratings are falling."
    )
    falling_penalty_per_unit: float = Field(default=1.0, ge=0)
    falling_penalty_max: float = Field(default=0.2, ge=0, le=1)
    min_points_for_trend: int = Field(default=3, ge=2)
    silent_after: int = Field(default=2, ge=1, description="k: check-ins one party skipped while the other answered.")
    silence_penalty: float = Field(default=0.3, ge=0, le=1)
    at_risk_below: float = Field(default=0.5, gt=0, lt=1)
    recovery_margin: float = Field(default=0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _recovery_is_reachable(self) -> Self:
        if self.at_risk_below + self.recovery_margin > 1:
            raise ValueError("at_risk_below + recovery_margin must not exceed 1")
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be below scale_max")
        return self


@dataclass(frozen=True)
class CheckInRecord:
    """One due check-in of the match and the pulses each party submitted for it (absent party: no pulse)."""

    due_at: datetime
    missed: bool
    scores: Mapping[UUID, Mapping[str, int | bool]] = field(default_factory=dict)


class ReasonCode(StrEnum):
    LOW_RATINGS = "low_ratings"
    FALLING_RATINGS = "falling_ratings"
    MISSED_CHECK_INS = "missed_check_ins"
    PARTNER_SILENT = "partner_silent"
    NO_FIRST_MEETING = "no_first_meeting"
    CONCERN_FLAGGED = "concern_flagged"


#: Reasons that mark a match at risk whatever its score, and keep it there while they last.
OVERRIDING_REASONS = frozenset({ReasonCode.NO_FIRST_MEETING, ReasonCode.CONCERN_FLAGGED})


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    detail: str
    party_id: UUID | None = None  # PARTNER_SILENT: who went silent; CONCERN_FLAGGED: who flagged (coordinators only)


@dataclass(frozen=True)
class HealthAssessment:
    score: float
    reasons: tuple[Reason, ...]

    @property
    def needs_attention(self) -> bool:
        """A reason holds that marks the match at risk whatever the score."""
        return any(reason.code in OVERRIDING_REASONS for reason in self.reasons)


@dataclass(frozen=True)
class FirstMeeting:
    """The first-meeting milestone of one match: when it became active, the program's N days, whether it met."""

    activated_at: datetime
    within: timedelta
    held: bool

    @property
    def deadline(self) -> datetime:
        return self.activated_at + self.within

    def overdue(self, now: datetime) -> bool:
        """Active for longer than the milestone allows, and no meeting held yet."""
        return not self.held and now > self.deadline


def assess_health(
    check_ins: Sequence[CheckInRecord],
    party_ids: tuple[UUID, UUID],
    policy: HealthPolicy | None = None,
    *,
    now: datetime | None = None,
    first_meeting: FirstMeeting | None = None,
    concerns_from: Collection[UUID] = (),
) -> HealthAssessment:
    """Score the match and give the reasons.

    ``first_meeting`` (checked at ``now``; unknown start: ``None``) and ``concerns_from`` (parties with a flagged
    concern no coordinator has resolved) add the overriding reasons; they do not change the score.
    """
    policy = policy or HealthPolicy()
    overriding: list[Reason] = []
    if first_meeting is not None and now is not None and first_meeting.overdue(now):
        days = first_meeting.within.days
        overriding.append(Reason(ReasonCode.NO_FIRST_MEETING, f"no meeting held within {days} days of the match"))
    for party_id in sorted(set(concerns_from) & set(party_ids), key=party_ids.index):
        overriding.append(Reason(ReasonCode.CONCERN_FLAGGED, "a concern flagged in a pulse is not resolved", party_id))
    measured = _assess_check_ins(check_ins, party_ids, policy)
    return HealthAssessment(score=measured.score, reasons=measured.reasons + tuple(overriding))


def _assess_check_ins(
    check_ins: Sequence[CheckInRecord], party_ids: tuple[UUID, UUID], policy: HealthPolicy
) -> HealthAssessment:
    recent = sorted(check_ins, key=lambda record: record.due_at)[-policy.window :]
    if not recent:
        return HealthAssessment(score=1.0, reasons=())
    # Age 0 is the newest check-in; weights halve every half_life check-ins.
    ages = np.arange(len(recent) - 1, -1, -1, dtype=float)
    weights = 0.5 ** (ages / policy.half_life)
    ratings = np.array([_check_in_rating(record, policy) for record in recent], dtype=float)  # nan: none
    missed = np.array([record.missed for record in recent], dtype=float)
    reasons: list[Reason] = []

    attendance = 1.0 - float(np.average(missed, weights=weights))
    missed_count = int(missed.sum())
    if missed_count:
        reasons.append(Reason(ReasonCode.MISSED_CHECK_INS, f"{missed_count} of the last {len(recent)} missed"))

    rated = ~np.isnan(ratings)
    if rated.any():
        rating_score = float(np.average(ratings[rated], weights=weights[rated]))
        score = policy.ratings_weight * rating_score + (1 - policy.ratings_weight) * attendance
        if rating_score < policy.low_ratings_below:
            reasons.append(Reason(ReasonCode.LOW_RATINGS, f"recent ratings at {rating_score:.0%} of the scale"))
    else:
        score = attendance

    if int(rated.sum()) >= policy.min_points_for_trend:
        slope = float(np.polyfit(np.flatnonzero(rated).astype(float), ratings[rated], 1)[0])
        if slope < policy.falling_slope_below:
            score -= min(policy.falling_penalty_max, -slope * policy.falling_penalty_per_unit)
            reasons.append(Reason(ReasonCode.FALLING_RATINGS, f"ratings falling by {-slope:.0%} per check-in"))

    for party_id in party_ids:
        skipped = _check_ins_skipped_while_partner_answered(recent, party_id, party_ids)
        if skipped >= policy.silent_after:
            score -= policy.silence_penalty
            detail = f"no pulse for {skipped} check-ins while the partner answered"
            reasons.append(Reason(ReasonCode.PARTNER_SILENT, detail, party_id))
    return HealthAssessment(score=min(1.0, max(0.0, score)), reasons=tuple(reasons))


def _check_in_rating(record: CheckInRecord, policy: HealthPolicy) -> float:
    """Mean of the parties' rating answers, normalised to [0, 1]; nan when nobody rated."""
    span = policy.scale_max - policy.scale_min
    values = [
        (value - policy.scale_min) / span
        for scores in record.scores.values()
        for key in policy.rating_keys
        if isinstance(value := scores.get(key), int) and not isinstance(value, bool)
    ]
    return float(np.mean(values)) if values else float("nan")


def _check_ins_skipped_while_partner_answered(
    recent: Sequence[CheckInRecord], party_id: UUID, party_ids: tuple[UUID, UUID]
) -> int:
    """Trailing run of check-ins where this party gave no pulse but the partner did.

    Check-ins where neither answered neither extend nor break the run: that is missing together, which the
    attendance part already counts.
    """
    partner_id = party_ids[1] if party_id == party_ids[0] else party_ids[0]
    run = 0
    for record in reversed(recent):
        if party_id in record.scores:
            break
        if partner_id in record.scores:
            run += 1
    return run


# ---------------------------------------------------------------------------------------------------------------
# At-risk state machine


class RiskTransition(StrEnum):
    ENTERED_AT_RISK = "entered_at_risk"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class RiskState:
    at_risk: bool = False
    since: datetime | None = None


@dataclass(frozen=True)
class RiskStep:
    state: RiskState
    transition: RiskTransition | None
    assessment: HealthAssessment


def step_risk(state: RiskState, assessment: HealthAssessment, now: datetime, policy: HealthPolicy) -> RiskStep:
    """Advance the match's at-risk state by one assessment; a transition is emitted only on a crossing.

    An overriding reason (see the module's docstring) enters at risk whatever the score and blocks recovery; a
    reason added while the match is already at risk is no new crossing.
    """
    if not state.at_risk and (assessment.score < policy.at_risk_below or assessment.needs_attention):
        return RiskStep(RiskState(at_risk=True, since=now), RiskTransition.ENTERED_AT_RISK, assessment)
    recovered = assessment.score >= policy.at_risk_below + policy.recovery_margin
    if state.at_risk and recovered and not assessment.needs_attention:
        return RiskStep(RiskState(at_risk=False, since=now), RiskTransition.RECOVERED, assessment)
    return RiskStep(state, None, assessment)
