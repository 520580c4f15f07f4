"""Queries of the profiles database, always scoped by tenant, and the events built from what they return.

Writes use optimistic concurrency: ``UPDATE … WHERE version = :expected`` bumps the version atomically, so of two
writers holding the same ETag exactly one succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Select, and_, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.profiles.adapters.orm import campuses, enrolments, organisations, participants, programs
from services.profiles.domain.model import STORED, ProfileFields, ProgramFields
from shared.events.models import EnrollmentChanged, ProfileErased, ProfileUpdated, ProgramUpdated
from shared.events.values import FunctionCatalogueEntry, NeedRating
from shared.messaging.outbox import discard_waiting

PERSONAL_COLUMNS = tuple(
    c.name
    for c in participants.columns
    if c.name not in {"id", "tenant_id", "version", "created_at", "updated_at", "erased_at"}
)
_CATALOGUE = TypeAdapter(tuple[FunctionCatalogueEntry, ...])
_NEEDS = TypeAdapter(tuple[NeedRating, ...])
_STORED = {STORED: True}


def jsonable(model_dump: Mapping[str, Any]) -> dict[str, Any]:
    return dict(model_dump)


# --- organisations and campuses ------------------------------------------------------------------------------------


async def organisation_exists(session: AsyncSession, tenant_id: uuid.UUID) -> bool:
    found = await session.scalar(select(literal(1)).where(organisations.c.id == tenant_id))
    return found is not None


# --- programs ------------------------------------------------------------------------------------------------------


def program_values(fields: ProgramFields) -> dict[str, Any]:
    return fields.model_dump(mode="json") | {"starts_on": fields.starts_on, "ends_on": fields.ends_on}


def program_fields(row: RowMapping) -> ProgramFields:
    return ProgramFields.model_validate({name: row[name] for name in ProgramFields.model_fields}, context=_STORED)


def program_event(row: RowMapping) -> ProgramUpdated:
    data = {name: row[name] for name in ProgramFields.model_fields}
    return ProgramUpdated.model_validate(
        data | {"tenant_id": row["tenant_id"], "program_id": row["id"], "version": row["version"]}
    )


async def program_row(session: AsyncSession, tenant_id: uuid.UUID, program_id: uuid.UUID) -> RowMapping | None:
    result = await session.execute(
        select(programs).where(programs.c.tenant_id == tenant_id, programs.c.id == program_id)
    )
    found: RowMapping | None = result.mappings().one_or_none()
    return found


async def catalogue_keys_for_person(session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID) -> set[str]:
    """Function keys of the catalogues of the programs the person is enrolled in (empty if none)."""
    rows = await session.scalars(
        select(programs.c.function_catalogue)
        .join(enrolments, enrolments.c.program_id == programs.c.id)
        .where(enrolments.c.tenant_id == tenant_id, enrolments.c.person_id == person_id)
    )
    return {entry.key for catalogue in rows for entry in _CATALOGUE.validate_python(catalogue)}


# --- participants --------------------------------------------------------------------------------------------------


_PROFILE_COLUMNS = set(ProfileFields.model_fields)


def profile_values(fields: ProfileFields) -> dict[str, Any]:
    """Column values of a profile: scalars as they are, nested values as JSON."""
    dumped = fields.model_dump(mode="json", include=_PROFILE_COLUMNS)  # a subclass's other fields are no columns
    return dumped | {
        "campus_id": fields.campus_id,
        "manager_person_id": fields.manager_person_id,
        "tenure_start": fields.tenure_start,
    }


def profile_fields(row: RowMapping) -> ProfileFields:
    return ProfileFields.model_validate({name: row[name] for name in ProfileFields.model_fields}, context=_STORED)


def profile_event(row: RowMapping) -> ProfileUpdated:
    """The full snapshot of a stored participant (the row is trusted: it was validated when written)."""
    data = {name: row[name] for name in ProfileFields.model_fields}
    return ProfileUpdated.model_validate(
        data
        | {
            "tenant_id": row["tenant_id"],
            "person_id": row["id"],
            "version": row["version"],
            "needs": row["needs"] or (),
            "offers": row["offers"] or (),
        }
    )


def live_participants() -> Select[Any]:
    return select(participants).where(participants.c.erased_at.is_(None))


async def participant_row(session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID) -> RowMapping | None:
    result = await session.execute(
        live_participants().where(participants.c.tenant_id == tenant_id, participants.c.id == person_id)
    )
    found: RowMapping | None = result.mappings().one_or_none()
    return found


async def _has_enrolment(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, in_program: ColumnElement[bool]
) -> bool:
    found = await session.scalar(
        select(literal(1))
        .where(enrolments.c.tenant_id == tenant_id, enrolments.c.person_id == person_id, in_program)
        .limit(1)
    )
    return found is not None


async def enrolled_in_any(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, program_ids: frozenset[uuid.UUID]
) -> bool:
    """Whether the person has, or had (a withdrawn enrolment stays), an enrolment in one of `program_ids`."""
    if not program_ids:
        return False
    return await _has_enrolment(session, tenant_id, person_id, enrolments.c.program_id.in_(program_ids))


async def enrolled_outside(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, program_ids: frozenset[uuid.UUID]
) -> bool:
    """Whether the person has, or had, an enrolment (any status) in a program not among `program_ids`."""
    return await _has_enrolment(session, tenant_id, person_id, enrolments.c.program_id.not_in(program_ids))


async def update_participant(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, expected_version: int, values: dict[str, Any]
) -> RowMapping | None:
    """Apply `values` if the row still has `expected_version`; None when someone else wrote first."""
    result = await session.execute(
        update(participants)
        .where(
            participants.c.tenant_id == tenant_id,
            participants.c.id == person_id,
            participants.c.version == expected_version,
            participants.c.erased_at.is_(None),
        )
        .values(**values, version=participants.c.version + 1, updated_at=func.now())
        .returning(participants)
    )
    found: RowMapping | None = result.mappings().one_or_none()
    return found


async def erase_participant(
    session: AsyncSession, tenant_id: uuid.UUID, person_id: uuid.UUID, expected_version: int
) -> ProfileErased | None:
    """Scrub every personal column (the id stays for the enrolments referring to it) and withdraw enrolments."""
    now = datetime.now(UTC)
    result = await session.execute(
        update(participants)
        .where(
            participants.c.tenant_id == tenant_id,
            participants.c.id == person_id,
            participants.c.version == expected_version,
            participants.c.erased_at.is_(None),
        )
        .values(
            {
                **dict.fromkeys(PERSONAL_COLUMNS),
                "erased_at": now,
                "version": participants.c.version + 1,
                "updated_at": func.now(),
            }
        )
        .returning(participants.c.version)
    )
    version = result.scalar_one_or_none()
    if version is None:
        return None
    # Snapshots of the person still waiting to be sent would carry everything just scrubbed out after the erasure:
    # they go (consumers then see the erasure alone). Waiting enrolment changes stay: they hold no personal data.
    await discard_waiting(session, [str(person_id)], [ProfileUpdated])
    # ProfileErased tells every consumer to drop the person with their enrolments; no EnrollmentChanged follows.
    await session.execute(
        update(enrolments)
        .where(enrolments.c.tenant_id == tenant_id, enrolments.c.person_id == person_id)
        .values(status="withdrawn", cohort=None, version=enrolments.c.version + 1, updated_at=func.now())
    )
    return ProfileErased(tenant_id=tenant_id, person_id=person_id, version=version, erased_at=now)


def participant_filters(
    tenant_id: uuid.UUID,
    *,
    campus_id: uuid.UUID | None,
    program_id: uuid.UUID | None,
    role: str | None,
    status: str | None,
    text: str | None,
    visible_programs: frozenset[uuid.UUID] | None = None,
) -> list[Any]:
    """`visible_programs`: the programs a coordinator runs (None: an operator, every program of the tenant). Only
    people with an enrolment in one of them are listed, and the role, status and program filters look only at
    those enrolments: a coordinator sees only their programs, and must not learn who is enrolled in another."""
    conditions: list[Any] = [participants.c.tenant_id == tenant_id, participants.c.erased_at.is_(None)]
    if campus_id is not None:
        conditions.append(participants.c.campus_id == campus_id)
    enrolment: list[Any] = []
    if visible_programs is not None:
        enrolment.append(enrolments.c.program_id.in_(visible_programs))
    if program_id is not None:
        enrolment.append(enrolments.c.program_id == program_id)
    if role is not None:
        enrolment.append(enrolments.c.role == role)
    if status is not None:
        enrolment.append(enrolments.c.status == status)
    if enrolment:
        conditions.append(exists().where(and_(enrolments.c.person_id == participants.c.id, *enrolment)))
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                participants.c.display_name.ilike(pattern, escape="\\"),
                participants.c.email.ilike(pattern, escape="\\"),
            )
        )
    return conditions


# --- enrolments ----------------------------------------------------------------------------------------------------


def enrolment_event(row: RowMapping) -> EnrollmentChanged:
    return EnrollmentChanged(
        tenant_id=row["tenant_id"],
        enrollment_id=row["id"],
        person_id=row["person_id"],
        program_id=row["program_id"],
        version=row["version"],
        role=row["role"],
        capacity=row["capacity"],
        status=row["status"],
        cohort=row["cohort"],
    )


async def enrolment_row(session: AsyncSession, tenant_id: uuid.UUID, enrolment_id: uuid.UUID) -> RowMapping | None:
    result = await session.execute(
        select(enrolments).where(enrolments.c.tenant_id == tenant_id, enrolments.c.id == enrolment_id)
    )
    found: RowMapping | None = result.mappings().one_or_none()
    return found


async def insert_returning(session: AsyncSession, table: Any, values: dict[str, Any]) -> RowMapping:
    result = await session.execute(insert(table).values(**values).returning(table))
    created: RowMapping = result.mappings().one()
    return created


async def update_versioned(
    session: AsyncSession, table: Any, conditions: Sequence[Any], expected_version: int, values: dict[str, Any]
) -> RowMapping | None:
    result = await session.execute(
        update(table)
        .where(*conditions, table.c.version == expected_version)
        .values(**values, version=table.c.version + 1, updated_at=func.now())
        .returning(table)
    )
    found: RowMapping | None = result.mappings().one_or_none()
    return found


async def unknown_participant_ids(
    session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """The subset of `ids` that are not live (unerased) participants of this tenant."""
    if not ids:
        return set()
    found = set(
        await session.scalars(
            select(participants.c.id).where(
                participants.c.tenant_id == tenant_id, participants.c.id.in_(ids), participants.c.erased_at.is_(None)
            )
        )
    )
    return set(ids) - found


async def campus_ids_exist(session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The subset of `ids` that are not campuses of this tenant."""
    if not ids:
        return set()
    found = set(
        await session.scalars(select(campuses.c.id).where(campuses.c.tenant_id == tenant_id, campuses.c.id.in_(ids)))
    )
    return set(ids) - found
