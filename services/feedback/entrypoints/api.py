"""HTTP API of the feedback service.

Who sees what (privacy rules of issue 6, enforced here with the domain's `privacy` functions):
- a participant sees their own pulses and agreement answers; the partner's answers only once both submitted;
  everything they submitted reads back under /me (pulses with their notes, survey and agreement answers), only theirs;
  never the partner's pulse ratings or notes (a partner's pulse is a 404, not even its existence shows);
- a coordinator of the program sees ratings, and notes only when the respondent flagged a concern;
- reports hide every group smaller than the program's minimum size, including by subtraction;
- operators get reports and at-risk lists, never individual feedback (they run the platform, not the program);
- a concern flagged in a pulse keeps the match at risk (reason `concern_flagged`) until a coordinator of the
  program resolves it (`POST /v1/matches/{match_id}/concerns/resolve`); the note itself stays inside the service.
A resource of another tenant, or of a program the caller does not run, is a 404.

Pulses close lazily: a pulse's status is computed from its `closes_at` whenever it is read or answered, so no
sweeper has to flip rows (and nothing can be answered after the window, whatever the clock of a sweeper).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback import application as app_logic
from services.feedback.adapters import repository as repo
from services.feedback.adapters.report_sql import program_report
from services.feedback.domain.agreement import (
    MAX_GOALS,
    AgreedPlan,
    AgreementAnswers,
    AgreementComparison,
    AgreementError,
    GoalText,
    PlanGoal,
    ProgressUpdate,
    ShortText,
    Topic,
    record_plan,
    submit_answers,
    update_goal_progress,
    view_for,
)
from services.feedback.domain.privacy import Viewer, pulse_view
from services.feedback.domain.pulse import (
    Pulse,
    PulseError,
    PulseQuestion,
    PulseStatus,
    PulseValidationError,
    submit_pulse,
)
from services.feedback.domain.reports import DIMENSIONS, METRICS, ProgramReport, report_to_csv
from shared.auth import (
    AnyRolePrincipal,
    CoordinatorOrOperatorPrincipal,
    ParticipantPrincipal,
    Principal,
    Role,
    install_auth,
    require_roles,
)
from shared.clock import Clock
from shared.events.values import FeedbackKind
from shared.http_errors import error_responses
from shared.ids import new_id
from shared.paging import Limit, Offset, OffsetPage
from shared.preconditions import IfMatchValue, contradicts, if_match_header, set_etag, stale
from shared.service import API_PREFIX, Runtime, Transaction, create_service_app
from shared.settings import clock_of


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


NOT_FOUND = error_responses(404)
CONFLICT = error_responses(409)
STALE = error_responses(412)
# Optional, as for scheduling's meetings (required would break the clients that send none): the two parties, or one
# party's two devices, may each write the agreement from what they read; a stale ETag is refused, not overwritten.
AgreementIfMatch = Annotated[
    IfMatchValue | None,
    if_match_header(
        'ETag of the agreement as you read it, e.g. "3" (optional; a stale one gives 412, so an edit '
        "made from an old read does not silently replace the partner's or another device's).",
    ),
]
# Every route takes a bearer token (a principal dependency): each may answer 401 and 403, as in the other services.
AUTHENTICATED = error_responses(401, 403)


def now_of(request: Request) -> datetime:
    """The service clock's current instant (pulse windows, timestamps, report dates): one reading per request."""
    clock: Clock = request.app.state.clock
    return clock.now()


Session = Transaction  # committed before the response is sent (shared.service)
Now = Annotated[datetime, Depends(now_of)]
MatchId = Annotated[UUID, Path(description="Match id.")]
ProgramId = Annotated[UUID, Path(description="Program id.")]


def _not_found(what: str, ident: UUID) -> HTTPException:
    """Names what was not found, as the other services do; the same words whether it does not exist or the caller
    may not see it, so a 404 never tells which."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {ident} not found")


async def _match_of_party(session: AsyncSession, principal: Principal, match_id: UUID) -> repo.MatchRow:
    match = await repo.get_match(session, principal.tenant, match_id)
    if match is None or principal.person_id not in match.party_ids:
        raise _not_found("match", match_id)
    return match


async def _require_manages(session: AsyncSession, principal: Principal, program_id: UUID) -> None:
    """The caller runs this program, and the program is known in the caller's tenant."""
    if not principal.manages(program_id) or not await repo.program_exists(session, principal.tenant, program_id):
        raise _not_found("program", program_id)


# ---------------------------------------------------------------------------------------------------------------
# Agreement


class PlanOut(BaseModel):
    goals: tuple[PlanGoal, ...]
    agreements: dict[Topic, str]
    recorded_at: datetime
    recorded_by: UUID


class AgreementOut(BaseModel):
    match_id: UUID
    own: AgreementAnswers | None
    partner: AgreementAnswers | None = Field(description="Only once both parties have submitted.")
    partner_has_submitted: bool
    comparison: AgreementComparison | None = Field(description="Where the two converge and diverge, once both did.")
    plan: PlanOut | None


class PlanIn(_Body):
    goals: list[GoalText] = Field(default_factory=list, max_length=MAX_GOALS * 2)
    agreements: dict[Topic, ShortText] = Field(default_factory=dict)


class ProgressIn(_Body):
    percent: int = Field(ge=0, le=100)
    note: ShortText = ""


def _agreement_out(agreement: Any, viewer: UUID) -> AgreementOut:
    view = view_for(agreement, viewer)
    plan = agreement.plan
    return AgreementOut(
        match_id=agreement.match_id,
        own=view.own,
        partner=view.partner,
        partner_has_submitted=view.partner_has_submitted,
        comparison=view.comparison,
        plan=None if plan is None else PlanOut.model_validate(plan.model_dump()),
    )


agreement_router = APIRouter(prefix="/matches/{match_id}/agreement", tags=["agreement"], responses=AUTHENTICATED)


@agreement_router.get("", responses=NOT_FOUND)
async def read_agreement(
    match_id: MatchId, principal: ParticipantPrincipal, session: Session, response: Response
) -> AgreementOut:
    """The caller's view: own answers; the partner's and the comparison only after both submitted. Its ETag is
    the If-Match for the PUTs."""
    match = await _match_of_party(session, principal, match_id)
    agreement, version = await repo.load_agreement(session, match)
    set_etag(response, version)
    assert principal.person_id is not None
    return _agreement_out(agreement, principal.person_id)


@agreement_router.put("/answers", responses={**NOT_FOUND, **CONFLICT, **STALE})
async def submit_agreement_answers(
    match_id: MatchId,
    answers: AgreementAnswers,
    principal: ParticipantPrincipal,
    session: Session,
    now: Now,
    response: Response,
    if_match: AgreementIfMatch = None,
) -> AgreementOut:
    """Submit (or, until the partner has submitted, replace) the caller's answers; locked once both did."""
    match = await _match_of_party(session, principal, match_id)
    assert principal.person_id is not None
    await repo.lock_agreement_row(session, match)
    agreement, version = await repo.load_agreement(session, match, lock=True)
    if contradicts(if_match, version):
        raise stale()
    try:
        agreement = submit_answers(agreement, principal.person_id, answers, now)
    except AgreementError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await repo.save_agreement(session, match.tenant_id, agreement, version)
    set_etag(response, version + 1)
    return _agreement_out(agreement, principal.person_id)


@agreement_router.put("/plan", responses={**NOT_FOUND, **CONFLICT, **STALE})
async def record_agreed_plan(
    match_id: MatchId,
    body: PlanIn,
    principal: ParticipantPrincipal,
    session: Session,
    now: Now,
    response: Response,
    if_match: AgreementIfMatch = None,
) -> AgreementOut:
    """Record the plan both agreed on (after both submitted); replaces an earlier plan."""
    match = await _match_of_party(session, principal, match_id)
    assert principal.person_id is not None
    await repo.lock_agreement_row(session, match)
    agreement, version = await repo.load_agreement(session, match, lock=True)
    if contradicts(if_match, version):
        raise stale()
    plan = AgreedPlan(
        goals=tuple(PlanGoal(goal_id=new_id(), text=goal) for goal in body.goals),
        agreements=body.agreements,
        recorded_at=now,
        recorded_by=principal.person_id,
    )
    try:
        agreement = record_plan(agreement, plan)
    except AgreementError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await repo.save_agreement(session, match.tenant_id, agreement, version)
    set_etag(response, version + 1)
    return _agreement_out(agreement, principal.person_id)


@agreement_router.post("/goals/{goal_id}/progress", responses={**NOT_FOUND, **CONFLICT})
async def record_goal_progress(
    match_id: MatchId,
    goal_id: UUID,
    body: ProgressIn,
    principal: ParticipantPrincipal,
    session: Session,
    now: Now,
) -> AgreementOut:
    """A party records progress on one goal of the agreed plan (percent done and a note); the agreement read back lists
    every update."""
    match = await _match_of_party(session, principal, match_id)
    assert principal.person_id is not None
    await repo.lock_agreement_row(session, match)
    agreement, version = await repo.load_agreement(session, match, lock=True)
    if agreement.plan is not None and not any(goal.goal_id == goal_id for goal in agreement.plan.goals):
        raise _not_found("goal", goal_id)
    update = ProgressUpdate(percent=body.percent, note=body.note, recorded_at=now, recorded_by=principal.person_id)
    try:
        agreement = update_goal_progress(agreement, goal_id, update)
    except AgreementError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await repo.save_agreement(session, match.tenant_id, agreement, version)
    return _agreement_out(agreement, principal.person_id)


class OwnAgreementAnswersOut(BaseModel):
    match_id: UUID
    answers: AgreementAnswers
    submitted_at: datetime


me_agreement_router = APIRouter(tags=["agreement"], responses=AUTHENTICATED)


@me_agreement_router.get("/me/agreement-answers")
async def list_my_agreement_answers(
    principal: ParticipantPrincipal, session: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[OwnAgreementAnswersOut]:
    """The caller's own expectations-agreement answers, one per match they answered, newest match first.
    Only the caller's: the partner's answers are read through the match's agreement, and only once both submitted."""
    assert principal.person_id is not None
    found = await repo.agreement_answers_of(
        session, principal.tenant, principal.person_id, limit=limit + 1, offset=offset
    )
    return OffsetPage[OwnAgreementAnswersOut].of(
        found,
        offset,
        limit,
        lambda own: OwnAgreementAnswersOut(match_id=own.match_id, answers=own.answers, submitted_at=own.submitted_at),
    )


# ---------------------------------------------------------------------------------------------------------------
# Pulses


class QuestionOut(BaseModel):
    key: str
    prompt: str
    kind: str
    required: bool
    scale_min: int | None = None
    scale_max: int | None = None


class PulseOut(BaseModel):
    pulse_id: UUID
    match_id: UUID
    check_in_id: UUID
    status: PulseStatus
    opened_at: datetime
    closes_at: datetime
    submitted_at: datetime | None
    questions: list[QuestionOut] | None = Field(default=None, description="For the respondent only.")
    scores: dict[str, int | bool] | None = Field(default=None, description="Ratings, once submitted.")
    notes: dict[str, str] | None = Field(default=None, description="Private text: respondent, or flagged concern.")
    concern_flagged: bool | None = None


AnswerValue = Annotated[int | bool | Annotated[str, StringConstraints(max_length=10_000)], Field()]


class PulseAnswersIn(_Body):
    answers: dict[Annotated[str, StringConstraints(max_length=40)], AnswerValue] = Field(max_length=20)
    concern_flagged: bool = Field(default=False, description="Lets the program's coordinators read the note.")


def _question_out(question: PulseQuestion) -> QuestionOut:
    is_scale = question.kind.value == "scale"
    return QuestionOut(
        key=question.key,
        prompt=question.prompt,
        kind=question.kind.value,
        required=question.required,
        scale_min=question.scale_min if is_scale else None,
        scale_max=question.scale_max if is_scale else None,
    )


def _viewer_of(principal: Principal) -> Viewer:
    programs = principal.programs if principal.is_coordinator else frozenset()
    return Viewer(person_id=principal.person_id or UUID(int=0), coordinator_of=programs)


def _pulse_out(
    pulse: Pulse,
    principal: Principal,
    party_ids: tuple[UUID, UUID],
    questions: tuple[PulseQuestion, ...] | None,
    now: datetime,
) -> PulseOut | None:
    """The pulse as this caller may see it (its status as of `now`); None when they may not see it at all."""
    base = PulseOut(
        pulse_id=pulse.pulse_id,
        match_id=pulse.match_id,
        check_in_id=pulse.check_in_id,
        status=pulse.status(now),
        opened_at=pulse.opened_at,
        closes_at=pulse.closes_at,
        submitted_at=pulse.submitted_at,
    )
    if principal.is_participant and principal.person_id == pulse.respondent_id:
        view = pulse_view(pulse, _viewer_of(principal), party_ids)
        return base.model_copy(
            update={
                "questions": [_question_out(q) for q in questions] if questions else None,
                "scores": None if view is None else dict(view.scores),
                "notes": None if view is None else dict(view.notes),
                "concern_flagged": pulse.concern_flagged,
            }
        )
    if principal.person_id in party_ids or not principal.coordinates(pulse.program_id):
        return None  # the partner (even if also a coordinator), or anyone else: nothing
    view = pulse_view(pulse, _viewer_of(principal), party_ids)
    return base.model_copy(
        update={
            "scores": None if view is None else dict(view.scores),
            "notes": None if view is None or not view.notes else dict(view.notes),
            "concern_flagged": pulse.concern_flagged,
        }
    )


def _respondents_visible_to(principal: Principal, match: repo.MatchRow) -> frozenset[UUID] | None:
    """Whose pulses of `match` the caller may see (None: everyone's), as `_pulse_out` decides pulse by pulse;
    the list filters on it in SQL so that every page but the last is full."""
    if principal.person_id is not None and principal.person_id in match.party_ids:
        # A party: their own pulses, and only with a participant's token; never the partner's, even as coordinator.
        return frozenset({principal.person_id}) if principal.is_participant else frozenset()
    return None  # a coordinator of the program (anyone else is refused before)


pulse_router = APIRouter(tags=["pulses"], responses=AUTHENTICATED)


@pulse_router.get("/me/pulses")
async def list_my_pulses(
    principal: ParticipantPrincipal,
    session: Session,
    now: Now,
    pulse_status: Annotated[PulseStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[PulseOut]:
    """The caller's own pulses, newest first (open ones carry their questions)."""
    assert principal.person_id is not None
    found = await repo.pulses_of_respondent(
        session,
        principal.tenant,
        principal.person_id,
        limit=limit + 1,
        offset=offset,
        status=pulse_status,
        now=now,
    )
    out: list[PulseOut] = []
    settings_of: dict[UUID, repo.ProgramSettings] = {}
    for pulse in found[:limit]:
        if pulse.program_id not in settings_of:
            settings_of[pulse.program_id] = await repo.program_settings(session, principal.tenant, pulse.program_id)
        questions = settings_of[pulse.program_id].pulse_config.questions
        item = _pulse_out(pulse, principal, (pulse.respondent_id, pulse.respondent_id), questions, now)
        if item is not None:
            out.append(item)
    return OffsetPage[PulseOut](items=out, next_offset=offset + limit if len(found) > limit else None)


@pulse_router.get("/pulses/{pulse_id}", responses=NOT_FOUND)
async def read_pulse(pulse_id: UUID, principal: AnyRolePrincipal, session: Session, now: Now) -> PulseOut:
    pulse = await repo.get_pulse(session, principal.tenant, pulse_id)
    if pulse is None:
        raise _not_found("pulse", pulse_id)
    match = await repo.get_match(session, principal.tenant, pulse.match_id)
    if match is None:
        raise _not_found("pulse", pulse_id)
    settings = await repo.program_settings(session, principal.tenant, pulse.program_id)
    out = _pulse_out(pulse, principal, match.party_ids, settings.pulse_config.questions, now)
    if out is None:
        raise _not_found("pulse", pulse_id)
    return out


@pulse_router.post("/pulses/{pulse_id}/answers", responses={**NOT_FOUND, **CONFLICT})
async def answer_pulse(
    pulse_id: UUID, body: PulseAnswersIn, principal: ParticipantPrincipal, session: Session, now: Now
) -> PulseOut:
    """Answer one's own open pulse; emits FeedbackSubmitted (scores only) and re-assesses the match."""
    pulse = await repo.get_pulse(session, principal.tenant, pulse_id, lock=True)
    if pulse is None or pulse.respondent_id != principal.person_id:
        raise _not_found("pulse", pulse_id)
    match = await repo.get_match(session, principal.tenant, pulse.match_id)
    if match is None:
        raise _not_found("pulse", pulse_id)
    settings = await repo.program_settings(session, principal.tenant, pulse.program_id)
    try:
        answered = submit_pulse(
            pulse, body.answers, config=settings.pulse_config, now=now, concern_flagged=body.concern_flagged
        )
    except PulseValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", "answers", key), "msg": problem, "type": "value_error", "input": body.answers.get(key)}
                for key, problem in sorted(exc.problems.items())
            ]
        ) from exc
    except PulseError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    await app_logic.record_pulse_answers(session, answered, match, now)
    out = _pulse_out(answered, principal, match.party_ids, settings.pulse_config.questions, now)
    assert out is not None
    return out


@pulse_router.get("/matches/{match_id}/pulses", responses=NOT_FOUND)
async def list_match_pulses(
    match_id: MatchId, principal: AnyRolePrincipal, session: Session, now: Now, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[PulseOut]:
    """Coordinators: every pulse of the match (ratings; notes only where a concern was flagged).
    A party: only their own pulses of this match, never the partner's."""
    match = await repo.get_match(session, principal.tenant, match_id)
    if match is None or not (principal.person_id in match.party_ids or principal.coordinates(match.program_id)):
        raise _not_found("match", match_id)
    settings = await repo.program_settings(session, principal.tenant, match.program_id)
    found = await repo.pulses_of_match(
        session,
        principal.tenant,
        match_id,
        limit=limit + 1,
        offset=offset,
        respondent_ids=_respondents_visible_to(principal, match),
    )
    questions = settings.pulse_config.questions
    views = (_pulse_out(pulse, principal, match.party_ids, questions, now) for pulse in found[:limit])
    items = [view for view in views if view is not None]
    return OffsetPage[PulseOut](items=items, next_offset=offset + limit if len(found) > limit else None)


# ---------------------------------------------------------------------------------------------------------------
# Surveys


class SurveyKind(StrEnum):
    BEFORE = "before"
    AFTER = "after"


class SurveyIn(_Body):
    kind: SurveyKind
    answers: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")], Annotated[int, Field(ge=1, le=5)]
    ] = Field(min_length=1, max_length=20)


class SurveyOut(BaseModel):
    match_id: UUID
    kind: SurveyKind
    score: float = Field(description="The mean answer (1 to 5).")


@pulse_router.post("/matches/{match_id}/surveys", status_code=201, responses={**NOT_FOUND, **CONFLICT})
async def answer_survey(
    match_id: MatchId, body: SurveyIn, principal: ParticipantPrincipal, session: Session, now: Now
) -> SurveyOut:
    """The before/after survey of a party (1–5 answers); the report's survey change is after − before."""
    match = await _match_of_party(session, principal, match_id)
    assert principal.person_id is not None
    kind = FeedbackKind.BEFORE_SURVEY if body.kind is SurveyKind.BEFORE else FeedbackKind.AFTER_SURVEY
    try:
        score = await app_logic.record_survey(session, match, principal.person_id, kind, body.answers, now)
    except app_logic.SurveyAlreadyAnsweredError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "this survey has already been answered") from exc
    return SurveyOut(match_id=match_id, kind=body.kind, score=score)


class SurveyAnswersOut(BaseModel):
    score: float = Field(description="The mean answer.")
    answers: dict[str, int] | None = Field(description="Per question (1-5); null when answered before they were kept.")


class OwnSurveyOut(BaseModel):
    match_id: UUID
    before: SurveyAnswersOut | None
    after: SurveyAnswersOut | None


def _survey_answers_out(score: float | None, answers: dict[str, int] | None) -> SurveyAnswersOut | None:
    return None if score is None else SurveyAnswersOut(score=score, answers=answers)


@pulse_router.get("/me/surveys")
async def list_my_surveys(
    principal: ParticipantPrincipal, session: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[OwnSurveyOut]:
    """The caller's own before/after survey answers, one entry per match, newest match first."""
    assert principal.person_id is not None
    rows = await repo.surveys_of_respondent(
        session, principal.tenant, principal.person_id, limit=limit + 1, offset=offset
    )
    return OffsetPage[OwnSurveyOut].of(
        rows,
        offset,
        limit,
        lambda row: OwnSurveyOut(
            match_id=row.match_id,
            before=_survey_answers_out(row.before_score, row.before_answers),
            after=_survey_answers_out(row.after_score, row.after_answers),
        ),
    )


# ---------------------------------------------------------------------------------------------------------------
# Coordinators: at-risk matches and reports


class ReasonOut(BaseModel):
    code: str
    detail: str
    party_id: UUID | None = None


class AtRiskMatchOut(BaseModel):
    match_id: UUID
    mentor_person_id: UUID
    mentee_person_id: UUID
    # The names this list had first; a person is a *person_id in every other service's API.
    mentor_id: UUID = Field(deprecated=True, description="Deprecated: the same as mentor_person_id.")
    mentee_id: UUID = Field(deprecated=True, description="Deprecated: the same as mentee_person_id.")
    health_score: float = Field(
        description="0 to 1 from recent pulse ratings and attendance (1 before any check-in); below the program's "
        "at_risk_threshold it is one reason to be at risk."
    )
    reasons: list[ReasonOut]
    at_risk_since: datetime | None


program_router = APIRouter(prefix="/programs/{program_id}", tags=["programs"], responses=AUTHENTICATED)


@program_router.get("/at-risk", responses=NOT_FOUND)
async def list_at_risk_matches(
    program_id: ProgramId,
    principal: CoordinatorOrOperatorPrincipal,
    session: Session,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[AtRiskMatchOut]:
    """Matches of the program currently at risk, worst health first."""
    await _require_manages(session, principal, program_id)
    rows = await repo.at_risk_matches(session, principal.tenant, program_id, limit=limit + 1, offset=offset)
    return OffsetPage[AtRiskMatchOut].of(
        rows,
        offset,
        limit,
        lambda row: AtRiskMatchOut(
            match_id=row.match_id,
            mentor_person_id=row.mentor_id,
            mentee_person_id=row.mentee_id,
            mentor_id=row.mentor_id,
            mentee_id=row.mentee_id,
            health_score=row.health_score,
            reasons=[ReasonOut.model_validate(reason) for reason in row.health_reasons],
            at_risk_since=row.at_risk_since,
        ),
    )


CoordinatorPrincipal = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]


class ConcernsResolvedOut(BaseModel):
    match_id: UUID
    resolved: int = Field(description="How many flagged concerns this call resolved.")
    at_risk: bool = Field(description="Whether the match is still at risk (other reasons may hold it there).")
    reasons: list[ReasonOut]


concern_router = APIRouter(tags=["programs"], responses=AUTHENTICATED)


@concern_router.post("/matches/{match_id}/concerns/resolve", responses={**NOT_FOUND, **CONFLICT})
async def resolve_match_concerns(
    match_id: MatchId, principal: CoordinatorPrincipal, session: Session, now: Now
) -> ConcernsResolvedOut:
    """A coordinator of the program has dealt with the concerns flagged on this match: they stop holding it at
    risk (recovery then follows the usual rules). 409 when there is no open concern."""
    match = await repo.get_match(session, principal.tenant, match_id)
    # A party of the match (even one who also coordinates) does not handle concerns about their own relationship.
    if match is None or principal.person_id in match.party_ids or not principal.coordinates(match.program_id):
        raise _not_found("match", match_id)
    resolved = await app_logic.resolve_concerns(session, match, principal.subject, now)
    if not resolved:
        raise HTTPException(status.HTTP_409_CONFLICT, "this match has no open concern")
    after = await repo.get_match(session, principal.tenant, match_id)
    assert after is not None
    return ConcernsResolvedOut(
        match_id=match_id,
        resolved=resolved,
        at_risk=after.at_risk,
        reasons=[ReasonOut.model_validate(reason) for reason in after.health_reasons],
    )


class ReportRowOut(BaseModel):
    breakdown: list[str] = Field(description="Dimensions of this row; empty for the grand total.")
    program: str | None = None
    campus: str | None = None
    cohort: str | None = None
    role: str | None = None
    participants: int | None = Field(description="Distinct people; null when the row is suppressed.")
    metrics: dict[str, float | None]
    suppressed: Literal["small_group", "complementary"] | None


class ReportOut(BaseModel):
    program_id: UUID
    as_of: date
    min_group_size: int
    metrics: list[str]
    rows: list[ReportRowOut]


async def _report(
    session: AsyncSession, principal: Principal, program_id: UUID, as_of: date | None, now: datetime
) -> ProgramReport:
    await _require_manages(session, principal, program_id)
    settings = await repo.program_settings(session, principal.tenant, program_id)
    return await program_report(
        session, principal.tenant, program_id, as_of or now.date(), min_group_size=settings.min_group_size
    )


# The report counts check-ins due before the day after as_of: that day must exist.
LAST_REPORT_DATE = date.max - timedelta(days=1)
AsOf = Annotated[date | None, Query(le=LAST_REPORT_DATE, description="Report date (default today, UTC).")]


@program_router.get("/report", responses=NOT_FOUND)
async def read_program_report(
    program_id: ProgramId, principal: CoordinatorOrOperatorPrincipal, session: Session, now: Now, as_of: AsOf = None
) -> ReportOut:
    """Active-match rate, retention, satisfaction, check-in completion, days to first meeting, survey change;
    by every combination of program, campus, cohort and role. Small groups are hidden."""
    report = await _report(session, principal, program_id, as_of, now)
    rows = []
    for row in report.rows:
        labels = dict(row.key)
        rows.append(
            ReportRowOut(
                breakdown=list(row.breakdown),
                participants=row.participants,
                metrics=dict(row.metrics),
                suppressed=row.suppressed.value if row.suppressed else None,
                **{dimension: labels.get(dimension) for dimension in DIMENSIONS},
            )
        )
    return ReportOut(
        program_id=program_id,
        as_of=report.as_of,
        min_group_size=report.min_group_size,
        metrics=list(METRICS),
        rows=rows,
    )


@program_router.get(
    "/report.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **NOT_FOUND},
)
async def export_program_report(
    program_id: ProgramId, principal: CoordinatorOrOperatorPrincipal, session: Session, now: Now, as_of: AsOf = None
) -> Response:
    """The program report (as GET .../report) as CSV: one row per group of each breakdown, one column per metric;
    a group smaller than the program's minimum size says why in `suppressed` instead of numbers."""
    report = await _report(session, principal, program_id, as_of, now)
    return Response(
        content=report_to_csv(report),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="report-{program_id}-{report.as_of}.csv"'},
    )


# ---------------------------------------------------------------------------------------------------------------


def build_app(runtime: Runtime, clock: Clock | None = None) -> FastAPI:
    """The HTTP app; `clock` (default: the one the settings ask for) is where every endpoint reads the time."""
    app = create_service_app(
        runtime,
        title="Mentorloom feedback",
        description="Expectations agreements, check-in pulses, privacy-preserving feedback, at-risk matches and "
        "program reports.",
    )
    app.state.clock = clock or clock_of(runtime.settings)
    install_auth(app, runtime.settings)
    app.include_router(agreement_router, prefix=API_PREFIX)
    app.include_router(me_agreement_router, prefix=API_PREFIX)
    app.include_router(pulse_router, prefix=API_PREFIX)
    app.include_router(program_router, prefix=API_PREFIX)
    app.include_router(concern_router, prefix=API_PREFIX)
    return app
