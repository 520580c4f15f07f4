"""The matching HTTP API: short lists and requests, cohort rounds and their approval, the match lifecycle.

Who may do what: a mentee reads their own short list and requests mentors; a participant lists their own matches;
the two people of a match see it once it was sent to them (with the other person's name, time zone and languages,
and the e-mail address only while it is active and with that person's consent), accept, decline or end it;
coordinators (and operators) of a program read short lists, run and approve rounds, create, decline and end matches,
and alone see the private reason a match ended and its at-risk signal. Everything is scoped by the token's
tenant, and a resource the caller may not see is a 404 (no existence oracle).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from sqlalchemy import Row, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.adapters.orm import matches, people, rounds
from services.matching.application import choosing
from services.matching.application import matches as match_cases
from services.matching.application import rounds as round_cases
from services.matching.application.errors import ConflictError, ForbiddenError, NotFoundError
from services.matching.application.pool import program_pool
from services.matching.application.program_data import (
    ProgramData,
    load_program,
    load_program_data,
    lock_enrolments,
)
from services.matching.application.translate import policy_of
from services.matching.domain.lifecycle import IllegalTransitionError, MatchState, Party
from services.matching.entrypoints.schemas import (
    ApproveRound,
    CreateMatch,
    EndedOut,
    EndMatch,
    MatchOut,
    PartnerOut,
    PoolOut,
    RequestMentor,
    RoundOut,
    ShortlistOut,
)
from shared.auth import AnyRolePrincipal, CoordinatorOrOperatorPrincipal, ParticipantPrincipal, Principal
from shared.clock import Clock
from shared.events.values import ActorRole
from shared.http_errors import error_responses, install_domain_errors
from shared.paging import Limit, Offset, OffsetPage
from shared.service import API_PREFIX, Runtime, Transaction, create_service_app
from shared.settings import clock_of


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(401, 403, 404, 422, *codes)


def clock(request: Request) -> Clock:
    found: Clock = request.app.state.clock
    return found


Session = Transaction  # committed before the response is sent (shared.service)
Now = Annotated[Clock, Depends(clock)]
ProgramId = Annotated[uuid.UUID, Path()]
PersonId = Annotated[uuid.UUID, Path()]
MatchId = Annotated[uuid.UUID, Path()]
RoundId = Annotated[uuid.UUID, Path()]

router = APIRouter(tags=["matching"])


async def _program_data(db: AsyncSession, principal: Principal, program_id: uuid.UUID, now: Clock) -> ProgramData:
    # Lazy expiry first, so proposals past their window hold no slot in what follows.
    await match_cases.expire_due(db, now.now(), tenant=principal.tenant, program_id=program_id)
    data = await load_program_data(db, principal.tenant, program_id)
    if data is None:
        raise NotFoundError(f"program {program_id} not found")
    return data


def _may_read_shortlist(principal: Principal, program_id: uuid.UUID, person_id: uuid.UUID) -> bool:
    return principal.is_person(person_id) or principal.manages(program_id)


async def _visible_match(db: AsyncSession, principal: Principal, match_id: uuid.UUID, now: Clock) -> Row[Any]:
    await match_cases.expire_due(db, now.now(), tenant=principal.tenant, match_id=match_id)
    row = (
        await db.execute(
            select(matches)
            .where(matches.c.tenant_id == principal.tenant, matches.c.match_id == match_id)
            .with_for_update()
        )
    ).first()
    if row is None or not (principal.manages(row.program_id) or _sent_to(principal, row)):
        raise NotFoundError(f"match {match_id} not found")
    return row


def _sent_to(principal: Principal, row: Row[Any]) -> bool:
    """Whether the caller is one of the match's two people and it was sent to them (a round's proposal awaiting the
    coordinator's approval, or dropped unsent, never was)."""
    party = principal.is_person(row.mentee_person_id) or principal.is_person(row.mentor_person_id)
    return party and row.proposed_at is not None


def _party(principal: Principal, row: Row[Any]) -> Party | None:
    if principal.is_person(row.mentee_person_id):
        return Party.MENTEE
    if principal.is_person(row.mentor_person_id):
        return Party.MENTOR
    return None


def _match_out(principal: Principal, row: Row[Any]) -> MatchOut:
    """A coordinator's view (no partner details: they read profiles themselves)."""
    return MatchOut.of(row, show_private=principal.manages(row.program_id))


_PARTNER_SHOWN = (MatchState.PROPOSED.value, MatchState.ACTIVE.value)


async def _snapshots(
    db: AsyncSession, principal: Principal, person_ids: set[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The profile snapshots of these people (an erased person has none), by person id."""
    if not person_ids:
        return {}
    found = await db.execute(
        select(people.c.person_id, people.c.snapshot).where(
            people.c.tenant_id == principal.tenant,
            people.c.person_id.in_(person_ids),
            people.c.snapshot.is_not(None),
        )
    )
    return {r.person_id: r.snapshot for r in found}


async def _shortlist_out(
    db: AsyncSession, principal: Principal, program_id: uuid.UUID, found: choosing.MenteeShortlist
) -> ShortlistOut:
    mentors = await _snapshots(db, principal, {uuid.UUID(e.mentor_id) for e in found.entries})
    return ShortlistOut.of(program_id, found if principal.manages(program_id) else found.for_mentee(), mentors)


async def _views(db: AsyncSession, principal: Principal, rows: Sequence[Row[Any]]) -> list[MatchOut]:
    """The matches as the caller may see them: a party's with their partner (one query for the whole list)."""
    partner_of: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        party = _party(principal, row)
        if party is not None and row.state in _PARTNER_SHOWN:
            partner_of[row.match_id] = row.mentor_person_id if party is Party.MENTEE else row.mentee_person_id
    snapshots = await _snapshots(db, principal, set(partner_of.values()))
    views = []
    for row in rows:
        party = _party(principal, row)
        partner_id = partner_of.get(row.match_id)
        partner = None
        if partner_id is not None and partner_id in snapshots:
            active = row.state == MatchState.ACTIVE.value
            partner = PartnerOut.of(partner_id, snapshots[partner_id], active=active)
        views.append(
            MatchOut.of(
                row,
                show_private=principal.manages(row.program_id),
                party=None if party is None else party.value,
                partner=partner,
            )
        )
    return views


async def _view(db: AsyncSession, principal: Principal, row: Row[Any]) -> MatchOut:
    (view,) = await _views(db, principal, [row])
    return view


async def _load_match(db: AsyncSession, match_id: uuid.UUID) -> Row[Any]:
    return (await db.execute(select(matches).where(matches.c.match_id == match_id))).one()


@router.get("/programs/{program_id}/mentees/{person_id}/shortlist", response_model=ShortlistOut, responses=_errors())
async def read_shortlist(
    program_id: ProgramId, person_id: PersonId, principal: AnyRolePrincipal, db: Session, now: Now
) -> ShortlistOut:
    """The mentee's ranked, explained short list (the program's 3–4 mentors), spreading exposure across mentors."""
    if not _may_read_shortlist(principal, program_id, person_id):
        raise NotFoundError(f"program {program_id} not found")
    data = await _program_data(db, principal, program_id, now)
    return await _shortlist_out(db, principal, program_id, await choosing.shortlist(db, data, person_id, now.now()))


@router.post(
    "/programs/{program_id}/mentees/{person_id}/requests",
    response_model=MatchOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(409),
)
async def request_mentor(
    program_id: ProgramId,
    person_id: PersonId,
    body: RequestMentor,
    principal: ParticipantPrincipal,
    db: Session,
    now: Now,
) -> MatchOut:
    """The mentee asks a mentor; the request counts as the mentee's acceptance and expires after the window.

    409 once the program is closed, archived or past its last day (as for every route that starts a match)."""
    if not principal.is_person(person_id):
        raise NotFoundError(f"mentee {person_id} not found")
    # Both people's enrolments are locked before anything is counted (see lock_enrolments).
    await lock_enrolments(db, principal.tenant, program_id, [body.mentor_person_id, person_id])
    data = await _program_data(db, principal, program_id, now)
    data.require_new_matches_allowed(now.now())
    match_id = await choosing.request_mentor(db, data, person_id, body.mentor_person_id, now.now())
    return await _view(db, principal, await _load_match(db, match_id))


@router.post("/matches", response_model=MatchOut, status_code=status.HTTP_201_CREATED, responses=_errors(409))
async def create_match(body: CreateMatch, principal: CoordinatorOrOperatorPrincipal, db: Session, now: Now) -> MatchOut:
    """A coordinator pairs two people by hand (both still accept; hard rules apply)."""
    if not principal.manages(body.program_id):
        raise NotFoundError(f"program {body.program_id} not found")
    await lock_enrolments(db, principal.tenant, body.program_id, [body.mentor_person_id, body.mentee_person_id])
    data = await _program_data(db, principal, body.program_id, now)
    data.require_new_matches_allowed(now.now())
    match_id = await choosing.coordinator_match(db, data, body.mentee_person_id, body.mentor_person_id, now.now())
    return _match_out(principal, await _load_match(db, match_id))


@router.get("/matches/{match_id}", response_model=MatchOut, responses=_errors())
async def read_match(match_id: MatchId, principal: AnyRolePrincipal, db: Session, now: Now) -> MatchOut:
    return await _view(db, principal, await _visible_match(db, principal, match_id, now))


@router.post("/matches/{match_id}/accept", response_model=MatchOut, responses=_errors(409))
async def accept_match(match_id: MatchId, principal: AnyRolePrincipal, db: Session, now: Now) -> MatchOut:
    """One of the two people consents; the match is active once both have."""
    # Enrolments before the match row (the order every writer follows): two acceptances of one mentee's
    # proposals then run one after the other, and the second sees the first's activation.
    pair = (
        await db.execute(
            select(matches.c.program_id, matches.c.mentor_person_id, matches.c.mentee_person_id).where(
                matches.c.tenant_id == principal.tenant, matches.c.match_id == match_id
            )
        )
    ).first()
    if pair is not None:
        await lock_enrolments(db, principal.tenant, pair.program_id, [pair.mentor_person_id, pair.mentee_person_id])
    row = await _visible_match(db, principal, match_id, now)
    party = _party(principal, row)
    if party is None:
        raise ForbiddenError("only the mentee and the mentor of a match can accept it")
    program = await load_program(db, principal.tenant, row.program_id)
    per_mentee = policy_of(program).mentors_per_mentee if program is not None else 1
    updated = await match_cases.accept(db, row, party, now.now(), per_mentee)
    return await _view(db, principal, updated)


@router.post("/matches/{match_id}/decline", response_model=MatchOut, responses=_errors(409))
async def decline_match(match_id: MatchId, principal: AnyRolePrincipal, db: Session, now: Now) -> MatchOut:
    """A party turns a proposal down (a mentee withdraws their own request); a coordinator may reject it, also a
    round's proposal still awaiting approval (dropped unsent, no event; the approval counts it as the coordinator's
    drop)."""
    row = await _visible_match(db, principal, match_id, now)
    party = _party(principal, row)
    actor = ActorRole(party.value) if party is not None else ActorRole.COORDINATOR
    return await _view(db, principal, await match_cases.decline(db, row, actor, now.now()))


@router.post("/matches/{match_id}/end", response_model=EndedOut, responses=_errors(409))
async def end_match(match_id: MatchId, body: EndMatch, principal: AnyRolePrincipal, db: Session, now: Now) -> EndedOut:
    """Either party or a coordinator ends an active match; the private reason stays with coordinators.

    The mentee is offered new matches at once: the answer carries their fresh short list (without the ended pair)
    when the caller may read it, and the mentee's next short list call gives the same.
    """
    row = await _visible_match(db, principal, match_id, now)
    party = _party(principal, row)
    actor = ActorRole(party.value) if party is not None else ActorRole.COORDINATOR
    updated = await match_cases.end(db, row, actor, body.reason_category, body.private_reason, now.now())
    rematch = None
    if _may_read_shortlist(principal, row.program_id, row.mentee_person_id):
        data = await load_program_data(db, principal.tenant, row.program_id)
        if data is not None and str(row.mentee_person_id) in data.mentees:
            found = await choosing.shortlist(db, data, row.mentee_person_id, now.now())
            rematch = await _shortlist_out(db, principal, row.program_id, found)
    return EndedOut(match=await _view(db, principal, updated), rematch=rematch)


@router.get("/me/matches", response_model=OffsetPage[MatchOut], responses=_errors())
async def list_my_matches(
    principal: ParticipantPrincipal,
    db: Session,
    now: Now,
    state: MatchState | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[MatchOut]:
    """The caller's own matches, newest first, as mentee or mentor: the proposals waiting for their answer
    (``?state=proposed``), their active matches with the partner's details, and past ones."""
    person = principal.person_id
    if person is None:
        raise ForbiddenError("this token names no person")
    await match_cases.expire_due(db, now.now(), tenant=principal.tenant, person_id=person)
    query = select(matches).where(
        matches.c.tenant_id == principal.tenant,
        or_(matches.c.mentee_person_id == person, matches.c.mentor_person_id == person),
        matches.c.proposed_at.is_not(None),  # sent to them (see _sent_to)
    )
    if state is not None:
        query = query.where(matches.c.state == state.value)
    found = await db.execute(
        query.order_by(matches.c.created_at.desc(), matches.c.match_id).limit(limit + 1).offset(offset)
    )
    views = await _views(db, principal, list(found))
    return OffsetPage[MatchOut].of(views, offset, limit, lambda view: view)


@router.get("/programs/{program_id}/matches", response_model=OffsetPage[MatchOut], responses=_errors())
async def list_program_matches(
    program_id: ProgramId,
    principal: CoordinatorOrOperatorPrincipal,
    db: Session,
    now: Now,
    state: MatchState | None = None,
    at_risk: Annotated[
        bool | None, Query(description="true: only the matches feedback marks at risk; false: only the others.")
    ] = None,
    person_id: Annotated[
        uuid.UUID | None, Query(description="Only this person's matches, as mentee or mentor.")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[MatchOut]:
    """The program's matches for its coordinators, e.g. ``?at_risk=true`` for those needing attention, or
    ``?person_id=`` for one person's (an exit or a re-match to handle)."""
    if not principal.manages(program_id):
        raise NotFoundError(f"program {program_id} not found")
    await _program_data(db, principal, program_id, now)
    query = select(matches).where(matches.c.tenant_id == principal.tenant, matches.c.program_id == program_id)
    if state is not None:
        query = query.where(matches.c.state == state.value)
    if at_risk is not None:
        query = query.where(matches.c.at_risk.is_(at_risk))
    if person_id is not None:
        query = query.where(or_(matches.c.mentee_person_id == person_id, matches.c.mentor_person_id == person_id))
    found = await db.execute(query.order_by(matches.c.created_at, matches.c.match_id).limit(limit + 1).offset(offset))
    return OffsetPage[MatchOut].of(found, offset, limit, lambda row: _match_out(principal, row))


@router.get("/programs/{program_id}/pool", response_model=PoolOut, responses=_errors())
async def read_pool(program_id: ProgramId, principal: CoordinatorOrOperatorPrincipal, db: Session, now: Now) -> PoolOut:
    """The program's pool as matching sees it, for its coordinators before a round: active mentee and mentor
    enrolments received, those still waiting for their profile, unmatched mentees, mentors' total and free capacity,
    and when the newest event applied for the program was sent. Matching learns participants from events, a moment
    after the profiles service; a 404 until it has received the program."""
    if not principal.manages(program_id):
        raise NotFoundError(f"program {program_id} not found")
    data = await _program_data(db, principal, program_id, now)
    return PoolOut.of(program_id, await program_pool(db, data))


async def _round_out(db: AsyncSession, principal: Principal, round_id: uuid.UUID) -> RoundOut:
    row = (
        await db.execute(select(rounds).where(rounds.c.tenant_id == principal.tenant, rounds.c.round_id == round_id))
    ).first()
    if row is None or not principal.manages(row.program_id):
        raise NotFoundError(f"round {round_id} not found")
    proposals = await db.execute(
        select(matches).where(matches.c.round_id == round_id).order_by(matches.c.mentee_person_id, matches.c.score)
    )
    return RoundOut.model_validate({**row._mapping, "proposals": [_match_out(principal, p) for p in proposals]})


@router.post(
    "/programs/{program_id}/rounds",
    response_model=RoundOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(409),
)
async def run_round(
    program_id: ProgramId, principal: CoordinatorOrOperatorPrincipal, db: Session, now: Now
) -> RoundOut:
    """Solve the program's cohort round (proven optimal when the certificate says so); proposals wait for approval.

    409 once the program is closed, archived or past its last day."""
    if not principal.manages(program_id):
        raise NotFoundError(f"program {program_id} not found")
    data = await _program_data(db, principal, program_id, now)
    data.require_new_matches_allowed(now.now())
    round_id = await round_cases.run_round(db, data, now.now())
    return await _round_out(db, principal, round_id)


@router.get("/rounds/{round_id}", response_model=RoundOut, responses=_errors())
async def read_round(round_id: RoundId, principal: CoordinatorOrOperatorPrincipal, db: Session) -> RoundOut:
    return await _round_out(db, principal, round_id)


@router.post("/rounds/{round_id}/approve", response_model=RoundOut, responses=_errors(409))
async def approve_round(
    round_id: RoundId, body: ApproveRound, principal: CoordinatorOrOperatorPrincipal, db: Session, now: Now
) -> RoundOut:
    """Send the round's proposals (all, or the listed ones; the rest are dropped unsent), then MatchRoundCompleted.

    Each proposal is re-checked against the program as it is now (people who left, blocks, capacity, matches made
    since the solve); those that no longer pass are not sent and are listed in `report.approval.skipped` with their
    reason codes. 409 when the round was approved already or expired (its program stopped taking new matches
    before the approval), or the program is closed, archived or past its last day.
    """
    row = (
        await db.execute(
            select(rounds)
            .where(rounds.c.tenant_id == principal.tenant, rounds.c.round_id == round_id)
            .with_for_update()
        )
    ).first()
    if row is None or not principal.manages(row.program_id):
        raise NotFoundError(f"round {round_id} not found")
    pairs = await db.execute(
        select(matches.c.mentor_person_id, matches.c.mentee_person_id).where(
            matches.c.round_id == round_id, matches.c.state == MatchState.PENDING_APPROVAL.value
        )
    )
    await lock_enrolments(db, principal.tenant, row.program_id, [person for pair in pairs for person in pair])
    round_cases.require_pending(row)  # an expired round says so, rather than why the program takes nothing new
    data = await _program_data(db, principal, row.program_id, now)
    data.require_new_matches_allowed(now.now())
    window = timedelta(days=data.program.matching_policy.request_window_days)
    selected = None if body.proposal_ids is None else set(body.proposal_ids)
    await round_cases.approve_round(db, row, data, selected, now.now(), window)
    return await _round_out(db, principal, round_id)


DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (ForbiddenError, 403, "forbidden"),
    (ConflictError, 409, "conflict"),
    (IllegalTransitionError, 409, "illegal_transition"),
]


def build_app(runtime: Runtime, clock: Clock | None = None) -> FastAPI:
    app = create_service_app(
        runtime,
        title="Mentorloom matching",
        description="Explainable compatibility, mentee-chosen short lists, optimal cohort rounds, match lifecycle.",
    )
    app.state.clock = clock or clock_of(runtime.settings)
    install_domain_errors(app, DOMAIN_ERRORS)
    app.include_router(router, prefix=API_PREFIX)
    return app


__all__ = ["build_app"]
