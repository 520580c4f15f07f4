"""Request and response bodies of the matching API (bounded; unknown fields rejected)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from services.matching.application.choosing import MenteeShortlist
from services.matching.application.pool import ProgramPool
from services.matching.application.projection import ERASED_EXPLANATION
from services.matching.domain.lifecycle import MatchState
from services.matching.domain.rounds import RoundStatus
from shared.events.values import (
    ActorRole,
    AtRiskReason,
    DeclineReason,
    EndReasonCategory,
    MatchFactor,
    MatchOrigin,
    ObjectiveMode,
    UnmatchedReason,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactorOut(BaseModel):
    factor: str = Field(description="Domain factor name (needs, interests, goals, …, semantic_goals).")
    value: float = Field(ge=0, le=1, description="How well the pair meets this factor: 0 not at all, 1 fully.")
    applies: bool
    weight: float = Field(ge=0, le=1, description="Normalised share of the total (0 when it does not apply).")
    contribution: float = Field(
        ge=0, le=1, description="value × weight: the factor's part of the score (the contributions add up to it)."
    )
    detail: str


class PartnerOut(BaseModel):
    """The other person of a match, as its mentee or mentor sees them (from the profile snapshot matching holds)."""

    person_id: uuid.UUID
    display_name: str
    time_zone: str
    languages: list[str]
    # Documented as profiles documents it (format email); not validated again: profiles did when it was written.
    email: Annotated[str, WithJsonSchema({"type": "string", "format": "email"})] | None = Field(
        description="Only while the match is active and only if the partner consented (share_email_with_partner)."
    )

    @classmethod
    def of(cls, person_id: uuid.UUID, snapshot: dict[str, Any], *, active: bool) -> PartnerOut:
        consented = bool(snapshot.get("consent", {}).get("share_email_with_partner"))
        return cls(
            person_id=person_id,
            display_name=snapshot["display_name"],
            time_zone=snapshot["time_zone"],
            languages=list(snapshot.get("languages", ())),
            email=snapshot["email"] if active and consented else None,
        )


class ShortlistEntryOut(BaseModel):
    rank: int = Field(ge=1)
    mentor_person_id: uuid.UUID
    mentor: PartnerOut | None = Field(
        default=None, description="Who the mentor is, for the mentee to choose (never their e-mail address)."
    )
    score: float = Field(ge=0, le=1, description="Compatibility from 0 to 1: the sum of the factors' contributions.")
    factors: list[FactorOut]
    explanation: str


class ShortlistOut(BaseModel):
    program_id: uuid.UUID
    mentee_person_id: uuid.UUID
    entries: list[ShortlistEntryOut]
    feasible_mentors: int = Field(ge=0)
    passed_over_for_exposure: int = Field(ge=0)
    exclusions: dict[str, int] = Field(
        description=(
            "How many of the program's mentors each hard rule excluded for this mentee (a mentor failing several "
            'rules counts under each), e.g. {"campus_rule": 2, "mentor_has_no_free_slot": 1}: the codes of a round '
            "report's unmatched[].exclusions. The mentee is not shown blocked_by_mentor; coordinators are."
        )
    )
    detail: str | None = Field(
        description=(
            "When no mentor passes the hard rules (feasible_mentors 0): why, in the words of a round report's "
            "unmatched[].detail. Null otherwise."
        )
    )

    @classmethod
    def of(
        cls, program_id: uuid.UUID, found: MenteeShortlist, mentors: dict[uuid.UUID, dict[str, Any]]
    ) -> ShortlistOut:
        """``mentors``: the profile snapshots of the listed mentors, by person id."""

        def mentor(person_id: str) -> PartnerOut | None:
            snapshot = mentors.get(uuid.UUID(person_id))
            return None if snapshot is None else PartnerOut.of(uuid.UUID(person_id), snapshot, active=False)

        return cls(
            program_id=program_id,
            mentee_person_id=uuid.UUID(found.mentee_id),
            entries=[
                ShortlistEntryOut(
                    rank=e.rank,
                    mentor_person_id=uuid.UUID(e.mentor_id),
                    mentor=mentor(e.mentor_id),
                    score=min(1.0, max(0.0, e.score.total)),
                    factors=[
                        FactorOut(
                            factor=f.factor.value,
                            value=min(1.0, max(0.0, f.value)),
                            applies=f.applies,
                            weight=min(1.0, max(0.0, f.weight)),
                            contribution=min(1.0, max(0.0, f.contribution)),
                            detail=f.detail,
                        )
                        for f in e.score.factors
                    ],
                    explanation=e.score.explanation,
                )
                for e in found.entries
            ],
            feasible_mentors=found.feasible_mentors,
            passed_over_for_exposure=found.passed_over_for_exposure,
            exclusions={reason.value: count for reason, count in found.exclusions.items()},
            detail=found.detail,
        )


class ContractFactorOut(BaseModel):
    factor: MatchFactor
    score: float = Field(ge=0, le=1, description="The factor's own score, 0 to 1.")
    weight: float = Field(ge=0, description="The factor's weight in the program's matching policy (0 to 100).")
    contribution: float = Field(
        ge=0, le=1, description="weight × score / sum of the weights: the factor's share of the match's score."
    )


#: What a party is told of an end the system made. Leaving the program and the program's end are facts of the program,
#: nobody's explanation. An erasure is told as leaving: the person is gone from the program either way (an erasure
#: ends all their enrolments), and that they asked to be forgotten is theirs; other system categories are not told.
_SYSTEM_END_TOLD = {
    EndReasonCategory.PLANNED_END_REACHED.value: EndReasonCategory.PLANNED_END_REACHED,
    EndReasonCategory.LEFT_PROGRAM.value: EndReasonCategory.LEFT_PROGRAM,
    EndReasonCategory.PARTICIPANT_ERASED.value: EndReasonCategory.LEFT_PROGRAM,
}

#: The stored explanation of an erased participant's matches, as their partner reads it (without the erasure).
ERASED_EXPLANATION_TOLD = "removed: a participant of this match is no longer in the program"


def _category_told(values: dict[str, Any], party: str | None) -> EndReasonCategory | None:
    """The end reason category as a mentee or mentor reads it. Either party may leave without explaining it to the
    other (DOMAIN: exit route): a party reads the category of their own end, not of their partner's. A coordinator's
    end is told as coordinator_decision: a coordinator often ends a match on one party's behalf, and the category
    they chose may be that party's reason told in private."""
    closed_by, category = values["closed_by"], values["end_reason_category"]
    if party is None or category is None:
        return None
    if closed_by == party:
        return EndReasonCategory(category)
    if closed_by == ActorRole.COORDINATOR.value:
        return EndReasonCategory.COORDINATOR_DECISION
    if closed_by == ActorRole.SYSTEM.value:
        return _SYSTEM_END_TOLD.get(category)
    return None


class MatchOut(BaseModel):
    match_id: uuid.UUID
    program_id: uuid.UUID
    mentee_person_id: uuid.UUID
    mentor_person_id: uuid.UUID
    state: MatchState
    origin: MatchOrigin
    round_id: uuid.UUID | None
    score: float = Field(ge=0, le=1, description="Compatibility from 0 to 1 when proposed: the breakdown's sum.")
    breakdown: list[ContractFactorOut]
    explanation: str = Field(
        description=(
            "Why the pair was proposed. Once a participant of the match is erased it names them no more: "
            f"{ERASED_EXPLANATION!r} for coordinators, {ERASED_EXPLANATION_TOLD!r} for the other party."
        )
    )
    mentee_accepted: bool
    mentor_accepted: bool
    created_at: datetime
    proposed_at: datetime | None
    expires_at: datetime | None
    activated_at: datetime | None
    closed_at: datetime | None
    closed_by: ActorRole | None
    decline_reason: DeclineReason | None = Field(
        description=(
            "Why a proposal did not become a match. The mentee and mentor read participant_unavailable where one of "
            "them was erased (coordinators read participant_erased): a partner is never told of an erasure."
        )
    )
    end_reason_category: EndReasonCategory | None = Field(
        description=(
            "Coordinators read the category as set. The mentee and mentor read: the category of an end they made "
            "themselves (null for their partner's end: nobody explains leaving to the other); coordinator_decision "
            "for a coordinator's end, whatever category the coordinator chose; for the system's ends, "
            "planned_end_reached (the program's last day passed, or it was archived) and left_program (one of them "
            "left the program, or was erased: a partner is never told of an erasure)."
        )
    )
    end_reason_private: str | None = Field(description="Shown to the program's coordinators only.")
    rematch_offered: bool | None = Field(
        description=(
            "Once the match ended, whether its mentee is offered a new match (as the match.ended event says), shown "
            "to both parties and coordinators: true when a party or a coordinator ended it or the mentor left the "
            "program or was erased, false when the mentee left the program or was erased or the program ended. Null "
            "while the match is pending approval, proposed or active; for a proposal declined or expired (it never "
            "began, so it never ended); and for a match the system ended because its mentee or mentor left the "
            "program or was erased before the service's database migration 0005 began recording this: the stored "
            "match does not say which of the two left."
        )
    )
    at_risk: bool | None = Field(description="Coordinators only (null for the match's mentee and mentor).")
    at_risk_reasons: list[AtRiskReason] = Field(description="Coordinators only (empty for the mentee and mentor).")
    at_risk_health: float | None = Field(description="Coordinators only (null for the mentee and mentor).")
    partner: PartnerOut | None = Field(
        default=None,
        description="For the mentee or mentor reading a proposed or active match: the other person. Null otherwise.",
    )

    @classmethod
    def of(
        cls, row: Any, *, show_private: bool, party: str | None = None, partner: PartnerOut | None = None
    ) -> MatchOut:
        values = dict(row._mapping)
        values.pop("tenant_id", None)
        values.pop("at_risk_evaluated_at", None)
        if not show_private:
            values["end_reason_private"] = None
            # Feedback derives the at-risk signal from both people's private pulses (a flagged concern, the other's
            # low ratings): it is for coordinators to act on, never shown to the partner.
            values.update(at_risk=None, at_risk_reasons=[], at_risk_health=None)
            values["end_reason_category"] = _category_told(values, party)
            if values["decline_reason"] == DeclineReason.PARTICIPANT_ERASED.value:
                # As a lapse by leaving the program: that the person asked to be forgotten is theirs.
                values["decline_reason"] = DeclineReason.PARTICIPANT_UNAVAILABLE.value
            if values["explanation"] == ERASED_EXPLANATION:
                values["explanation"] = ERASED_EXPLANATION_TOLD
        values["partner"] = partner
        return cls.model_validate(values)


class EndedOut(BaseModel):
    match: MatchOut
    rematch: ShortlistOut | None = Field(
        description="The mentee's fresh short list (without the ended pair) when the caller may see it."
    )


class RequestMentor(Body):
    mentor_person_id: uuid.UUID


class CreateMatch(Body):
    program_id: uuid.UUID
    mentee_person_id: uuid.UUID
    mentor_person_id: uuid.UUID


#: End categories only the platform sets (an erasure): a person ending a match cannot claim them.
SYSTEM_END_CATEGORIES = frozenset({EndReasonCategory.PARTICIPANT_ERASED})


class EndMatch(Body):
    reason_category: EndReasonCategory = Field(description="Any category but participant_erased (the system's).")
    private_reason: Annotated[str | None, Field(max_length=2000, description="Coordinators only; never sent.")] = None

    @field_validator("reason_category")
    @classmethod
    def _not_the_systems(cls, category: EndReasonCategory) -> EndReasonCategory:
        if category in SYSTEM_END_CATEGORIES:
            raise ValueError(f"{category.value} is set by the platform when a participant is erased")
        return category


class ApproveRound(Body):
    proposal_ids: Annotated[
        list[uuid.UUID] | None,
        Field(max_length=20_000, description="Proposals to send; the others are dropped. Default: all."),
    ] = None


class BucketOut(BaseModel):
    """One tenth of the score range: the proposals scoring in [lower, upper) (the last bucket includes 1)."""

    lower: float = Field(description="Lowest score of the bucket, 0 to 0.9.")
    upper: float = Field(description="Score the bucket ends below, 0.1 to 1.")
    count: int


class UnmatchedOut(BaseModel):
    mentee_person_id: uuid.UUID
    reason: UnmatchedReason
    detail: str = Field(description="The reason for a coordinator, in a sentence.")
    feasible_mentors: int
    exclusions: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "With reason no_feasible_mentor: how many mentors each hard rule excluded (a mentor failing several "
            'rules counts under each), e.g. {"campus_rule": 2, "mentor_tenure_too_far_ahead": 2}. Empty in reports '
            "stored before 2026-12-07; mentor_too_far_ahead (either gap) in reports stored before 2026-12-08."
        ),
    )


class CertificateOut(BaseModel):
    proven_optimal: bool
    objective_weight: int
    upper_bound: int
    optimality_gap: float = Field(
        ge=0, description="(upper_bound - objective_weight) / upper_bound: 0 proves the assignment optimal."
    )
    pricing_rounds: int
    candidate_pairs: int
    eligible_pairs: int
    statement: str


class SkippedProposalOut(BaseModel):
    match_id: uuid.UUID
    mentee_person_id: uuid.UUID
    mentor_person_id: uuid.UUID
    score: float = Field(description="The proposal's compatibility, 0 to 1.")
    reasons: list[str] = Field(
        description=(
            "Why the proposal was not sent: hard-rule codes (e.g. blocked_by_mentor, mentor_has_no_free_slot, "
            "mentee_has_enough_mentors, already_matched), mentee_not_active / mentor_not_active, or the decline "
            "reason of a proposal closed before the approval (e.g. participant_erased)."
        )
    )


class ApprovalOut(BaseModel):
    sent_count: int
    skipped_count: int
    dropped_by_coordinator_count: int
    skipped: list[SkippedProposalOut]
    dropped_by_coordinator: list[uuid.UUID] = Field(description="Mentees whose proposals the approval left out.")


class RoundReportOut(BaseModel):
    objective: ObjectiveMode
    mentee_count: int
    mentor_count: int
    capacity_total: int
    proposal_count: int
    matched_mentees: int
    unmatched_count: int
    total_score: float = Field(description="Sum of the proposals' scores (each 0 to 1).")
    mean_score: float | None = Field(description="Mean proposal score, 0 to 1; null without proposals.")
    min_score: float | None = Field(description="Lowest proposal score, 0 to 1; null without proposals.")
    max_score: float | None = Field(description="Highest proposal score, 0 to 1; null without proposals.")
    distribution: list[BucketOut]
    unmatched: list[UnmatchedOut]
    certificate: CertificateOut
    solver: str
    seconds_scoring: float = Field(description="Wall-clock seconds spent scoring the eligible pairs.")
    seconds_solving: float = Field(description="Wall-clock seconds spent finding the assignment.")
    approval: ApprovalOut | None = Field(
        default=None, description="Set once approved: what the re-check against the current program sent and skipped."
    )


class RoundOut(BaseModel):
    round_id: uuid.UUID
    program_id: uuid.UUID
    status: RoundStatus = Field(
        description="expired: still awaiting approval when the program stopped taking new matches (closed, archived "
        "or past its last day); its proposals lapsed"
    )
    started_at: datetime
    completed_at: datetime
    approved_at: datetime | None
    report: RoundReportOut
    proposals: list[MatchOut]


class EnrolmentsInPoolOut(BaseModel):
    active_enrolments: int = Field(
        ge=0, description="Active enrolments in this role (both counts in each) matching has received."
    )
    matchable: int = Field(ge=0, description="Of those, with the profile received: in short lists and rounds.")
    without_profile: int = Field(
        ge=0, description="Of those, whose profile matching has not received yet: in no short list or round until then."
    )


class MenteesInPoolOut(EnrolmentsInPoolOut):
    unmatched: int = Field(
        ge=0, description="Matchable mentees holding no match, proposal or round proposal awaiting approval."
    )


class MentorsInPoolOut(EnrolmentsInPoolOut):
    capacity_total: int = Field(ge=0, description="How many mentees the matchable mentors take at once.")
    capacity_free: int = Field(
        ge=0, description="Of that capacity, what no match, proposal or round proposal awaiting approval holds."
    )


class PoolOut(BaseModel):
    """A program's pool as matching sees it, to tell before a round whether matching has received everyone."""

    program_id: uuid.UUID
    mentees: MenteesInPoolOut
    mentors: MentorsInPoolOut
    newest_event_at: datetime | None = Field(
        description=(
            "When the newest event matching has applied for this program was sent: the program's, an enrolment's or "
            "an enrolled person's profile. Null when every one was applied before matching kept these times."
        )
    )

    @classmethod
    def of(cls, program_id: uuid.UUID, pool: ProgramPool) -> PoolOut:
        mentees, mentors = pool.mentees, pool.mentors
        return cls(
            program_id=program_id,
            mentees=MenteesInPoolOut(
                active_enrolments=mentees.matchable + mentees.without_profile,
                matchable=mentees.matchable,
                without_profile=mentees.without_profile,
                unmatched=mentees.unmatched,
            ),
            mentors=MentorsInPoolOut(
                active_enrolments=mentors.matchable + mentors.without_profile,
                matchable=mentors.matchable,
                without_profile=mentors.without_profile,
                capacity_total=mentors.capacity_total,
                capacity_free=mentors.capacity_free,
            ),
            newest_event_at=pool.newest_event_at,
        )
