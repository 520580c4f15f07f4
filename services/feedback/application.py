"""Use cases of the feedback service: each runs inside the caller's transaction (HTTP request or consumed event).

The domain decides; this module loads state, calls the domain and writes the result plus any outgoing events
(through the outbox, in the same transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import structlog
from sqlalchemy import and_, any_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters import repository as repo
from services.feedback.adapters.orm import (
    UNKNOWN_LABEL,
    agreements,
    check_ins,
    enrollments,
    matches,
    meetings,
    people,
    programs,
    pulses,
    surveys,
)
from services.feedback.domain.agreement import ExpectationsAgreement, forget_party
from services.feedback.domain.health import HealthPolicy, RiskState, RiskTransition, assess_health, step_risk
from services.feedback.domain.pulse import Pulse, QuestionKind, open_pulses, scores_only_payload
from services.feedback.domain.reports import MENTEE, MENTOR
from shared.db import chunks
from shared.events.models import (
    CheckInDue,
    CheckInMissed,
    EnrollmentChanged,
    FeedbackSubmitted,
    MatchAccepted,
    MatchAtRisk,
    MatchEnded,
    MeetingCompleted,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.events.values import AtRiskReason, FeedbackKind, MeetingOutcome, ParticipantRole
from shared.messaging.outbox import add_events, rewrite_waiting
from shared.projection import apply_snapshot

RECOVERY_MARGIN = 0.1
_CONTRACT_REASONS = {reason.value for reason in AtRiskReason}

log = structlog.get_logger(__name__)

# ---------------------------------------------------------------------------------------------------------------
# Projection of other services' events


async def apply_program_updated(session: AsyncSession, event: ProgramUpdated, now: datetime) -> None:
    before = await repo.health_rules_of(session, event.tenant_id, event.program_id)
    values = {
        "tenant_id": event.tenant_id,
        "version": event.version,
        "name": event.name,
        "starts_on": event.starts_on,
        "ends_on": event.ends_on,
        "min_group_size": event.min_report_group_size,
        "at_risk_threshold": event.at_risk_threshold,
        "pulse_window_days": event.pulse_window_days,
        "pulse_questions": [question.model_dump(mode="json") for question in event.pulse_questions],
        "first_meeting_within_days": event.milestones.first_meeting_within_days,
    }
    # Full snapshots: apply only when newer than what we hold.
    if not await apply_snapshot(session, programs, {"program_id": event.program_id}, values):
        return
    # A match is planned to last until its program ends.
    await session.execute(
        update(matches)
        .where(matches.c.program_id == event.program_id, matches.c.tenant_id == event.tenant_id)
        .values(planned_end_on=event.ends_on)
    )
    after = repo.HealthRules(event.at_risk_threshold, event.milestones.first_meeting_within_days)
    if before is None or before == after:
        return
    # The coordinator changed what "at risk" means: re-assess the matches whose verdict the change can turn. A
    # shorter first-meeting deadline needs nothing here (the health sweeper compares against the current one).
    for match_id in await repo.matches_to_reassess(session, event.tenant_id, event.program_id, before, after):
        await recompute_health(session, event.tenant_id, match_id, now)


async def apply_profile_updated(session: AsyncSession, event: ProfileUpdated) -> None:
    if await repo.erased_among(session, event.tenant_id, (event.person_id,)):
        return  # a late or replayed snapshot of an erased person: nothing of theirs comes back
    campus = str(event.campus_id) if event.campus_id else None
    values = {"tenant_id": event.tenant_id, "version": event.version, "campus": campus}
    if not await apply_snapshot(session, people, {"person_id": event.person_id}, values):
        return
    label = campus or UNKNOWN_LABEL
    await session.execute(update(matches).where(matches.c.mentor_id == event.person_id).values(mentor_campus=label))
    await session.execute(update(matches).where(matches.c.mentee_id == event.person_id).values(mentee_campus=label))


async def apply_enrollment_changed(session: AsyncSession, event: EnrollmentChanged) -> None:
    if await repo.erased_among(session, event.tenant_id, (event.person_id,)):
        return
    values = {
        "tenant_id": event.tenant_id,
        "person_id": event.person_id,
        "program_id": event.program_id,
        "version": event.version,
        "cohort": event.cohort,
    }
    if not await apply_snapshot(session, enrollments, {"enrollment_id": event.enrollment_id}, values):
        return
    # A match's cohort is its mentee's intake in the program.
    await session.execute(
        update(matches)
        .where(matches.c.mentee_id == event.person_id, matches.c.program_id == event.program_id)
        .values(cohort=event.cohort or UNKNOWN_LABEL)
    )


async def apply_match_accepted(session: AsyncSession, event: MatchAccepted) -> None:
    started_on = event.activated_at.date()
    await repo.ensure_match(
        session,
        tenant_id=event.tenant_id,
        match_id=event.match_id,
        program_id=event.program_id,
        mentor_id=event.mentor_person_id,
        mentee_id=event.mentee_person_id,
        started_on=started_on,
    )
    campus = {
        row.person_id: row.campus
        for row in (
            await session.execute(
                select(people.c.person_id, people.c.campus).where(
                    people.c.person_id.in_([event.mentor_person_id, event.mentee_person_id])
                )
            )
        ).all()
    }
    cohort = (
        await session.execute(
            select(enrollments.c.cohort)
            .where(enrollments.c.person_id == event.mentee_person_id, enrollments.c.program_id == event.program_id)
            .order_by(enrollments.c.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    ends_on = (
        await session.execute(select(programs.c.ends_on).where(programs.c.program_id == event.program_id))
    ).scalar_one_or_none()
    await session.execute(
        update(matches)
        .where(matches.c.match_id == event.match_id)
        .values(
            started_on=started_on,
            activated_at=event.activated_at,
            planned_end_on=ends_on,
            mentor_campus=campus.get(event.mentor_person_id) or UNKNOWN_LABEL,
            mentee_campus=campus.get(event.mentee_person_id) or UNKNOWN_LABEL,
            cohort=cohort or UNKNOWN_LABEL,
        )
    )
    # Scheduling's meetings may have arrived before the match did (topics are not ordered against each other).
    await repo.refresh_first_meeting(session, event.tenant_id, event.match_id)


async def apply_match_ended(session: AsyncSession, event: MatchEnded) -> None:
    await repo.ensure_match(
        session,
        tenant_id=event.tenant_id,
        match_id=event.match_id,
        program_id=event.program_id,
        mentor_id=event.mentor_person_id,
        mentee_id=event.mentee_person_id,
        started_on=event.ended_at.date(),
    )
    # An ended match is no longer "at risk": the coordinator's list is for relationships that can still be saved.
    await session.execute(
        update(matches)
        .where(matches.c.match_id == event.match_id)
        .values(ended_on=event.ended_at.date(), at_risk=False)
    )
    # Pulses of an ended match that nobody answered close now.
    await session.execute(
        update(pulses)
        .where(
            pulses.c.match_id == event.match_id, pulses.c.submitted_at.is_(None), pulses.c.closes_at > event.ended_at
        )
        .values(closes_at=event.ended_at)
    )


async def _check_ins_match(session: AsyncSession, event: CheckInDue | CheckInMissed) -> repo.MatchRow | None:
    """The check-in's match, stored first if this event names it first; None when its id is another tenant's match
    (that tenant's rows are not this event's to change: the event is ignored, with a log line)."""
    await repo.ensure_match(
        session,
        tenant_id=event.tenant_id,
        match_id=event.match_id,
        program_id=event.program_id,
        mentor_id=event.mentor_person_id,
        mentee_id=event.mentee_person_id,
        started_on=event.due_at.date(),
    )
    match = await repo.get_match(session, event.tenant_id, event.match_id)
    if match is None:
        log.warning("check_in_event_for_another_tenants_match", type=type(event).__name__, match_id=str(event.match_id))
    return match


async def apply_check_in_due(session: AsyncSession, event: CheckInDue, now: datetime) -> None:
    # Even for a known match: the pulses below are inserted before anything locks the match row, so an erasure
    # running beside them would not see them and the party's id would stay in a pulse for good.
    await repo.hold_erasures_of(session, event.tenant_id, (event.mentor_person_id, event.mentee_person_id))
    match = await _check_ins_match(session, event)
    if match is None:
        return
    await session.execute(
        insert(check_ins)
        .values(check_in_id=event.check_in_id, tenant_id=event.tenant_id, match_id=event.match_id, due_at=event.due_at)
        .on_conflict_do_nothing(index_elements=[check_ins.c.check_in_id])
    )
    if match.ended_on is None:
        settings = await repo.program_settings(session, event.tenant_id, event.program_id)
        # An erased side gets no pulse: nobody can answer it (the tombstone names the person in the event).
        erased = await repo.erased_among(session, event.tenant_id, (event.mentor_person_id, event.mentee_person_id))
        opened = open_pulses(
            program_id=event.program_id,
            match_id=event.match_id,
            check_in_id=event.check_in_id,
            due_at=event.due_at,
            party_ids=match.party_ids,  # as stored: an erased party's replacement id, never the event's person id
            config=settings.pulse_config,
        )
        rows = [
            {
                "pulse_id": pulse.pulse_id,
                "tenant_id": event.tenant_id,
                "program_id": pulse.program_id,
                "match_id": pulse.match_id,
                "check_in_id": pulse.check_in_id,
                "respondent_id": pulse.respondent_id,
                "role": role,
                "opened_at": pulse.opened_at,
                "closes_at": pulse.closes_at,
            }
            for pulse, role, person_id in zip(
                opened, (MENTOR, MENTEE), (event.mentor_person_id, event.mentee_person_id), strict=True
            )
            if person_id not in erased
        ]
        if rows:
            # A redelivered CheckInDue (same check-in, any event id) finds this side's pulse and opens nothing.
            await session.execute(
                insert(pulses)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[pulses.c.tenant_id, pulses.c.check_in_id, pulses.c.role])
            )
    await recompute_health(session, event.tenant_id, event.match_id, now)


async def apply_check_in_missed(session: AsyncSession, event: CheckInMissed, now: datetime) -> None:
    if await _check_ins_match(session, event) is None:
        return
    await session.execute(
        insert(check_ins)
        .values(
            check_in_id=event.check_in_id,
            tenant_id=event.tenant_id,
            match_id=event.match_id,
            due_at=event.due_at,
            missed=True,
        )
        # Only this tenant's check-in: another tenant's of the same id is not ours to mark (as in 35d8049).
        .on_conflict_do_update(
            index_elements=[check_ins.c.check_in_id],
            set_={"missed": True},
            where=check_ins.c.tenant_id == event.tenant_id,
        )
    )
    await recompute_health(session, event.tenant_id, event.match_id, now)


async def apply_meeting_completed(session: AsyncSession, event: MeetingCompleted, now: datetime) -> None:
    held_on = event.starts_at.date() if event.outcome is MeetingOutcome.HELD else None
    values = {"tenant_id": event.tenant_id, "match_id": event.match_id, "held_on": held_on, "sequence": event.sequence}
    await session.execute(
        insert(meetings)
        .values(meeting_id=event.meeting_id, **values)
        .on_conflict_do_update(
            index_elements=[meetings.c.meeting_id],
            set_=values,
            # Another tenant's meeting of the same id must not take over this tenant's row.
            where=(meetings.c.sequence <= event.sequence) & (meetings.c.tenant_id == event.tenant_id),
        )
    )
    if held_on is not None and event.check_in_id is not None:
        await session.execute(
            update(check_ins)
            .where(check_ins.c.tenant_id == event.tenant_id, check_ins.c.check_in_id == event.check_in_id)
            .values(completed=True)
        )
    # The first held meeting clears no_first_meeting (and a held one marked missed later brings it back).
    await repo.refresh_first_meeting(session, event.tenant_id, event.match_id)
    await recompute_health(session, event.tenant_id, event.match_id, now)


async def apply_profile_erased(session: AsyncSession, event: ProfileErased, now: datetime) -> None:
    """Right to be forgotten: afterwards no row of this service carries the person's id or anything they wrote.

    - Free text goes: pulse notes (and the concern flags that shared them), the text of their agreement answers,
      of a plan they recorded and of their progress notes; their per-question survey answers too.
    - Numbers the program's reports count stay (pulse scores and totals, survey scores, their side of matches and
      check-ins), but under one random id that replaces the person id in every row. Random (uuid4, derived from
      nothing) so no one can compute it; one per person, not one per row, so a person in several matches is still
      one person in the reports' distinct-people counts, and the program's report gives the same figures before and
      after. It is kept in the tombstone, so that a match of theirs feedback sees only after the erasure stands
      under it too: who knows the person id can find it there, as who knows one of their match ids (on the bus)
      already could in that match's row.
    - Their profile facts and enrolments are deleted; a tombstone keyed by a digest of the id (not the id) makes a
      late event naming them project nothing personal again.
    Idempotent: once done nothing carries the id, so a redelivery changes nothing (the tombstone keeps its version
    and its replacement id).
    Their active matches are assessed again, without their flagged concerns.
    """
    tenant_id, person_id = event.tenant_id, event.person_id
    await repo.hold_erasures_of(session, tenant_id, (person_id,))  # first: a match row being inserted is then seen
    replacement = await repo.record_erasure(session, tenant_id, person_id, event.version)
    await session.execute(delete(people).where(people.c.person_id == person_id, people.c.tenant_id == tenant_id))
    await session.execute(
        delete(enrollments).where(and_(enrollments.c.person_id == person_id, enrollments.c.tenant_id == tenant_id))
    )
    their_matches = (
        await session.execute(
            select(matches.c.match_id, matches.c.mentor_id, matches.c.ended_on, matches.c.health_reasons)
            .where(
                matches.c.tenant_id == tenant_id,
                (matches.c.mentor_id == person_id) | (matches.c.mentee_id == person_id),
            )
            .order_by(matches.c.match_id)  # a stable lock order against concurrent pulse answers
            .with_for_update()
        )
    ).all()
    for match in their_matches:
        side = matches.c.mentor_id if match.mentor_id == person_id else matches.c.mentee_id
        reasons = [
            {**reason, "party_id": str(replacement)} if reason.get("party_id") == str(person_id) else reason
            for reason in match.health_reasons
        ]
        await session.execute(
            update(matches)
            .where(matches.c.match_id == match.match_id)
            .values({side: replacement, "health_reasons": reasons})
        )
    match_ids = [match.match_id for match in their_matches]
    await _forget_pulses_of(session, tenant_id, person_id, replacement, match_ids)
    # A coordinator's token subject is often their person id: the record of who resolved a concern goes too.
    await session.execute(
        update(pulses)
        .where(pulses.c.concern_resolved_by == str(person_id), pulses.c.tenant_id == tenant_id)
        .values(concern_resolved_by=str(replacement))
    )
    await session.execute(
        update(surveys)
        .where(surveys.c.respondent_id == person_id, surveys.c.tenant_id == tenant_id)
        .values(respondent_id=replacement, before_answers=None, after_answers=None)
    )
    documents = (
        await session.execute(
            select(agreements.c.match_id, agreements.c.document)
            # One array argument, however many matches: an IN list of each id would pass 32,767 query arguments.
            .where(
                agreements.c.tenant_id == tenant_id,
                agreements.c.match_id == any_(bindparam("match_ids", match_ids, type_=ARRAY(PG_UUID(as_uuid=True)))),
            )
            .with_for_update()
        )
    ).all()
    for row in documents:
        forgotten = forget_party(ExpectationsAgreement.model_validate(row.document), person_id, replacement)
        await session.execute(
            update(agreements)
            .where(agreements.c.match_id == row.match_id)
            .values(document=forgotten.model_dump(mode="json"), version=agreements.c.version + 1)
        )
    for match in their_matches:
        if match.ended_on is None:
            await recompute_health(session, tenant_id, match.match_id, now)


async def _forget_pulses_of(
    session: AsyncSession, tenant_id: UUID, person_id: UUID, replacement: UUID, match_ids: list[UUID]
) -> None:
    """The person's pulses keep their scores under `replacement`, lose their notes and concern flags, and get new
    random ids: an id made before pulse ids were random was derived from (check-in id, person id), so anyone knowing
    both could find the pulse. Their FeedbackSubmitted still waiting in the outbox carry the new id; those sent keep
    theirs."""
    old_ids = (
        await session.execute(
            select(pulses.c.pulse_id)
            .where(pulses.c.respondent_id == person_id, pulses.c.tenant_id == tenant_id)
            .order_by(pulses.c.pulse_id)
            .with_for_update()
        )
    ).scalars()
    new_ids = {str(old): str(uuid4()) for old in old_ids}
    if not new_ids:
        return
    await session.execute(
        update(pulses)
        .where(pulses.c.pulse_id == bindparam("old_id"))
        .values(pulse_id=bindparam("new_id"), respondent_id=replacement, notes=None, concern_flagged=False),
        [{"old_id": UUID(old), "new_id": UUID(new)} for old, new in new_ids.items()],
    )

    def renamed(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "feedback_id": new_ids.get(data["feedback_id"], data["feedback_id"])}

    for some in chunks([str(match_id) for match_id in match_ids]):  # an IN list: at most 32,767 arguments
        await rewrite_waiting(session, some, FeedbackSubmitted, renamed)


# ---------------------------------------------------------------------------------------------------------------
# Health and at-risk


def health_policy(threshold: float, rating_keys: tuple[str, ...]) -> HealthPolicy:
    # The contract allows a threshold of 0 or 1; the domain's state machine needs room on both sides.
    at_risk_below = min(max(threshold, 0.01), 0.99 - RECOVERY_MARGIN)
    return HealthPolicy(at_risk_below=at_risk_below, recovery_margin=RECOVERY_MARGIN, rating_keys=rating_keys)


async def recompute_health(session: AsyncSession, tenant_id: UUID, match_id: UUID, now: datetime) -> None:
    """Assess the match again; a crossing of the threshold emits MatchAtRisk (once per crossing)."""
    match = await repo.get_match(session, tenant_id, match_id, lock=True)
    if match is None or match.ended_on is not None:
        return
    settings = await repo.program_settings(session, tenant_id, match.program_id)
    rating_keys = tuple(
        question.key
        for question in settings.pulse_config.questions
        if question.kind is QuestionKind.SCALE and (question.scale_min, question.scale_max) == (1, 5)
    )
    policy = health_policy(settings.at_risk_threshold, rating_keys)
    history = await repo.health_history(session, match, now)
    assessment = assess_health(
        history,
        match.party_ids,
        policy,
        now=now,
        first_meeting=repo.first_meeting_of(match, settings.first_meeting_within_days),
        concerns_from=await repo.parties_with_open_concerns(session, match_id),
    )
    step = step_risk(RiskState(at_risk=match.at_risk, since=match.at_risk_since), assessment, now, policy)
    reasons = [
        {
            "code": reason.code.value,
            "detail": reason.detail,
            "party_id": str(reason.party_id) if reason.party_id else None,
        }
        for reason in assessment.reasons
    ]
    await repo.set_match_health(
        session,
        match_id,
        score=assessment.score,
        reasons=reasons,
        at_risk=step.state.at_risk,
        at_risk_since=step.state.since,
    )
    if step.transition is None:
        return
    contract_reasons = tuple(
        dict.fromkeys(
            AtRiskReason(reason.code.value) for reason in assessment.reasons if reason.code.value in _CONTRACT_REASONS
        )
    )
    await add_events(
        session,
        [
            MatchAtRisk(
                tenant_id=tenant_id,
                match_id=match_id,
                program_id=match.program_id,
                at_risk=step.transition is RiskTransition.ENTERED_AT_RISK,
                health_score=round(assessment.score, 6),
                threshold=settings.at_risk_threshold,
                reasons=contract_reasons if step.transition is RiskTransition.ENTERED_AT_RISK else (),
                evaluated_at=now,
            )
        ],
    )


async def resolve_concerns(session: AsyncSession, match: repo.MatchRow, resolved_by: str, now: datetime) -> int:
    """A coordinator has dealt with the match's flagged concerns: they stop holding it at risk; how many there were.

    The notes stay readable to coordinators (the participant chose to share them); only the at-risk reason ends.
    """
    await repo.get_match(session, match.tenant_id, match.match_id, lock=True)  # serialise with pulse answers
    resolved = await repo.resolve_concerns(session, match.tenant_id, match.match_id, resolved_by, now)
    if resolved:
        await recompute_health(session, match.tenant_id, match.match_id, now)
    return resolved


async def sweep_first_meeting_deadlines(session: AsyncSession, now: datetime, limit: int) -> int:
    """Re-assess up to `limit` matches whose first-meeting deadline passed by `now` without a meeting.

    Health is otherwise assessed when an event or an answer arrives; a match that simply never meets has neither,
    so this is what marks it at risk once time passes. Returns how many matches were re-assessed.
    """
    claimed = await repo.claim_matches_past_first_meeting_deadline(session, now, limit)
    for tenant_id, match_id in claimed:
        await recompute_health(session, tenant_id, match_id, now)
    return len(claimed)


# ---------------------------------------------------------------------------------------------------------------
# Pulses and surveys


def _score_value(value: int | bool) -> float:
    return float(int(value))  # yes = 1, no = 0; ratings and percents as they are


async def record_pulse_answers(session: AsyncSession, pulse: Pulse, match: repo.MatchRow, now: datetime) -> None:
    """Store the answered pulse, emit FeedbackSubmitted (scores only) and re-assess the match."""
    settings = await repo.program_settings(session, match.tenant_id, match.program_id)
    await repo.save_submitted_pulse(session, match.tenant_id, pulse)
    payload = scores_only_payload(pulse, settings.pulse_config.questions)
    role = ParticipantRole.MENTOR if pulse.respondent_id == match.mentor_id else ParticipantRole.MENTEE
    await add_events(
        session,
        [
            FeedbackSubmitted(
                tenant_id=match.tenant_id,
                feedback_id=pulse.pulse_id,
                match_id=match.match_id,
                program_id=match.program_id,
                check_in_id=pulse.check_in_id,
                kind=FeedbackKind.PULSE,
                respondent_role=role,
                scores={key: _score_value(value) for key, value in payload.scores.items()},
                concern_flagged=pulse.concern_flagged,
                submitted_at=payload.submitted_at,
            )
        ],
    )
    await recompute_health(session, match.tenant_id, match.match_id, now)


class SurveyAlreadyAnsweredError(Exception):
    pass


async def record_survey(
    session: AsyncSession,
    match: repo.MatchRow,
    respondent_id: UUID,
    kind: FeedbackKind,
    answers: dict[str, int],
    now: datetime,
) -> float:
    """Before/after survey: its score is the mean answer; answering the same survey twice is refused."""
    score = sum(answers.values()) / len(answers)
    existing: Any = await repo.survey_row(session, match.match_id, respondent_id)
    prefix = "before" if kind is FeedbackKind.BEFORE_SURVEY else "after"
    if existing is not None and getattr(existing, f"{prefix}_score") is not None:
        raise SurveyAlreadyAnsweredError(kind.value)
    role = match.role_of(respondent_id)
    # The answers are kept beside their score so the respondent can read them back (GET /me/surveys).
    values = {f"{prefix}_score": score, f"{prefix}_answers": answers}
    if existing is None:
        await session.execute(
            insert(surveys).values(
                match_id=match.match_id,
                respondent_id=respondent_id,
                tenant_id=match.tenant_id,
                role=role,
                **values,
            )
        )
    else:
        await session.execute(
            update(surveys)
            .where(surveys.c.match_id == match.match_id, surveys.c.respondent_id == respondent_id)
            .values(**values)
        )
    await add_events(
        session,
        [
            FeedbackSubmitted(
                tenant_id=match.tenant_id,
                # Random: an id derived from (match id, person id) would let anyone knowing both find these answers
                # in every copy of the event after an erasure. A survey is answered once (refused above), so no
                # redelivery needs the same id again; the outbox keeps the one written here.
                feedback_id=uuid4(),
                match_id=match.match_id,
                program_id=match.program_id,
                kind=kind,
                respondent_role=ParticipantRole.MENTOR if role == MENTOR else ParticipantRole.MENTEE,
                scores={key: float(value) for key, value in answers.items()},
                submitted_at=now,
            )
        ],
    )
    return score
