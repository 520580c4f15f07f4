"""The profiles HTTP API: organisations, campuses, programs, participants, enrolments, inventories, imports.

Who may call what (every query is scoped by the token's tenant; anything of another tenant is a 404):
- organisations: operators (installation-wide: they create the tenants);
- campuses: read by anyone of the tenant, written by coordinators and operators;
- programs: created and deleted (archived) by operators; read and edited by their coordinators and operators;
  read by participants enrolled in them;
- participants: operators of the tenant reach everyone in it; a coordinator only the people who are (or were: a
  withdrawn enrolment stays) enrolled in one of their programs, and of a person's enrolments sees only those in
  their programs; anyone else is a 404, as if the person did not exist. A participant reads, edits and erases
  only themselves, and may not change the fields the organisation sets (identity and structure that matching's
  hard rules use: external_id, email, campus, department, team, manager, reporting line, role level, tenure
  start): 403. A coordinator creates a person into one of their programs (the create names it and enrols them);
- enrolments and imports: coordinators of the program and operators. Enrolling (or importing) a person who
  already exists in the tenant into one's own program is how programs start, and is what gives the coordinator
  the person: the answer is the enrolment or the import's report, never the stored profile.
PUT, PATCH and DELETE require If-Match with the ETag (the row's version): 428 without it, 412 when stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import Select, delete, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from services.profiles.adapters import repository as repo
from services.profiles.adapters.orm import campuses, enrolments, organisations, participants, programs
from services.profiles.domain.catalogue import DEFAULT_FUNCTION_CATALOGUE
from services.profiles.domain.model import (
    EnrolmentFields,
    EnrolmentPatch,
    NeedsInventory,
    OfferInventory,
    ProfileFields,
    ProfilePatch,
    ProgramFields,
    ProgramPatch,
    effective_capacity,
    merge,
    tenure_start_refusal,
)
from services.profiles.domain.ownership import organisation_fields_changed, refusal_message
from services.profiles.entrypoints.http import (
    AUTH_RESPONSES,
    CREATE_RESPONSES,
    IF_MATCH_DESCRIPTION,
    PROFILE_WRITE_RESPONSES,
    READ_RESPONSES,
    WRITE_RESPONSES,
    conflict,
    forbidden,
    invalid,
    not_found,
    transaction,
)
from services.profiles.entrypoints.imports import router as imports_router
from services.profiles.entrypoints.schemas import (
    CampusIn,
    CampusOut,
    EnrolmentIn,
    EnrolmentOut,
    NeedsOut,
    OffersOut,
    OrganisationIn,
    OrganisationOut,
    OrganisationPatch,
    Page,
    ParticipantIn,
    ParticipantOut,
    ProgramOut,
)
from shared.auth import (
    AnyRolePrincipal,
    CoordinatorOrOperatorPrincipal,
    OperatorPrincipal,
    Principal,
    require_roles,
)
from shared.auth.principal import Role
from shared.events.values import EnrollmentRole, EnrollmentStatus, FunctionCatalogueEntry, ProgramStatus
from shared.http_protection import declare_idempotency_key
from shared.ids import new_id
from shared.messaging.outbox import add_events
from shared.paging import Limit, Offset, OffsetPage
from shared.preconditions import IfMatchValue, expected_version, if_match_header, set_etag, stale
from shared.service import API_PREFIX, Runtime, create_service_app

IDEMPOTENT = [Depends(declare_idempotency_key)]
Cursor = Annotated[
    uuid.UUID | None,
    Query(deprecated=True, description="Deprecated: page with `offset`. The `next_cursor` of the previous page."),
]
IfMatch = Annotated[IfMatchValue | None, if_match_header(IF_MATCH_DESCRIPTION)]
ParticipantOrStaff = Annotated[Principal, Depends(require_roles(Role.OPERATOR, Role.COORDINATOR, Role.PARTICIPANT))]

router = APIRouter()


def _by_id(query: Select[Any], id_column: Any, limit: int, offset: int, cursor: uuid.UUID | None) -> Select[Any]:
    """A page of ``query`` in id order: ``offset`` rows skipped after the (deprecated) ``cursor``, one row more than
    ``limit`` to tell whether another page follows."""
    if cursor is not None:
        query = query.where(id_column > cursor)
    return query.order_by(id_column).offset(offset).limit(limit + 1)


def _page(rows: list[Any], limit: int, offset: int, cursor: uuid.UUID | None, to_item: Any) -> Any:
    """``next_offset`` counts from where the request started; a client paging by the deprecated cursor follows
    ``next_cursor`` (its ``next_offset`` would count from its cursor, so it gets none)."""
    more = len(rows) > limit
    return {
        "items": [to_item(row) for row in rows[:limit]],
        "next_offset": offset + limit if more and cursor is None else None,
        "next_cursor": rows[limit - 1]["id"] if more else None,
    }


async def _require_organisation(session: AsyncSession, principal: Principal) -> None:
    if not await repo.organisation_exists(session, principal.tenant):
        raise not_found("organisation of your token")


# --- organisations (operators, installation-wide) ------------------------------------------------------------------


def _organisation(row: RowMapping) -> OrganisationOut:
    return OrganisationOut(id=row["id"], name=row["name"], version=row["version"])


@router.post(
    "/organisations", status_code=201, responses=CREATE_RESPONSES, tags=["organisations"], dependencies=IDEMPOTENT
)
async def create_organisation(
    body: OrganisationIn, request: Request, response: Response, principal: OperatorPrincipal
) -> OrganisationOut:
    """Creates an organisation (operators only): the tenant its programs, campuses and participants belong to."""
    async with transaction(request) as session:
        row = await repo.insert_returning(session, organisations, {"id": new_id(), "name": body.name})
    set_etag(response, row["version"])
    return _organisation(row)


@router.get("/organisations", responses=AUTH_RESPONSES, tags=["organisations"])
async def list_organisations(
    request: Request, principal: OperatorPrincipal, limit: Limit = 100, offset: Offset = 0, cursor: Cursor = None
) -> Page[OrganisationOut]:
    """Every organisation on the platform (operators only), in id order."""
    query = _by_id(select(organisations), organisations.c.id, limit, offset, cursor)
    async with transaction(request) as session:
        rows = list((await session.execute(query)).mappings())
    return Page[OrganisationOut].model_validate(_page(rows, limit, offset, cursor, _organisation))


async def _organisation_row(session: AsyncSession, organisation_id: uuid.UUID) -> RowMapping:
    row = (
        (await session.execute(select(organisations).where(organisations.c.id == organisation_id)))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise not_found("organisation")
    return row


@router.get("/organisations/{organisation_id}", responses=READ_RESPONSES, tags=["organisations"])
async def read_organisation(
    organisation_id: uuid.UUID, request: Request, response: Response, principal: OperatorPrincipal
) -> OrganisationOut:
    async with transaction(request) as session:
        row = await _organisation_row(session, organisation_id)
    set_etag(response, row["version"])
    return _organisation(row)


@router.patch("/organisations/{organisation_id}", responses=WRITE_RESPONSES, tags=["organisations"])
async def update_organisation(
    organisation_id: uuid.UUID,
    body: OrganisationPatch,
    request: Request,
    response: Response,
    principal: OperatorPrincipal,
    if_match: IfMatch = None,
) -> OrganisationOut:
    """Changes the fields given (its name); If-Match names the version read."""
    async with transaction(request) as session:
        current = await _organisation_row(session, organisation_id)
        version = expected_version(if_match, current["version"])
        row = await repo.update_versioned(
            session,
            organisations,
            [organisations.c.id == organisation_id],
            version,
            body.model_dump(exclude_unset=True, exclude_none=True),
        )
        if row is None:
            raise stale()
    set_etag(response, row["version"])
    return _organisation(row)


@router.delete("/organisations/{organisation_id}", status_code=204, responses=WRITE_RESPONSES, tags=["organisations"])
async def delete_organisation(
    organisation_id: uuid.UUID, request: Request, principal: OperatorPrincipal, if_match: IfMatch = None
) -> Response:
    """Deletes an organisation that has no programs and no participants left (409 otherwise)."""
    async with transaction(request) as session:
        current = await _organisation_row(session, organisation_id)
        version = expected_version(if_match, current["version"])
        in_use = await session.scalar(
            select(func.count()).select_from(participants).where(participants.c.tenant_id == organisation_id)
        )
        in_use = (in_use or 0) + (
            await session.scalar(
                select(func.count()).select_from(programs).where(programs.c.tenant_id == organisation_id)
            )
            or 0
        )
        if in_use:
            raise conflict("the organisation still has programs or participants")
        deleted = await session.execute(
            delete(organisations).where(organisations.c.id == organisation_id, organisations.c.version == version)
        )
        if deleted.rowcount == 0:  # type: ignore[attr-defined]
            raise stale()
    return Response(status_code=204)


# --- campuses ------------------------------------------------------------------------------------------------------


def _campus(row: RowMapping) -> CampusOut:
    return CampusOut(id=row["id"], tenant_id=row["tenant_id"], name=row["name"], version=row["version"])


async def _campus_row(session: AsyncSession, principal: Principal, campus_id: uuid.UUID) -> RowMapping:
    row = (
        (
            await session.execute(
                select(campuses).where(campuses.c.tenant_id == principal.tenant, campuses.c.id == campus_id)
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise not_found("campus")
    return row


@router.post("/campuses", status_code=201, responses=CREATE_RESPONSES, tags=["campuses"], dependencies=IDEMPOTENT)
async def create_campus(
    body: CampusIn, request: Request, response: Response, principal: CoordinatorOrOperatorPrincipal
) -> CampusOut:
    """Creates a campus of the caller's organisation."""
    async with transaction(request) as session:
        await _require_organisation(session, principal)
        row = await repo.insert_returning(
            session, campuses, {"id": new_id(), "tenant_id": principal.tenant, "name": body.name}
        )
    set_etag(response, row["version"])
    return _campus(row)


@router.get("/campuses", responses=AUTH_RESPONSES, tags=["campuses"])
async def list_campuses(
    request: Request, principal: AnyRolePrincipal, limit: Limit = 100, offset: Offset = 0, cursor: Cursor = None
) -> Page[CampusOut]:
    """The campuses of the caller's organisation, in id order."""
    query = _by_id(
        select(campuses).where(campuses.c.tenant_id == principal.tenant), campuses.c.id, limit, offset, cursor
    )
    async with transaction(request) as session:
        rows = list((await session.execute(query)).mappings())
    return Page[CampusOut].model_validate(_page(rows, limit, offset, cursor, _campus))


@router.get("/campuses/{campus_id}", responses=READ_RESPONSES, tags=["campuses"])
async def read_campus(
    campus_id: uuid.UUID, request: Request, response: Response, principal: AnyRolePrincipal
) -> CampusOut:
    async with transaction(request) as session:
        row = await _campus_row(session, principal, campus_id)
    set_etag(response, row["version"])
    return _campus(row)


@router.put("/campuses/{campus_id}", responses=WRITE_RESPONSES, tags=["campuses"])
async def replace_campus(
    campus_id: uuid.UUID,
    body: CampusIn,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
    if_match: IfMatch = None,
) -> CampusOut:
    """Renames a campus; If-Match names the version read."""
    async with transaction(request) as session:
        current = await _campus_row(session, principal, campus_id)
        row = await repo.update_versioned(
            session,
            campuses,
            [campuses.c.id == campus_id, campuses.c.tenant_id == principal.tenant],
            expected_version(if_match, current["version"]),
            {"name": body.name},
        )
        if row is None:
            raise stale()
    set_etag(response, row["version"])
    return _campus(row)


@router.delete("/campuses/{campus_id}", status_code=204, responses=WRITE_RESPONSES, tags=["campuses"])
async def delete_campus(
    campus_id: uuid.UUID, request: Request, principal: CoordinatorOrOperatorPrincipal, if_match: IfMatch = None
) -> Response:
    """Deletes a campus that no participant and no program names (409 otherwise)."""
    async with transaction(request) as session:
        current = await _campus_row(session, principal, campus_id)
        version = expected_version(if_match, current["version"])
        used = await session.scalar(
            select(func.count()).select_from(participants).where(participants.c.campus_id == campus_id)
        ) or await session.scalar(
            select(func.count())
            .select_from(programs)
            .where(programs.c.tenant_id == principal.tenant, programs.c.campus_ids.contains([str(campus_id)]))
        )
        if used:
            raise conflict("the campus is still used by participants or programs")
        deleted = await session.execute(
            delete(campuses).where(campuses.c.id == campus_id, campuses.c.version == version)
        )
        if deleted.rowcount == 0:  # type: ignore[attr-defined]
            raise stale()
    return Response(status_code=204)


# --- programs ------------------------------------------------------------------------------------------------------


def _program(row: RowMapping) -> ProgramOut:
    return ProgramOut.model_validate(dict(row))


async def _visible_program(session: AsyncSession, principal: Principal, program_id: uuid.UUID) -> RowMapping:
    """The program if the caller may read it: operator, its coordinator, or a participant enrolled in it."""
    row = await repo.program_row(session, principal.tenant, program_id)
    if row is None:
        raise not_found("program")
    if principal.manages(program_id):
        return row
    if principal.is_participant and principal.person_id is not None:
        enrolled = await session.scalar(
            select(func.count())
            .select_from(enrolments)
            .where(enrolments.c.program_id == program_id, enrolments.c.person_id == principal.person_id)
        )
        if enrolled:
            return row
    raise not_found("program")


async def _managed_program(session: AsyncSession, principal: Principal, program_id: uuid.UUID) -> RowMapping:
    row = await repo.program_row(session, principal.tenant, program_id)
    if row is None or not principal.manages(program_id):
        raise not_found("program")
    return row


async def _check_program_campuses(session: AsyncSession, principal: Principal, fields: ProgramFields) -> None:
    unknown = await repo.campus_ids_exist(session, principal.tenant, fields.campus_ids)
    if unknown:
        raise invalid(("campus_ids",), "not campuses of this organisation", [str(u) for u in unknown])


@router.post("/programs", status_code=201, responses=CREATE_RESPONSES, tags=["programs"], dependencies=IDEMPOTENT)
async def create_program(
    body: ProgramFields, request: Request, response: Response, principal: OperatorPrincipal
) -> ProgramOut:
    """Creates a program of the caller's organisation and announces it (ProgramUpdated)."""
    async with transaction(request) as session:
        await _require_organisation(session, principal)
        await _check_program_campuses(session, principal, body)
        row = await repo.insert_returning(
            session, programs, {"id": new_id(), "tenant_id": principal.tenant, **repo.program_values(body)}
        )
        await add_events(session, [repo.program_event(row)])
    set_etag(response, row["version"])
    return _program(row)


@router.get("/programs", responses=AUTH_RESPONSES, tags=["programs"])
async def list_programs(
    request: Request,
    principal: AnyRolePrincipal,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
    status_filter: Annotated[ProgramStatus | None, Query(alias="status")] = None,
    campus_id: uuid.UUID | None = None,
) -> Page[ProgramOut]:
    """The programs the caller may see (operators: all; coordinators: theirs; participants: those they are enrolled in),
    in id order, filtered by status and campus."""
    query = select(programs).where(programs.c.tenant_id == principal.tenant)
    if not principal.is_operator:
        visible: Any = programs.c.id.in_(principal.programs) if principal.is_coordinator else programs.c.id.in_([])
        if principal.is_participant and principal.person_id is not None:
            visible = visible | programs.c.id.in_(
                select(enrolments.c.program_id).where(enrolments.c.person_id == principal.person_id)
            )
        query = query.where(visible)
    if status_filter is not None:
        query = query.where(programs.c.status == status_filter.value)
    if campus_id is not None:
        query = query.where(programs.c.campus_ids.contains([str(campus_id)]))
    async with transaction(request) as session:
        rows = list((await session.execute(_by_id(query, programs.c.id, limit, offset, cursor))).mappings())
    return Page[ProgramOut].model_validate(_page(rows, limit, offset, cursor, _program))


@router.get("/programs/{program_id}", responses=READ_RESPONSES, tags=["programs"])
async def read_program(
    program_id: uuid.UUID, request: Request, response: Response, principal: AnyRolePrincipal
) -> ProgramOut:
    async with transaction(request) as session:
        row = await _visible_program(session, principal, program_id)
    set_etag(response, row["version"])
    return _program(row)


def _catalogue_page(
    catalogue: Sequence[FunctionCatalogueEntry], offset: int, limit: int
) -> OffsetPage[FunctionCatalogueEntry]:
    # A catalogue is bounded and held in memory: slicing it is the limit+1 fetch.
    return OffsetPage[FunctionCatalogueEntry].of(catalogue[offset : offset + limit + 1], offset, limit, lambda e: e)


@router.get("/programs/{program_id}/function-catalogue", responses=READ_RESPONSES, tags=["programs", "inventories"])
async def read_program_catalogue(
    program_id: uuid.UUID, request: Request, principal: AnyRolePrincipal, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[FunctionCatalogueEntry]:
    """The program's function catalogue: the functions its needs and offers inventories rate, psychosocial ones
    marked."""
    async with transaction(request) as session:
        row = await _visible_program(session, principal, program_id)
    return _catalogue_page(repo.program_fields(row).function_catalogue, offset, limit)


@router.get("/function-catalogue", responses=AUTH_RESPONSES, tags=["inventories"])
async def read_default_catalogue(
    principal: AnyRolePrincipal, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[FunctionCatalogueEntry]:
    """The catalogue every new program starts with; psychosocial functions are marked."""
    return _catalogue_page(DEFAULT_FUNCTION_CATALOGUE, offset, limit)


async def _write_program(
    request: Request, principal: Principal, program_id: uuid.UUID, if_match: str | None, patch: BaseModelLike
) -> RowMapping:
    async with transaction(request) as session:
        current = await _managed_program(session, principal, program_id)
        version = expected_version(if_match, current["version"])
        try:
            fields = ProgramFields.model_validate(merge(repo.program_fields(current), patch))
        except ValidationError as error:
            raise invalid_from(error) from error
        await _check_program_campuses(session, principal, fields)
        row = await repo.update_versioned(
            session,
            programs,
            [programs.c.id == program_id, programs.c.tenant_id == principal.tenant],
            version,
            repo.program_values(fields),
        )
        if row is None:
            raise stale()
        await add_events(session, [repo.program_event(row)])
    return row


BaseModelLike = ProgramFields | ProgramPatch | ProfileFields | ProfilePatch


def invalid_from(error: ValidationError) -> Any:
    from fastapi.exceptions import RequestValidationError

    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False, include_context=False)]
    )


@router.put("/programs/{program_id}", responses=WRITE_RESPONSES, tags=["programs"])
async def replace_program(
    program_id: uuid.UUID,
    body: ProgramFields,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
    if_match: IfMatch = None,
) -> ProgramOut:
    """Replaces a program's settings as a whole and announces them (ProgramUpdated); If-Match names the version read."""
    row = await _write_program(request, principal, program_id, if_match, body)
    set_etag(response, row["version"])
    return _program(row)


@router.patch("/programs/{program_id}", responses=WRITE_RESPONSES, tags=["programs"])
async def update_program(
    program_id: uuid.UUID,
    body: ProgramPatch,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
    if_match: IfMatch = None,
) -> ProgramOut:
    """Changes the settings given, keeps the others, and announces the result (ProgramUpdated); If-Match names the
    version read."""
    row = await _write_program(request, principal, program_id, if_match, body)
    set_etag(response, row["version"])
    return _program(row)


@router.delete("/programs/{program_id}", responses=WRITE_RESPONSES, tags=["programs"])
async def archive_program(
    program_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: OperatorPrincipal,
    if_match: IfMatch = None,
) -> ProgramOut:
    """Archives the program (status ``archived``, announced by ProgramUpdated): enrolments and reports keep it."""
    row = await _write_program(request, principal, program_id, if_match, ProgramPatch(status=ProgramStatus.ARCHIVED))
    set_etag(response, row["version"])
    return _program(row)


# --- participants --------------------------------------------------------------------------------------------------


def _participant(row: RowMapping) -> ParticipantOut:
    return ParticipantOut.model_validate(
        {name: row[name] for name in ProfileFields.model_fields}
        | {
            "id": row["id"],
            "tenant_id": row["tenant_id"],
            "version": row["version"],
            "needs": row["needs"] or (),
            "offers": row["offers"] or (),
        }
    )


async def _reachable_participant(session: AsyncSession, principal: Principal, person_id: uuid.UUID) -> RowMapping:
    """The person's row, for reading, writing or erasing, if the caller may reach them; else a 404 that does not
    tell whether the person exists.

    Operators reach everyone of their tenant, a participant themselves, a coordinator the people who are or were
    enrolled in one of their programs ("coordinators see only their programs"; a withdrawn enrolment stays with
    its program's history, so its coordinator still reaches the person)."""
    row = await repo.participant_row(session, principal.tenant, person_id)
    if row is None:
        raise not_found("participant")
    if principal.is_operator or principal.is_person(person_id):
        return row
    if principal.is_coordinator and await repo.enrolled_in_any(
        session, principal.tenant, person_id, principal.programs
    ):
        return row
    raise not_found("participant")


async def _check_what_the_write_sets(
    session: AsyncSession,
    principal: Principal,
    fields: ProfileFields,
    person_id: uuid.UUID | None,
    current: RowMapping | None = None,
) -> None:
    """The rules that need the stored row or the database, applied only to what the write sets (`current` is the
    stored row, None on creation): a tenure_start or a manager or blocked person stored before a rule (or erased
    since) must not make every later edit fail, above all a participant's, who must send such fields back unchanged.
    The ids the profile names exist in the caller's organisation."""
    refusal = tenure_start_refusal(fields.tenure_start, current["tenure_start"] if current is not None else None)
    if refusal is not None:
        raise invalid(("tenure_start",), refusal, fields.tenure_start.isoformat())
    if fields.campus_id is not None and await repo.campus_ids_exist(session, principal.tenant, [fields.campus_id]):
        raise invalid(("campus_id",), "not a campus of this organisation", str(fields.campus_id))
    if person_id is not None and person_id in fields.blocked_person_ids:
        raise invalid(("blocked_person_ids",), "a person cannot block themselves", str(person_id))
    if person_id is not None and fields.manager_person_id == person_id:
        raise invalid(("manager_person_id",), "a person cannot be their own manager", str(person_id))
    manager = fields.manager_person_id
    stored_manager = current["manager_person_id"] if current is not None else None
    added_managers = [manager] if manager is not None and manager != stored_manager else []
    if await repo.unknown_participant_ids(session, principal.tenant, added_managers):
        raise invalid(("manager_person_id",), "no such participant in this organisation", str(manager))
    stored_blocked = set(current["blocked_person_ids"] or ()) if current is not None else set()
    added = [blocked for blocked in fields.blocked_person_ids if str(blocked) not in stored_blocked]
    unknown = await repo.unknown_participant_ids(session, principal.tenant, added)
    for index, blocked in enumerate(fields.blocked_person_ids):
        if blocked in unknown:
            raise invalid(("blocked_person_ids", index), "no such participant in this organisation", str(blocked))


@router.post(
    "/participants", status_code=201, responses=CREATE_RESPONSES, tags=["participants"], dependencies=IDEMPOTENT
)
async def create_participant(
    body: ParticipantIn, request: Request, response: Response, principal: CoordinatorOrOperatorPrincipal
) -> ParticipantOut:
    """Create a participant, enrolled at once in the program `enrolment` names.

    A coordinator reaches only the people of their programs, so their create names one of them (a 422 naming
    `enrolment` otherwise): the person and the enrolment are stored together, and the answer's ETag and Location
    are then the coordinator's to use. An operator may create a person in no program."""
    async with transaction(request) as session:
        await _require_organisation(session, principal)
        program = None
        if body.enrolment is not None:
            program = await repo.program_row(session, principal.tenant, body.enrolment.program_id)
            if program is None or not principal.manages(body.enrolment.program_id):
                raise invalid(
                    ("enrolment", "program_id"), "not a program you coordinate", str(body.enrolment.program_id)
                )
        elif not principal.is_operator:
            raise invalid(
                ("enrolment",),
                "a coordinator creates a person into one of their programs: name its program_id and the person's "
                "role there (coordinators reach only the people of their programs)",
            )
        await _check_what_the_write_sets(session, principal, body, None)
        row = await repo.insert_returning(
            session,
            participants,
            {"id": new_id(), "tenant_id": principal.tenant, **repo.profile_values(body), "needs": [], "offers": []},
        )
        await add_events(session, [repo.profile_event(row)])
        if body.enrolment is not None and program is not None:
            await _insert_enrolment(session, principal, program, row["id"], body.enrolment)
    set_etag(response, row["version"])
    return _participant(row)


# A participant carries every profile field, tens of KB at the fields' limits (500 blocked ids, 100 availability
# windows, needs, offers, tags, goal texts): a page of the shared limit's 1000 could be tens of MB, built and validated
# in one request. Larger limits are served in pages of this size (the cap this list had before the shared limit), so
# one paging loop still works against every list.
PARTICIPANTS_PAGE_MAX = 200


@router.get("/participants", responses=READ_RESPONSES, tags=["participants"])
async def list_participants(
    request: Request,
    principal: CoordinatorOrOperatorPrincipal,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
    campus_id: uuid.UUID | None = None,
    program_id: Annotated[
        uuid.UUID | None,
        Query(description="Enrolled in this program (a coordinator's own programs only: 404 for any other)."),
    ] = None,
    role: Annotated[
        EnrollmentRole | None,
        Query(description="Enrolment role (with program_id: in that program; a coordinator's: in their programs)."),
    ] = None,
    status_filter: Annotated[
        EnrollmentStatus | None,
        Query(alias="status", description="Enrolment status (a coordinator's: in their programs)."),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=100, pattern=r"^[^\x00]*$", description="Text in the display name or email.")
    ] = None,
) -> Page[ParticipantOut]:
    """The tenant's participants for an operator; for a coordinator, those who are or were in their programs. At
    most 200 per page whatever `limit` asks (follow `next_offset`): each carries the whole profile."""
    limit = min(limit, PARTICIPANTS_PAGE_MAX)
    conditions = repo.participant_filters(
        principal.tenant,
        campus_id=campus_id,
        program_id=program_id,
        role=role.value if role else None,
        status=status_filter.value if status_filter else None,
        text=q,
        visible_programs=None if principal.is_operator else principal.programs,
    )
    query = _by_id(select(participants).where(*conditions), participants.c.id, limit, offset, cursor)
    async with transaction(request) as session:
        if program_id is not None:  # another tenant's program or one the coordinator does not run: a 404 naming it
            await _managed_program(session, principal, program_id)
        rows = list((await session.execute(query)).mappings())
    return Page[ParticipantOut].model_validate(_page(rows, limit, offset, cursor, _participant))


@router.get("/participants/{person_id}", responses=READ_RESPONSES, tags=["participants"])
async def read_participant(
    person_id: uuid.UUID, request: Request, response: Response, principal: ParticipantOrStaff
) -> ParticipantOut:
    async with transaction(request) as session:
        row = await _reachable_participant(session, principal, person_id)
    set_etag(response, row["version"])
    return _participant(row)


async def _write_participant(
    request: Request,
    principal: Principal,
    person_id: uuid.UUID,
    if_match: str | None,
    change: Any,
) -> RowMapping:
    """Apply `change(current_row, session)` → column values, with If-Match, emitting the new snapshot."""
    async with transaction(request) as session:
        current = await _reachable_participant(session, principal, person_id)
        version = expected_version(if_match, current["version"])
        values = await change(current, session)
        row = await repo.update_participant(session, principal.tenant, person_id, version, values)
        if row is None:
            raise stale()
        await add_events(session, [repo.profile_event(row)])
    return row


def _profile_change(principal: Principal, person_id: uuid.UUID, patch: ProfileFields | ProfilePatch) -> Any:
    async def change(current: RowMapping, session: AsyncSession) -> dict[str, Any]:
        try:
            stored = repo.profile_fields(current)
            fields = ProfileFields.model_validate(merge(stored, patch))
        except ValidationError as error:
            raise invalid_from(error) from error
        if not (principal.is_operator or principal.is_coordinator):
            changed = organisation_fields_changed(stored, fields)
            if changed:
                raise forbidden(refusal_message(changed))
        await _check_what_the_write_sets(session, principal, fields, person_id, current)
        return repo.profile_values(fields)

    return change


@router.put("/participants/{person_id}", responses=PROFILE_WRITE_RESPONSES, tags=["participants"])
async def replace_participant(
    person_id: uuid.UUID,
    body: ProfileFields,
    request: Request,
    response: Response,
    principal: ParticipantOrStaff,
    if_match: IfMatch = None,
) -> ParticipantOut:
    """Replaces a profile as a whole and announces it (ProfileUpdated). A participant may change only their own, and not
    the fields their organisation sets (403); If-Match names the version read."""
    row = await _write_participant(request, principal, person_id, if_match, _profile_change(principal, person_id, body))
    set_etag(response, row["version"])
    return _participant(row)


@router.patch("/participants/{person_id}", responses=PROFILE_WRITE_RESPONSES, tags=["participants"])
async def update_participant(
    person_id: uuid.UUID,
    body: ProfilePatch,
    request: Request,
    response: Response,
    principal: ParticipantOrStaff,
    if_match: IfMatch = None,
) -> ParticipantOut:
    """Changes the profile fields given, keeps the others, and announces the result (ProfileUpdated). A participant may
    change only their own, and not the fields their organisation sets (403); If-Match names the version read."""
    row = await _write_participant(request, principal, person_id, if_match, _profile_change(principal, person_id, body))
    set_etag(response, row["version"])
    return _participant(row)


@router.delete("/participants/{person_id}", status_code=204, responses=WRITE_RESPONSES, tags=["participants"])
async def erase_participant(
    person_id: uuid.UUID, request: Request, principal: ParticipantOrStaff, if_match: IfMatch = None
) -> Response:
    """Right to be forgotten: scrubs every personal field, withdraws enrolments, emits ProfileErased.

    Asked by the person, an operator, or a coordinator who runs every program the person is (or was) enrolled in:
    the person is erased from the whole organisation. A coordinator of only some of them gets a 403 (erasing would
    remove the person from programs another coordinator runs); one of none of them a 404."""
    async with transaction(request) as session:
        current = await _reachable_participant(session, principal, person_id)
        if not (principal.is_operator or principal.is_person(person_id)) and await repo.enrolled_outside(
            session, principal.tenant, person_id, principal.programs
        ):
            raise forbidden(
                "this person is also enrolled in programs you do not coordinate: erasing them would remove them from "
                "those too, so an operator of the organisation (or the person themself) can erase them"
            )
        version = expected_version(if_match, current["version"])
        erased = await repo.erase_participant(session, principal.tenant, person_id, version)
        if erased is None:
            raise stale()
        await add_events(session, [erased])
    # After the commit, so the erasure stands whatever Redis does: the kept answers of the POSTs that returned the
    # person's profile (the same clean-up matching's consumer runs).
    await request.app.state.runtime.forget_answers_naming(person_id, principal.tenant)
    return Response(status_code=204)


# --- needs and offer inventories -----------------------------------------------------------------------------------


async def _check_catalogue(
    session: AsyncSession, principal: Principal, person_id: uuid.UUID, keys: list[tuple[tuple[str | int, ...], str]]
) -> None:
    allowed = await repo.catalogue_keys_for_person(session, principal.tenant, person_id) or {
        entry.key for entry in DEFAULT_FUNCTION_CATALOGUE
    }
    for loc, key in keys:
        if key not in allowed:
            raise invalid(loc, "not a function of the catalogue of the person's programs", key)


@router.get("/participants/{person_id}/needs", responses=READ_RESPONSES, tags=["inventories"])
async def read_needs(
    person_id: uuid.UUID, request: Request, response: Response, principal: ParticipantOrStaff
) -> NeedsOut:
    """The mentee's needs inventory: one rating per function of their programs' catalogues."""
    async with transaction(request) as session:
        row = await _reachable_participant(session, principal, person_id)
    set_etag(response, row["version"])
    return NeedsOut(person_id=person_id, version=row["version"], needs=row["needs"] or ())


@router.put("/participants/{person_id}/needs", responses=WRITE_RESPONSES, tags=["inventories"])
async def replace_needs(
    person_id: uuid.UUID,
    body: NeedsInventory,
    request: Request,
    response: Response,
    principal: ParticipantOrStaff,
    if_match: IfMatch = None,
) -> NeedsOut:
    """The mentee's self-inventory: one rating per function of their programs' catalogues."""

    async def change(current: RowMapping, session: AsyncSession) -> dict[str, Any]:
        await _check_catalogue(
            session,
            principal,
            person_id,
            [(("needs", i, "function_key"), n.function_key) for i, n in enumerate(body.needs)],
        )
        return {"needs": body.model_dump(mode="json")["needs"]}

    row = await _write_participant(request, principal, person_id, if_match, change)
    set_etag(response, row["version"])
    return NeedsOut(person_id=person_id, version=row["version"], needs=row["needs"])


@router.get("/participants/{person_id}/offers", responses=READ_RESPONSES, tags=["inventories"])
async def read_offers(
    person_id: uuid.UUID, request: Request, response: Response, principal: ParticipantOrStaff
) -> OffersOut:
    """The mentor's offers inventory: one rating per function of their programs' catalogues."""
    async with transaction(request) as session:
        row = await _reachable_participant(session, principal, person_id)
    set_etag(response, row["version"])
    return OffersOut(person_id=person_id, version=row["version"], offers=row["offers"] or ())


@router.put("/participants/{person_id}/offers", responses=WRITE_RESPONSES, tags=["inventories"])
async def replace_offers(
    person_id: uuid.UUID,
    body: OfferInventory,
    request: Request,
    response: Response,
    principal: ParticipantOrStaff,
    if_match: IfMatch = None,
) -> OffersOut:
    """The functions a mentor can offer, from their programs' catalogues."""

    async def change(current: RowMapping, session: AsyncSession) -> dict[str, Any]:
        await _check_catalogue(
            session, principal, person_id, [(("offers", i), key) for i, key in enumerate(body.offers)]
        )
        return {"offers": list(body.offers)}

    row = await _write_participant(request, principal, person_id, if_match, change)
    set_etag(response, row["version"])
    return OffersOut(person_id=person_id, version=row["version"], offers=row["offers"])


# --- enrolments ----------------------------------------------------------------------------------------------------


def _enrolment(row: RowMapping) -> EnrolmentOut:
    return EnrolmentOut.model_validate(dict(row))


@router.post(
    "/programs/{program_id}/enrolments",
    status_code=201,
    responses=CREATE_RESPONSES,
    tags=["enrolments"],
    dependencies=IDEMPOTENT,
)
async def create_enrolment(
    program_id: uuid.UUID,
    body: EnrolmentIn,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
) -> EnrolmentOut:
    """Enrol a participant of the organisation into the program; its coordinators may enrol anyone of the tenant.

    That is how programs start: the person often exists already (from the HR import or another program). Once
    enrolled, the person is in the coordinator's program, and the coordinator reaches their profile; so the answer
    is the enrolment alone: nothing of the profile, nor of the person's other programs. Before that, the
    coordinator learns only whether the id is a participant of the organisation (a 422 naming person_id)."""
    async with transaction(request) as session:
        program = await _managed_program(session, principal, program_id)
        if await repo.participant_row(session, principal.tenant, body.person_id) is None:
            raise invalid(("person_id",), "no such participant in this organisation", str(body.person_id))
        row = await _insert_enrolment(session, principal, program, body.person_id, body)
    set_etag(response, row["version"])
    return _enrolment(row)


async def _insert_enrolment(
    session: AsyncSession, principal: Principal, program: RowMapping, person_id: uuid.UUID, fields: EnrolmentFields
) -> RowMapping:
    """Store the person's new enrolment in `program` with its EnrollmentChanged."""
    row = await repo.insert_returning(
        session,
        enrolments,
        {
            "id": new_id(),
            "tenant_id": principal.tenant,
            "program_id": program["id"],
            "person_id": person_id,
            "role": fields.role.value,
            "capacity": effective_capacity(fields.role, fields.capacity, program["default_mentor_capacity"]),
            "status": fields.status.value,
            "cohort": fields.cohort,
        },
    )
    await add_events(session, [repo.enrolment_event(row)])
    return row


@router.get("/programs/{program_id}/enrolments", responses=READ_RESPONSES, tags=["enrolments"])
async def list_enrolments(
    program_id: uuid.UUID,
    request: Request,
    principal: CoordinatorOrOperatorPrincipal,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Cursor = None,
    role: EnrollmentRole | None = None,
    status_filter: Annotated[EnrollmentStatus | None, Query(alias="status")] = None,
) -> Page[EnrolmentOut]:
    """The program's enrolments, in id order, filtered by role and status."""
    query = select(enrolments).where(enrolments.c.tenant_id == principal.tenant, enrolments.c.program_id == program_id)
    if role is not None:
        query = query.where(enrolments.c.role == role.value)
    if status_filter is not None:
        query = query.where(enrolments.c.status == status_filter.value)
    async with transaction(request) as session:
        await _managed_program(session, principal, program_id)
        rows = list((await session.execute(_by_id(query, enrolments.c.id, limit, offset, cursor))).mappings())
    return Page[EnrolmentOut].model_validate(_page(rows, limit, offset, cursor, _enrolment))


@router.get("/participants/{person_id}/enrolments", responses=READ_RESPONSES, tags=["enrolments"])
async def list_person_enrolments(
    person_id: uuid.UUID, request: Request, principal: ParticipantOrStaff, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[EnrolmentOut]:
    """The person's enrolments; a coordinator's answer holds only those in their programs (not where else the
    person is enrolled)."""
    query = select(enrolments).where(enrolments.c.tenant_id == principal.tenant, enrolments.c.person_id == person_id)
    if not (principal.is_operator or principal.is_person(person_id)):
        query = query.where(enrolments.c.program_id.in_(principal.programs))
    async with transaction(request) as session:
        await _reachable_participant(session, principal, person_id)
        rows = (await session.execute(query.order_by(enrolments.c.id).offset(offset).limit(limit + 1))).mappings()
        return OffsetPage[EnrolmentOut].of(rows, offset, limit, _enrolment)


async def _reachable_enrolment(
    session: AsyncSession, principal: Principal, enrolment_id: uuid.UUID, *, write: bool
) -> RowMapping:
    row = await repo.enrolment_row(session, principal.tenant, enrolment_id)
    if row is None:
        raise not_found("enrolment")
    if principal.manages(row["program_id"]) or (not write and principal.is_person(row["person_id"])):
        return row
    raise not_found("enrolment")


@router.get("/enrolments/{enrolment_id}", responses=READ_RESPONSES, tags=["enrolments"])
async def read_enrolment(
    enrolment_id: uuid.UUID, request: Request, response: Response, principal: ParticipantOrStaff
) -> EnrolmentOut:
    async with transaction(request) as session:
        row = await _reachable_enrolment(session, principal, enrolment_id, write=False)
    set_etag(response, row["version"])
    return _enrolment(row)


async def _write_enrolment(
    request: Request, principal: Principal, enrolment_id: uuid.UUID, if_match: str | None, patch: EnrolmentPatch
) -> RowMapping:
    async with transaction(request) as session:
        current = await _reachable_enrolment(session, principal, enrolment_id, write=True)
        version = expected_version(if_match, current["version"])
        changes = patch.model_dump(mode="json", exclude_unset=True)
        merged = {**dict(current), **{k: v for k, v in changes.items() if v is not None or k == "cohort"}}
        role = EnrollmentRole(merged["role"])
        if role is EnrollmentRole.MENTEE:
            if changes.get("capacity"):
                raise invalid(("capacity",), "a mentee-only enrolment has capacity 0", changes["capacity"])
            merged["capacity"] = 0
        elif "capacity" not in changes and current["role"] == EnrollmentRole.MENTEE.value:
            program = await repo.program_row(session, principal.tenant, current["program_id"])
            merged["capacity"] = program["default_mentor_capacity"] if program else 1
        row = await repo.update_versioned(
            session,
            enrolments,
            [enrolments.c.id == enrolment_id, enrolments.c.tenant_id == principal.tenant],
            version,
            {k: merged[k] for k in ("role", "capacity", "status", "cohort")},
        )
        if row is None:
            raise stale()
        await add_events(session, [repo.enrolment_event(row)])
    return row


@router.patch("/enrolments/{enrolment_id}", responses=WRITE_RESPONSES, tags=["enrolments"])
async def update_enrolment(
    enrolment_id: uuid.UUID,
    body: EnrolmentPatch,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
    if_match: IfMatch = None,
) -> EnrolmentOut:
    """Changes an enrolment's role, status, capacity or cohort and announces it (EnrollmentChanged); If-Match names the
    version read."""
    row = await _write_enrolment(request, principal, enrolment_id, if_match, body)
    set_etag(response, row["version"])
    return _enrolment(row)


@router.delete("/enrolments/{enrolment_id}", responses=WRITE_RESPONSES, tags=["enrolments"])
async def withdraw_enrolment(
    enrolment_id: uuid.UUID,
    request: Request,
    response: Response,
    principal: CoordinatorOrOperatorPrincipal,
    if_match: IfMatch = None,
) -> EnrolmentOut:
    """Withdraws the enrolment (status ``withdrawn``, announced by EnrollmentChanged); history stays."""
    row = await _write_enrolment(
        request, principal, enrolment_id, if_match, EnrolmentPatch(status=EnrollmentStatus.WITHDRAWN)
    )
    set_etag(response, row["version"])
    return _enrolment(row)


def build_app(runtime: Runtime) -> FastAPI:
    app = create_service_app(
        runtime,
        title="Mentorloom profiles",
        description=__doc__ or "",
    )
    # The kit's app factory already installed auth, rate limiting and Idempotency-Key replay.
    app.include_router(router, prefix=API_PREFIX)
    app.include_router(imports_router, prefix=API_PREFIX)
    documented = app.openapi  # the kit's, with what shared.http_protection may answer
    app.openapi = lambda: _declare_partial_time(documented())  # type: ignore[method-assign]
    return app


def _declare_partial_time(document: dict[str, Any]) -> dict[str, Any]:
    """Availability times declared as RFC 3339 partial-time in the OpenAPI document.

    pydantic declares `datetime.time` as format "time", which JSON Schema defines as a time WITH an offset;
    availability windows are wall-clock times in the person's time zone ("09:00:00"), so the honest format is
    partial-time. (The contract's AvailabilityWindow in shared/events/values.py should say so itself.)
    """
    window = document.get("components", {}).get("schemas", {}).get("AvailabilityWindow", {})
    for name in ("start", "end"):
        if window.get("properties", {}).get(name, {}).get("format") == "time":
            window["properties"][name]["format"] = "partial-time"
    return document
