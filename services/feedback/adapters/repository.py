"""Queries of the feedback service. Every read takes the tenant, so another organisation's row is never found."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters.orm import (
    agreements,
    check_ins,
    erasures,
    matches,
    meetings,
    programs,
    pulse_totals,
    pulses,
    surveys,
)
from services.feedback.domain.agreement import AgreementAnswers, ExpectationsAgreement
from services.feedback.domain.health import CheckInRecord, FirstMeeting
from services.feedback.domain.privacy import erasure_key
from services.feedback.domain.pulse import (
    DEFAULT_QUESTIONS,
    Answer,
    Pulse,
    PulseConfig,
    PulseQuestion,
    PulseStatus,
    QuestionKind,
)
from services.feedback.domain.reports import MENTEE, MENTOR
from shared.db import advisory_lock_key
from shared.events.values import PulseQuestionKind

DEFAULT_PULSE_WINDOW = timedelta(days=7)
DEFAULT_AT_RISK_THRESHOLD = 0.4
DEFAULT_MIN_GROUP_SIZE = 5
DEFAULT_FIRST_MEETING_WITHIN_DAYS = 14  # the contract's Milestones default
NO_FIRST_MEETING_CODE = "no_first_meeting"
PRIVATE_NOTE_QUESTION = next(question for question in DEFAULT_QUESTIONS if question.kind is QuestionKind.TEXT)


@dataclass(frozen=True)
class ProgramSettings:
    program_id: UUID
    pulse_config: PulseConfig
    at_risk_threshold: float
    min_group_size: int
    ends_on: date | None
    first_meeting_within_days: int = DEFAULT_FIRST_MEETING_WITHIN_DAYS


@dataclass(frozen=True)
class MatchRow:
    match_id: UUID
    tenant_id: UUID
    program_id: UUID
    mentor_id: UUID
    mentee_id: UUID
    ended_on: date | None
    at_risk: bool
    at_risk_since: datetime | None
    health_score: float
    health_reasons: list[dict[str, Any]]
    activated_at: datetime | None = None
    first_meeting_on: date | None = None

    @property
    def party_ids(self) -> tuple[UUID, UUID]:
        return (self.mentor_id, self.mentee_id)

    def role_of(self, person_id: UUID) -> int:
        return MENTOR if person_id == self.mentor_id else MENTEE


def pulse_config_from_contract(questions: list[dict[str, Any]], window_days: int | None) -> PulseConfig:
    """The program's questions (all numeric in the contract) plus the private note every pulse offers.

    The contract's keys are a superset of the domain's key pattern; a key the domain cannot hold is skipped
    rather than failing the whole program update.
    """
    converted: list[PulseQuestion] = []
    for raw in questions:
        kind = PulseQuestionKind(raw["kind"])
        spec: dict[str, Any] = {"key": raw["key"], "prompt": raw["prompt"]}
        if kind is PulseQuestionKind.RATING_1_5:
            spec |= {"kind": QuestionKind.SCALE, "scale_min": 1, "scale_max": 5}
        elif kind is PulseQuestionKind.YES_NO:
            spec |= {"kind": QuestionKind.YES_NO}
        else:
            spec |= {"kind": QuestionKind.SCALE, "scale_min": 0, "scale_max": 100}
        try:
            converted.append(PulseQuestion.model_validate(spec))
        except ValueError:
            continue
    chosen = tuple(converted) if converted else DEFAULT_QUESTIONS
    if PRIVATE_NOTE_QUESTION.key not in {question.key for question in chosen}:
        chosen = (*chosen, PRIVATE_NOTE_QUESTION)
    window = timedelta(days=window_days) if window_days else DEFAULT_PULSE_WINDOW
    return PulseConfig(questions=chosen, window=window)


async def program_settings(session: AsyncSession, tenant_id: UUID, program_id: UUID) -> ProgramSettings:
    """The program's settings, or the defaults while its ProgramUpdated has not arrived yet."""
    row = (
        await session.execute(
            select(programs).where(programs.c.program_id == program_id, programs.c.tenant_id == tenant_id)
        )
    ).one_or_none()
    if row is None:
        return ProgramSettings(
            program_id, pulse_config_from_contract([], None), DEFAULT_AT_RISK_THRESHOLD, DEFAULT_MIN_GROUP_SIZE, None
        )
    return ProgramSettings(
        program_id=program_id,
        pulse_config=pulse_config_from_contract(row.pulse_questions, row.pulse_window_days),
        at_risk_threshold=row.at_risk_threshold,
        min_group_size=row.min_group_size,
        ends_on=row.ends_on,
        first_meeting_within_days=row.first_meeting_within_days,
    )


async def program_exists(session: AsyncSession, tenant_id: UUID, program_id: UUID) -> bool:
    """Known from a ProgramUpdated, or at least from a match of the program, in this tenant."""
    for table in (programs, matches):
        found = await session.execute(
            select(table.c.program_id).where(table.c.program_id == program_id, table.c.tenant_id == tenant_id).limit(1)
        )
        if found.first() is not None:
            return True
    return False


async def get_match(session: AsyncSession, tenant_id: UUID, match_id: UUID, *, lock: bool = False) -> MatchRow | None:
    query = select(matches).where(matches.c.match_id == match_id, matches.c.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    return MatchRow(
        match_id=row.match_id,
        tenant_id=row.tenant_id,
        program_id=row.program_id,
        mentor_id=row.mentor_id,
        mentee_id=row.mentee_id,
        ended_on=row.ended_on,
        at_risk=row.at_risk,
        at_risk_since=row.at_risk_since,
        health_score=row.health_score,
        health_reasons=row.health_reasons,
        activated_at=row.activated_at,
        first_meeting_on=row.first_meeting_on,
    )


async def ensure_match(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    match_id: UUID,
    program_id: UUID,
    mentor_id: UUID,
    mentee_id: UUID,
    started_on: date,
) -> None:
    """A match row from whichever event names it first (topics are not ordered against each other).

    A party already erased (their ProfileErased overtook this match's first event) is stored under their erasure's
    replacement id, as the erasure would have left them: the person id never enters the table, and the person is
    still one person in the reports however many of their matches arrive late.
    """
    inserted = await session.execute(
        insert(matches)
        .values(
            match_id=match_id,
            tenant_id=tenant_id,
            program_id=program_id,
            mentor_id=mentor_id,
            mentee_id=mentee_id,
            started_on=started_on,
        )
        .on_conflict_do_nothing(index_elements=[matches.c.match_id])
        .returning(matches.c.match_id)
    )
    if inserted.first() is None:
        return
    await hold_erasures_of(session, tenant_id, (mentor_id, mentee_id))
    replaced = await replacements_of(session, tenant_id, (mentor_id, mentee_id))
    if replaced:
        await session.execute(
            update(matches)
            .where(matches.c.match_id == match_id)
            .values(mentor_id=replaced.get(mentor_id, mentor_id), mentee_id=replaced.get(mentee_id, mentee_id))
        )


async def hold_erasures_of(session: AsyncSession, tenant_id: UUID, person_ids: Iterable[UUID]) -> None:
    """Until this transaction ends, no erasure of these people runs beside it: it waits for one under way, and one
    starting later waits for it (the erasure takes the same lock first).

    Without it a new match row and a concurrent erasure (another replica's transaction) miss each other: the
    erasure's query does not see the uncommitted row, the row's tombstone check does not see the uncommitted
    tombstone, and the person id stays for good. Taken in a fixed order, so two holders never wait in a cycle."""
    for key in sorted({erasure_key(tenant_id, person_id) for person_id in person_ids}):
        await session.execute(select(func.pg_advisory_xact_lock(advisory_lock_key(b"feedback-erasure:" + key.bytes))))


async def record_erasure(session: AsyncSession, tenant_id: UUID, person_id: UUID, version: int) -> UUID:
    """The person's tombstone (a digest of their id, never the id), kept at the newest erasure's version; returns the
    random id that replaces the person in every row, the same for each erasure of them (the first one chose it)."""
    tombstone = insert(erasures).values(
        person_key=erasure_key(tenant_id, person_id), tenant_id=tenant_id, version=version, replaced_by=uuid4()
    )
    replaced_by = await session.execute(
        tombstone.on_conflict_do_update(
            index_elements=[erasures.c.person_key],
            set_={
                "version": func.greatest(erasures.c.version, version),
                "replaced_by": func.coalesce(erasures.c.replaced_by, tombstone.excluded.replaced_by),
            },
        ).returning(erasures.c.replaced_by)
    )
    replacement: UUID = replaced_by.scalar_one()
    return replacement


async def replacements_of(session: AsyncSession, tenant_id: UUID, person_ids: Iterable[UUID]) -> dict[UUID, UUID]:
    """The replacement id of each of `person_ids` erased in the tenant (the others are left out). A tombstone
    written before it kept one gets a random one now, which the person's later late matches then share."""
    by_key = {erasure_key(tenant_id, person_id): person_id for person_id in person_ids}
    in_tenant = and_(erasures.c.person_key.in_(by_key), erasures.c.tenant_id == tenant_id)
    await session.execute(
        update(erasures).where(in_tenant, erasures.c.replaced_by.is_(None)).values(replaced_by=func.gen_random_uuid())
    )
    found = await session.execute(select(erasures.c.person_key, erasures.c.replaced_by).where(in_tenant))
    return {by_key[key]: replaced_by for key, replaced_by in found}


async def erased_among(session: AsyncSession, tenant_id: UUID, person_ids: Iterable[UUID]) -> set[UUID]:
    """Those of `person_ids` who have been erased in the tenant."""
    by_key = {erasure_key(tenant_id, person_id): person_id for person_id in person_ids}
    found = await session.execute(
        select(erasures.c.person_key).where(erasures.c.person_key.in_(by_key), erasures.c.tenant_id == tenant_id)
    )
    return {by_key[key] for key in found.scalars()}


async def set_match_health(
    session: AsyncSession,
    match_id: UUID,
    *,
    score: float,
    reasons: list[dict[str, Any]],
    at_risk: bool,
    at_risk_since: datetime | None,
) -> None:
    await session.execute(
        update(matches)
        .where(matches.c.match_id == match_id)
        .values(health_score=score, health_reasons=reasons, at_risk=at_risk, at_risk_since=at_risk_since)
    )


async def health_history(session: AsyncSession, match: MatchRow, now: datetime) -> list[CheckInRecord]:
    """The match's due check-ins with the scores each party gave for them."""
    rows = (
        await session.execute(
            select(check_ins.c.check_in_id, check_ins.c.due_at, check_ins.c.missed)
            .where(check_ins.c.match_id == match.match_id, check_ins.c.due_at <= now)
            .order_by(check_ins.c.due_at)
        )
    ).all()
    answered = (
        await session.execute(
            select(pulses.c.check_in_id, pulses.c.respondent_id, pulses.c.scores).where(
                pulses.c.match_id == match.match_id, pulses.c.submitted_at.is_not(None)
            )
        )
    ).all()
    scores: dict[UUID, dict[UUID, dict[str, int | bool]]] = defaultdict(dict)
    for pulse_row in answered:
        scores[pulse_row.check_in_id][pulse_row.respondent_id] = pulse_row.scores or {}
    return [CheckInRecord(due_at=row.due_at, missed=row.missed, scores=scores.get(row.check_in_id, {})) for row in rows]


def first_meeting_of(match: MatchRow, within_days: int) -> FirstMeeting | None:
    """The match's first-meeting milestone; None while its activation (MatchAccepted) is not known."""
    if match.activated_at is None:
        return None
    return FirstMeeting(
        activated_at=match.activated_at, within=timedelta(days=within_days), held=match.first_meeting_on is not None
    )


async def refresh_first_meeting(session: AsyncSession, tenant_id: UUID, match_id: UUID) -> None:
    """Recompute the match's first meeting from its meetings (a later sequence can turn a held one into missed)."""
    first_held = (
        select(func.min(meetings.c.held_on))
        .where(meetings.c.tenant_id == tenant_id, meetings.c.match_id == match_id)
        .scalar_subquery()
    )
    await session.execute(
        update(matches)
        .where(matches.c.tenant_id == tenant_id, matches.c.match_id == match_id)
        .values(first_meeting_on=first_held)
    )


async def parties_with_open_concerns(session: AsyncSession, match_id: UUID) -> set[UUID]:
    """Respondents of the match whose flagged concern no coordinator has resolved yet."""
    rows = await session.execute(
        select(pulses.c.respondent_id)
        .where(pulses.c.match_id == match_id, pulses.c.concern_flagged, pulses.c.concern_resolved_at.is_(None))
        .distinct()
    )
    return set(rows.scalars())


async def resolve_concerns(
    session: AsyncSession, tenant_id: UUID, match_id: UUID, resolved_by: str, now: datetime
) -> int:
    """Mark every open concern of the match resolved; how many there were."""
    result = await session.execute(
        update(pulses)
        .where(
            pulses.c.tenant_id == tenant_id,
            pulses.c.match_id == match_id,
            pulses.c.concern_flagged,
            pulses.c.concern_resolved_at.is_(None),
        )
        .values(concern_resolved_at=now, concern_resolved_by=resolved_by)
        .returning(pulses.c.pulse_id)
    )
    return len(result.all())


class HealthRules(NamedTuple):
    """The program settings a match's at-risk verdict depends on besides its own history."""

    at_risk_threshold: float
    first_meeting_within_days: int


async def health_rules_of(session: AsyncSession, tenant_id: UUID, program_id: UUID) -> HealthRules | None:
    row = (
        await session.execute(
            select(programs.c.at_risk_threshold, programs.c.first_meeting_within_days).where(
                programs.c.program_id == program_id, programs.c.tenant_id == tenant_id
            )
        )
    ).first()
    return None if row is None else HealthRules(row.at_risk_threshold, row.first_meeting_within_days)


async def matches_to_reassess(
    session: AsyncSession, tenant_id: UUID, program_id: UUID, before: HealthRules, after: HealthRules
) -> list[UUID]:
    """Active matches of the program whose verdict a change of its health rules can turn: those flagged for a
    missing first meeting when the deadline moved later, and, when the threshold moved, those at risk (they may
    recover) or scoring below the new threshold (they may enter). Bounded by the flagged ones, not the program."""
    turnable = []
    if after.first_meeting_within_days > before.first_meeting_within_days:
        turnable.append(matches.c.health_reasons.contains([{"code": NO_FIRST_MEETING_CODE}]))
    if after.at_risk_threshold != before.at_risk_threshold:
        turnable += [matches.c.at_risk, matches.c.health_score < after.at_risk_threshold]
    if not turnable:
        return []
    query = (
        select(matches.c.match_id)
        .where(
            matches.c.tenant_id == tenant_id,
            matches.c.program_id == program_id,
            matches.c.ended_on.is_(None),
            or_(*turnable),
        )
        .order_by(matches.c.match_id)  # a stable lock order against concurrent pulse answers
    )
    return list((await session.execute(query)).scalars())


async def claim_matches_past_first_meeting_deadline(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[UUID, UUID]]:
    """(tenant, match) of active matches past their first-meeting deadline, not yet assessed as such.

    Rows are locked with SKIP LOCKED, so sweepers on several replicas share the work without a lease; once a
    match's reasons include no_first_meeting it is no longer a candidate (each match is flagged once).
    """
    within_days = func.coalesce(programs.c.first_meeting_within_days, DEFAULT_FIRST_MEETING_WITHIN_DAYS)
    query = (
        select(matches.c.tenant_id, matches.c.match_id)
        .select_from(
            matches.outerjoin(
                programs,
                and_(programs.c.program_id == matches.c.program_id, programs.c.tenant_id == matches.c.tenant_id),
            )
        )
        .where(
            matches.c.ended_on.is_(None),
            matches.c.first_meeting_on.is_(None),
            matches.c.activated_at.is_not(None),
            matches.c.activated_at + func.make_interval(0, 0, 0, within_days) < now,
            ~matches.c.health_reasons.contains([{"code": NO_FIRST_MEETING_CODE}]),
        )
        .order_by(matches.c.activated_at)
        .limit(limit)
        .with_for_update(of=matches, skip_locked=True)
    )
    return [(row.tenant_id, row.match_id) for row in (await session.execute(query)).all()]


def pulse_from_row(row: Any) -> Pulse:
    answers: dict[str, Answer] | None = None
    if row.submitted_at is not None:
        answers = {**(row.scores or {}), **(row.notes or {})}
    return Pulse(
        pulse_id=row.pulse_id,
        program_id=row.program_id,
        match_id=row.match_id,
        check_in_id=row.check_in_id,
        respondent_id=row.respondent_id,
        opened_at=row.opened_at,
        closes_at=row.closes_at,
        answers=answers,
        submitted_at=row.submitted_at,
        concern_flagged=row.concern_flagged,
    )


async def get_pulse(session: AsyncSession, tenant_id: UUID, pulse_id: UUID, *, lock: bool = False) -> Pulse | None:
    query = select(pulses).where(pulses.c.pulse_id == pulse_id, pulses.c.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return None if row is None else pulse_from_row(row)


def _status_is(status: PulseStatus, now: datetime) -> ColumnElement[bool]:
    """``Pulse.status(now) is status`` as SQL, so a filtered list pages in the database."""
    if status is PulseStatus.SUBMITTED:
        return pulses.c.submitted_at.is_not(None)
    still_open = pulses.c.closes_at > now
    return and_(pulses.c.submitted_at.is_(None), still_open if status is PulseStatus.OPEN else not_(still_open))


async def pulses_of_respondent(
    session: AsyncSession,
    tenant_id: UUID,
    person_id: UUID,
    *,
    limit: int,
    offset: int = 0,
    status: PulseStatus | None = None,
    now: datetime | None = None,
) -> list[Pulse]:
    query = select(pulses).where(pulses.c.tenant_id == tenant_id, pulses.c.respondent_id == person_id)
    if status is not None:
        assert now is not None, "a status filter needs the instant it holds at"
        query = query.where(_status_is(status, now))
    rows = (
        await session.execute(query.order_by(pulses.c.opened_at.desc(), pulses.c.pulse_id).limit(limit).offset(offset))
    ).all()
    return [pulse_from_row(row) for row in rows]


async def pulses_of_match(
    session: AsyncSession,
    tenant_id: UUID,
    match_id: UUID,
    *,
    limit: int,
    offset: int = 0,
    respondent_ids: Collection[UUID] | None = None,
) -> list[Pulse]:
    """The match's pulses newest first; only those answered by `respondent_ids` when given (empty: none)."""
    query = select(pulses).where(pulses.c.tenant_id == tenant_id, pulses.c.match_id == match_id)
    if respondent_ids is not None:
        query = query.where(pulses.c.respondent_id.in_(respondent_ids))
    rows = (
        await session.execute(query.order_by(pulses.c.opened_at.desc(), pulses.c.pulse_id).limit(limit).offset(offset))
    ).all()
    return [pulse_from_row(row) for row in rows]


async def save_submitted_pulse(
    session: AsyncSession, tenant_id: UUID, pulse: Pulse, usefulness_key: str = "usefulness"
) -> None:
    """Store the answers (scores and private notes apart), mark the check-in completed, add to the totals."""
    assert pulse.answers is not None
    scores = {key: value for key, value in pulse.answers.items() if not isinstance(value, str)}
    notes = {key: value for key, value in pulse.answers.items() if isinstance(value, str)}
    usefulness = scores.get(usefulness_key)
    await session.execute(
        update(pulses)
        .where(pulses.c.pulse_id == pulse.pulse_id)
        .values(
            submitted_at=pulse.submitted_at,
            scores=scores,
            notes=notes or None,
            concern_flagged=pulse.concern_flagged,
            usefulness=usefulness if isinstance(usefulness, int) and not isinstance(usefulness, bool) else None,
        )
    )
    await session.execute(update(check_ins).where(check_ins.c.check_in_id == pulse.check_in_id).values(completed=True))
    if isinstance(usefulness, int) and not isinstance(usefulness, bool):
        role = (await session.execute(select(pulses.c.role).where(pulses.c.pulse_id == pulse.pulse_id))).scalar_one()
        await session.execute(
            insert(pulse_totals)
            .values(
                match_id=pulse.match_id,
                role=role,
                tenant_id=tenant_id,
                program_id=pulse.program_id,
                usefulness_sum=usefulness,
                usefulness_count=1,
            )
            .on_conflict_do_update(
                index_elements=[pulse_totals.c.match_id, pulse_totals.c.role],
                set_={
                    "usefulness_sum": pulse_totals.c.usefulness_sum + usefulness,
                    "usefulness_count": pulse_totals.c.usefulness_count + 1,
                },
            )
        )


async def at_risk_matches(
    session: AsyncSession, tenant_id: UUID, program_id: UUID, *, limit: int, offset: int = 0
) -> list[Any]:
    return list(
        (
            await session.execute(
                select(matches)
                .where(matches.c.tenant_id == tenant_id, matches.c.program_id == program_id, matches.c.at_risk)
                .order_by(matches.c.health_score, matches.c.match_id)
                .limit(limit)
                .offset(offset)
            )
        ).all()
    )


async def load_agreement(
    session: AsyncSession, match: MatchRow, *, lock: bool = False
) -> tuple[ExpectationsAgreement, int]:
    query = select(agreements.c.document, agreements.c.version).where(
        agreements.c.match_id == match.match_id, agreements.c.tenant_id == match.tenant_id
    )
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return ExpectationsAgreement(match_id=match.match_id, party_ids=match.party_ids), 0
    return ExpectationsAgreement.model_validate(row.document), row.version


async def save_agreement(
    session: AsyncSession, tenant_id: UUID, agreement: ExpectationsAgreement, version: int
) -> None:
    document = agreement.model_dump(mode="json")
    if version == 0:
        await session.execute(
            insert(agreements).values(match_id=agreement.match_id, tenant_id=tenant_id, document=document, version=1)
        )
        return
    await session.execute(
        update(agreements)
        .where(and_(agreements.c.match_id == agreement.match_id, agreements.c.version == version))
        .values(document=document, version=version + 1)
    )


async def lock_agreement_row(session: AsyncSession, match: MatchRow) -> None:
    """Serialise writers of one agreement even before its row exists (the match row is the lock)."""
    await get_match(session, match.tenant_id, match.match_id, lock=True)


@dataclass(frozen=True)
class OwnAgreementAnswers:
    match_id: UUID
    answers: AgreementAnswers
    submitted_at: datetime


async def agreement_answers_of(
    session: AsyncSession, tenant_id: UUID, person_id: UUID, *, limit: int, offset: int = 0
) -> list[OwnAgreementAnswers]:
    """The person's own answers to the agreements of their matches, newest match first (match ids are UUIDv7)."""
    party = str(person_id)
    rows = await session.execute(
        select(agreements.c.match_id, agreements.c.document)
        .join(matches, matches.c.match_id == agreements.c.match_id)
        .where(
            agreements.c.tenant_id == tenant_id,
            or_(matches.c.mentor_id == person_id, matches.c.mentee_id == person_id),
            agreements.c.document["answers"].has_key(party),
        )
        .order_by(agreements.c.match_id.desc())
        .limit(limit)
        .offset(offset)
    )
    own = []
    for row in rows:
        agreement = ExpectationsAgreement.model_validate(row.document)
        own.append(OwnAgreementAnswers(row.match_id, agreement.answers[person_id], agreement.submitted_at[person_id]))
    return own


async def surveys_of_respondent(
    session: AsyncSession, tenant_id: UUID, person_id: UUID, *, limit: int, offset: int = 0
) -> list[Any]:
    """The person's survey rows (one per match), newest match first."""
    return list(
        (
            await session.execute(
                select(surveys)
                .where(surveys.c.tenant_id == tenant_id, surveys.c.respondent_id == person_id)
                .order_by(surveys.c.match_id.desc())
                .limit(limit)
                .offset(offset)
            )
        ).all()
    )


async def survey_row(session: AsyncSession, match_id: UUID, respondent_id: UUID) -> Any:
    return (
        await session.execute(
            select(surveys)
            .where(surveys.c.match_id == match_id, surveys.c.respondent_id == respondent_id)
            .with_for_update()
        )
    ).one_or_none()
