"""From the event contract (profile and program snapshots) to the pure domain's values, and back for events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from services.matching.domain.model import (
    AvailabilityWindow,
    CampusRule,
    FactorWeights,
    MeetingFormat,
    NeedLevel,
    Objective,
    Participant,
    ProgramPolicy,
    SeniorityRule,
    WorkingStyle,
)
from services.matching.domain.scoring import Factor, PairScore
from shared.events.models import ProfileUpdated, ProgramUpdated
from shared.events.values import CadencePreference, CommunicationPreference, FactorScore, MatchFactor

_CADENCE_DAYS = {
    CadencePreference.WEEKLY: 7,
    CadencePreference.BIWEEKLY: 14,
    CadencePreference.MONTHLY: 30,
    CadencePreference.FLEXIBLE: None,
}
_DAYS_PER_MONTH = 30
NO_LOWER_BOUND = -1_000  # a seniority rule without a minimum gap

#: Domain factor → contract factor (the semantic factor has no contract name: it travels inside `goals`).
_CONTRACT_FACTOR = {
    Factor.NEEDS: MatchFactor.NEEDS_COVERAGE,
    Factor.INTERESTS: MatchFactor.INTERESTS,
    Factor.GOALS: MatchFactor.GOALS,
    Factor.SKILLS: MatchFactor.SKILLS,
    Factor.WORKING_STYLE: MatchFactor.WORKING_STYLE,
    Factor.AVAILABILITY: MatchFactor.AVAILABILITY,
    Factor.BACKGROUND: MatchFactor.BACKGROUND_SIMILARITY,
    Factor.SENIORITY: MatchFactor.SENIORITY,
    Factor.SEMANTIC_GOALS: MatchFactor.GOALS,
}


def policy_of(program: ProgramUpdated) -> ProgramPolicy:
    policy = program.matching_policy
    weights = policy.weights
    rules = policy.hard_rules
    seniority = rules.seniority
    return ProgramPolicy(
        organisation_id=str(program.tenant_id),
        program_id=str(program.program_id),
        weights=FactorWeights(
            needs=weights.needs_coverage,
            interests=weights.interests,
            goals=weights.goals,
            skills=weights.skills,
            working_style=weights.working_style,
            availability=weights.availability,
            background=weights.background_similarity,
            seniority=weights.seniority,
        ),
        seniority=SeniorityRule(
            min_level_gap=NO_LOWER_BOUND if seniority.min_level_gap is None else seniority.min_level_gap,
            max_level_gap=seniority.max_level_gap,
            min_tenure_lead_days=_days(seniority.min_tenure_gap_months),
            max_tenure_lead_days=_days(seniority.max_tenure_gap_months),
        ),
        exclude_same_reporting_line=rules.exclude_same_reporting_line,
        exclude_same_team=rules.exclude_same_team,
        campus_rule=CampusRule(rules.campus_rule.value),
        proposals_per_mentee=policy.proposals_per_mentee,
        allow_mentor_network=policy.allow_mentor_network,
        max_mentors_per_mentee=policy.max_mentors_per_mentee,
        objective=Objective(policy.objective.value),
        function_labels={entry.key: entry.label for entry in program.function_catalogue},
    )


def _days(months: int | None) -> int | None:
    return None if months is None else months * _DAYS_PER_MONTH


def _manager_chain(profile: ProfileUpdated) -> tuple[str, ...]:
    # The domain compares the first link of the chain ("same manager") and looks people up in it (supervisor and
    # report). An opaque reporting-line id is the better "same line" key when the HR system gives one.
    chain: list[str] = []
    if profile.reporting_line_id is not None:
        chain.append(f"line:{profile.reporting_line_id}")
    if profile.manager_person_id is not None:
        chain.append(str(profile.manager_person_id))
    return tuple(chain)


def participant_of(profile: ProfileUpdated, program_id: uuid.UUID) -> Participant:
    style = profile.working_style
    communication = None if style.communication is CommunicationPreference.NO_PREFERENCE else style.communication
    return Participant(
        person_id=str(profile.person_id),
        organisation_id=str(profile.tenant_id),
        program_id=str(program_id),
        role_level=profile.role_level,
        tenure_start=profile.tenure_start,
        time_zone=profile.time_zone,
        campus_id=None if profile.campus_id is None else str(profile.campus_id),
        team_id=profile.team,
        manager_chain=_manager_chain(profile),
        availability=tuple(AvailabilityWindow(w.weekday.iso_number - 1, w.start, w.end) for w in profile.availability),
        interests=frozenset(profile.interests),
        skills=frozenset(profile.skills),
        # The contract has no separate "skills wanted": a mentee's goal tags name what they want to learn.
        skills_wanted=frozenset(profile.goals.tags),
        goal_tags=frozenset(profile.goals.tags),
        desired_outcomes=frozenset(profile.desired_outcomes.tags),
        goals_text=profile.goals.text,
        working_style=WorkingStyle(
            communication=None if communication is None else communication.value,
            meeting_format=MeetingFormat(style.meeting_format.value),
            cadence_days=_CADENCE_DAYS[style.cadence],
        ),
        # Affinity attributes are only in the snapshot with consent (the contract enforces it).
        affinity={attribute: "yes" for attribute in profile.affinity_attributes}
        if profile.consent.affinity_matching
        else {},
        blocked_ids=frozenset(str(p) for p in profile.blocked_person_ids),
        needs={n.function_key: NeedLevel(n.level.value) for n in profile.needs},
        offers=frozenset(profile.offers),
    )


def contract_breakdown(score: PairScore) -> tuple[FactorScore, ...]:
    """The per-factor breakdown in contract shape (one entry per contract factor that applies)."""
    merged: dict[MatchFactor, tuple[float, float]] = {}
    for factor in score.factors:
        if not factor.applies:
            continue
        key = _CONTRACT_FACTOR[factor.factor]
        weight, contribution = merged.get(key, (0.0, 0.0))
        merged[key] = (weight + factor.weight, contribution + factor.contribution)
    return tuple(
        FactorScore(
            factor=key,
            score=_unit(contribution / weight if weight > 0 else 0.0),
            weight=_unit(weight),
            contribution=_unit(contribution),
        )
        for key, (weight, contribution) in merged.items()
    )


def _unit(value: float) -> float:
    return min(1.0, max(0.0, round(value, 6)))


def ids(values: Iterable[uuid.UUID]) -> list[str]:
    return [str(v) for v in values]
