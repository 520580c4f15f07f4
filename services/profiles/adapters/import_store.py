"""Writing one batch of imported rows: participants and enrolments upserted with one statement each, their
events into the outbox, errors and progress into the job, all in the batch's transaction.

Set-based on purpose (``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE``): one round trip per batch
instead of one per row is what makes 100k rows in seconds possible. Unchanged rows are skipped by the
``WHERE … IS DISTINCT FROM`` of the upsert, so a re-upload changes nothing and emits nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from pydantic import TypeAdapter
from sqlalchemy import func, insert, text, update
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from services.profiles.adapters.orm import import_errors, import_jobs
from services.profiles.domain.csv_import import ParsedRow, RowError
from services.profiles.domain.model import EnrolmentFields, ProfileFields, effective_capacity
from shared.events.models import EnrollmentChanged, EventData, ProfileUpdated
from shared.events.values import EnrollmentRole, EnrollmentStatus, NeedRating
from shared.ids import new_id
from shared.messaging.outbox import add_events

# How each participants column is read from a row's JSON document in SQL (one document per row: a single
# model_dump_json in Python instead of a dozen json.dumps calls).
_FROM_DOCUMENT = {
    "external_id": "d->>'external_id'",
    "display_name": "d->>'display_name'",
    "email": "d->>'email'",
    "campus_id": "(d->>'campus_id')::uuid",
    "department": "d->>'department'",
    "team": "d->>'team'",
    "manager_person_id": "(d->>'manager_person_id')::uuid",
    "reporting_line_id": "d->>'reporting_line_id'",
    "role_level": "(d->>'role_level')::int",
    "tenure_start": "(d->>'tenure_start')::date",
    "time_zone": "d->>'time_zone'",
    **{name: f"d->'{name}'" for name in (
        "languages", "interests", "skills", "goals", "desired_outcomes", "working_style", "consent",
        "affinity_attributes", "blocked_person_ids", "availability", "needs", "offers",
    )},
}  # fmt: skip
MAX_STORED_ERRORS = 10_000
_NEEDS_JSON = TypeAdapter(tuple[NeedRating, ...])
_OFFERS_JSON = TypeAdapter(tuple[str, ...])
_PROFILE_FIELD_NAMES = tuple(ProfileFields.model_fields)
_INVENTORIES = frozenset({"needs", "offers"})


# OFFSET 0 keeps the subquery from being pulled up into the INSERT: pulled up, `document::jsonb` was parsed once
# per `d` reference (24 times a row), 300 of the 380 µs PostgreSQL spent per row.
@cache
def _participant_upsert(update_columns: frozenset[str]) -> Any:
    names = list(_FROM_DOCUMENT)
    changing = sorted(c for c in update_columns if c in _FROM_DOCUMENT)
    kept = [c for c in names if c not in update_columns]  # columns the file does not name: read back for events
    assignments = ", ".join(f"{c} = excluded.{c}" for c in changing)
    differs = " OR ".join(f"participants.{c} IS DISTINCT FROM excluded.{c}" for c in changing)
    # A new row holds exactly the file's values, so the columns the file does not name are read back only for
    # updated rows (xmax = 0 marks a row this statement inserted rather than updated).
    returned = ", ".join(
        [
            "participants.id",
            "participants.version",
            "participants.xmax = 0 AS inserted",
            *(f"CASE WHEN participants.xmax = 0 THEN NULL ELSE participants.{c} END AS {c}" for c in kept),
        ]
    )
    return text(
        f"""
        INSERT INTO participants (tenant_id, id, {", ".join(names)})
        SELECT CAST(:tenant_id AS uuid), id, {", ".join(_FROM_DOCUMENT[n] for n in names)}
        FROM (SELECT id, document::jsonb AS d
              FROM unnest(CAST(:id AS uuid[]), CAST(:document AS text[])) AS input(id, document)
              OFFSET 0) AS rows
        ON CONFLICT (id) DO UPDATE SET {assignments}, version = participants.version + 1, updated_at = now()
        WHERE {differs}
        RETURNING {returned}
        """
    )


# A new enrolment's id comes from PostgreSQL: only inserted rows use it, and the RETURNING hands it back.
_ENROLMENT_UPSERT = text(
    """
    INSERT INTO enrolments (id, tenant_id, program_id, person_id, role, capacity, status, cohort)
    SELECT gen_random_uuid(), CAST(:tenant_id AS uuid), CAST(:program_id AS uuid), person_id, role, capacity, status,
           cohort
    FROM unnest(CAST(:person_id AS uuid[]), CAST(:role AS text[]), CAST(:capacity AS int[]), CAST(:status AS text[]),
                CAST(:cohort AS text[])) AS input(person_id, role, capacity, status, cohort)
    ON CONFLICT (program_id, person_id) DO UPDATE SET
        role = excluded.role, capacity = excluded.capacity, status = excluded.status, cohort = excluded.cohort,
        version = enrolments.version + 1, updated_at = now()
    WHERE (enrolments.role, enrolments.capacity, enrolments.status, enrolments.cohort)
        IS DISTINCT FROM (excluded.role, excluded.capacity, excluded.status, excluded.cohort)
    RETURNING enrolments.id, enrolments.person_id, enrolments.version, enrolments.role, enrolments.capacity,
              enrolments.status, enrolments.cohort
    """
)

# Two index lookups joined by UNION: an OR of the two conditions would make PostgreSQL scan the whole table.
_EXISTING = text(
    """
    SELECT id, external_id, email, coalesce(jsonb_array_length(affinity_attributes), 0) > 0 AS holds_affinity
    FROM participants
    WHERE tenant_id = :tenant_id AND erased_at IS NULL AND external_id = ANY(CAST(:external_ids AS text[]))
    UNION
    SELECT id, external_id, email, coalesce(jsonb_array_length(affinity_attributes), 0) > 0 AS holds_affinity
    FROM participants
    WHERE tenant_id = :tenant_id AND erased_at IS NULL AND email = ANY(CAST(:emails AS text[]))
    """
)

# Which of the given people are (or were) enrolled in one of the given programs.
_ENROLLED_IN = text(
    """
    SELECT DISTINCT person_id FROM enrolments
    WHERE tenant_id = :tenant_id AND person_id = ANY(CAST(:person_ids AS uuid[]))
      AND program_id = ANY(CAST(:program_ids AS uuid[]))
    """
)


@dataclass
class BatchOutcome:
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    errors_stored: int = 0
    #: Row numbers of the rows that enrolled a person of another program and kept their stored profile.
    profile_kept_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ImportTarget:
    tenant_id: uuid.UUID
    program_id: uuid.UUID
    job_id: uuid.UUID
    default_capacity: int
    update_columns: frozenset[str]
    catalogue_keys: frozenset[str]
    #: The programs whose people the importer reaches (a coordinator's); None: an operator's import, everyone.
    reachable_programs: frozenset[uuid.UUID] | None = None


@dataclass(frozen=True)
class PreparedBatch:
    """A validated batch with all that needs no database done already (while the batch before is written): the
    rows that passed the catalogue check, their JSON documents for the upsert, and the batch's errors so far."""

    rows: list[ParsedRow]
    documents: list[str]
    errors: list[RowError]
    processed: int


def prepare_batch(target: ImportTarget, rows: Sequence[ParsedRow], errors: list[RowError]) -> PreparedBatch:
    # Rows, not errors: a row with several bad cells has an error for each.
    processed = len(rows) + len({error.row_number for error in errors})
    checked: list[ParsedRow] = []
    for row in rows:
        found = _catalogue_errors(row, target.catalogue_keys)
        errors.extend(found)
        if not found:
            checked.append(row)
    return PreparedBatch(checked, [_document(row) for row in checked], errors, processed)


def _resolve(rows: Sequence[ParsedRow], existing: Sequence[Any]) -> tuple[dict[uuid.UUID, int], list[RowError]]:
    """Decide which person each row is (by external id, else email); the last row for a person wins.

    Returns the index of the row chosen for each person, and the rows refused."""
    by_external = {r.external_id: r.id for r in existing if r.external_id is not None}
    by_email = {r.email: r.id for r in existing if r.email is not None}
    external_of = {r.id: r.external_id for r in existing}
    chosen: dict[uuid.UUID, int] = {}
    claimed_email: dict[str, uuid.UUID] = {}
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        profile = row.profile
        person_id = by_external.get(profile.external_id) if profile.external_id else None
        email_owner = by_email.get(profile.email)
        if person_id is None and email_owner is not None:
            if profile.external_id and external_of.get(email_owner) not in (None, profile.external_id):
                errors.append(
                    RowError(row.row_number, "email", "email belongs to a participant with another external id")
                )
                continue
            person_id = email_owner
        elif person_id is not None and email_owner not in (None, person_id):
            errors.append(RowError(row.row_number, "email", "email belongs to another participant"))
            continue
        if person_id is None:  # a new person: later rows of this batch with the same keys update it
            person_id = new_id()
            if profile.external_id:
                by_external[profile.external_id] = person_id
            by_email[profile.email] = person_id
        if claimed_email.setdefault(profile.email, person_id) != person_id:
            errors.append(RowError(row.row_number, "email", "email is used by another row of this file"))
            continue
        chosen[person_id] = index
    return chosen, errors


def _consent_errors(
    rows: Sequence[ParsedRow],
    existing: Sequence[Any],
    chosen: dict[uuid.UUID, int],
    update_columns: frozenset[str],
    profile_kept: set[uuid.UUID],
) -> list[RowError]:
    """Rows that withdraw consent to affinity matching from a person whose stored affinity attributes the file
    leaves in place (it has no affinity_attributes column): refused, as the API refuses the same change, and
    removed from `chosen` before anything is written."""
    if "consent" not in update_columns or "affinity_attributes" in update_columns:
        return []
    holding = {r.id for r in existing if r.holds_affinity} - profile_kept
    refused = {
        person_id: index
        for person_id, index in chosen.items()
        if person_id in holding and not rows[index].profile.consent.affinity_matching
    }
    for person_id in refused:
        del chosen[person_id]
    return [
        RowError(
            rows[index].row_number,
            "consent_affinity_matching",
            "this person has affinity attributes stored, which need consent to affinity matching: to withdraw it, "
            "add an affinity_attributes column and leave it empty",
        )
        for index in sorted(refused.values())
    ]


async def _outside_reach(
    session: AsyncSession,
    target: ImportTarget,
    rows: Sequence[ParsedRow],
    existing: Sequence[Any],
    chosen: dict[uuid.UUID, int],
) -> tuple[list[RowError], set[uuid.UUID]]:
    """A coordinator's rows about people not in their programs: (the refused rows' errors, the people whose stored
    profile is kept). Refused rows are removed from `chosen` before anything is written.

    A row without a role (no enrolment) is refused: it would write a profile the coordinator may not reach, of a
    person of another program, or of a new person in none (whom a re-upload of the same file could then no longer
    update). A row with a role takes an existing person into the program, which is how a program starts, but
    leaves their stored profile as it is: another program's coordinator maintains it. A new person is created."""
    if target.reachable_programs is None:
        return [], set()
    stored = {r.id for r in existing}
    matched = [pid for pid in chosen if pid in stored]
    reachable = (
        set(
            await session.scalars(
                _ENROLLED_IN,
                {
                    "tenant_id": target.tenant_id,
                    "person_ids": matched,
                    "program_ids": list(target.reachable_programs),
                },
            )
        )
        if matched
        else set()
    )
    roleless = [pid for pid, index in chosen.items() if rows[index].enrolment is None]
    refused = sorted(chosen.pop(pid) for pid in roleless if pid not in reachable)
    kept = {pid for pid in matched if pid in chosen and pid not in reachable}
    errors = [
        RowError(
            rows[index].row_number,
            "role",
            "a coordinator's import changes only people of their programs: fill role to enrol this person",
        )
        for index in refused
    ]
    return errors, kept


def _catalogue_errors(row: ParsedRow, keys: frozenset[str]) -> list[RowError]:
    unknown = [n.function_key for n in row.needs.needs] if row.needs else []
    unknown += row.offers.offers if row.offers else ()
    if keys.issuperset(unknown):
        return []
    missing = sorted({key for key in unknown if key not in keys})
    if not missing:
        return []
    column = "needs" if row.needs and any(n.function_key in missing for n in row.needs.needs) else "offers"
    return [RowError(row.row_number, column, f"not in the program's function catalogue: {', '.join(missing)}")]


# The serialisers are called directly: the Python wrappers of model_dump_json / dump_json cost more (~3 µs a call,
# three calls a row) than serialising the inventories does.
_PROFILE_SERIALIZER = ProfileFields.__pydantic_serializer__
_NEEDS_SERIALIZER = _NEEDS_JSON.serializer
_OFFERS_SERIALIZER = _OFFERS_JSON.serializer


def _document(row: ParsedRow) -> str:
    """The row as one JSON object: the profile's fields plus its inventories."""
    profile: bytes = _PROFILE_SERIALIZER.to_json(row.profile)
    needs: bytes = _NEEDS_SERIALIZER.to_json(row.needs.needs if row.needs else ())
    offers: bytes = _OFFERS_SERIALIZER.to_json(row.offers.offers if row.offers else ())
    return b"".join((profile[:-1], b',"needs":', needs, b',"offers":', offers, b"}")).decode()


@cache
def _stored_value_adapter(name: str) -> TypeAdapter[Any]:
    """Validates one ProfileUpdated field read back from the database (a column the file does not name)."""
    field = ProfileUpdated.model_fields[name]
    annotated: Any = Annotated[field.annotation, field]  # built at run time: mypy cannot type it
    return TypeAdapter(annotated)


async def _upsert_enrolments(
    session: AsyncSession, target: ImportTarget, enrolled: list[tuple[uuid.UUID, EnrolmentFields]]
) -> list[Row[Any]]:
    result = await session.execute(
        _ENROLMENT_UPSERT,
        {
            "tenant_id": target.tenant_id,
            "program_id": target.program_id,
            "person_id": [person_id for person_id, _ in enrolled],
            "role": [enrolment.role.value for _, enrolment in enrolled],
            "capacity": [
                effective_capacity(enrolment.role, enrolment.capacity, target.default_capacity)
                for _, enrolment in enrolled
            ],
            "status": [enrolment.status.value for _, enrolment in enrolled],
            "cohort": [enrolment.cohort for _, enrolment in enrolled],
        },
    )
    return list(result)


class _Snapshots:
    """Builds the ProfileUpdated of each written row: the file's values plus the stored values of the columns the
    file does not name (for an updated row; a new row holds exactly the file's values and defaults).

    Not validated again: the file's values were validated by ProfileFields / NeedsInventory / OfferInventory (at
    least as strictly as ProfileUpdated does, consent and unique needs included), which cost ~25 µs a row for
    nothing; stored values are validated field by field. The first event of a batch is made by
    ``model_construct``, the others as copies of it with every field replaced (``model_copy(update=…)``): the
    same instance for a third of the cost.
    """

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self._tenant_id = tenant_id
        self._first: ProfileUpdated | None = None

    def __call__(self, row: ParsedRow, stored: RowMapping) -> ProfileUpdated:
        # Every field of ProfileFields (its __dict__ holds exactly those); dict(model) is 20× slower: it looks for
        # a `keys` attribute first, which goes through the model's __getattr__ and an AttributeError.
        values: dict[str, Any] = row.profile.__dict__.copy()
        values["needs"] = row.needs.needs if row.needs else ()
        values["offers"] = row.offers.offers if row.offers else ()
        values["tenant_id"] = self._tenant_id
        values["person_id"] = stored["id"]
        values["version"] = stored["version"]
        for name, value in stored.items() if not stored["inserted"] else ():
            if name not in ("id", "version", "inserted"):
                values[name] = _stored_value_adapter(name).validate_python(
                    () if value is None and name in _INVENTORIES else value
                )
        if self._first is None:
            event = self._first = ProfileUpdated.model_construct(**values)
        else:
            event = self._first.model_copy(update=values)
        # The contract's cross-field rules, which a mix of file and stored values could break (the model validator
        # does not run here); each side's own rules were checked where it was validated.
        if event.affinity_attributes and not event.consent.affinity_matching:
            raise ValueError("affinity_attributes require consent.affinity_matching")
        if event.person_id in event.blocked_person_ids:
            raise ValueError("a person cannot block themselves")
        return event


_ROLES = {role.value: role for role in EnrollmentRole}
_STATUSES = {status.value: status for status in EnrollmentStatus}


class _EnrolmentEvents:
    """EnrollmentChanged of the rows the upsert returned: their values were validated by EnrolmentFields (and the
    table's constraints), so they are only converted to their types here, not validated again; built like
    `_Snapshots` builds ProfileUpdated."""

    def __init__(self, target: ImportTarget) -> None:
        self._target = target
        self._first: EnrollmentChanged | None = None

    def __call__(self, row: Row[Any]) -> EnrollmentChanged:
        values = {
            "tenant_id": self._target.tenant_id,
            "enrollment_id": row.id,
            "person_id": row.person_id,
            "program_id": self._target.program_id,
            "version": row.version,
            "role": _ROLES[row.role],
            "capacity": row.capacity,
            "status": _STATUSES[row.status],
            "cohort": row.cohort,
        }
        if self._first is None:
            self._first = EnrollmentChanged.model_construct(**values)
            return self._first
        return self._first.model_copy(update=values)


async def write_batch(session: AsyncSession, target: ImportTarget, batch: PreparedBatch, stored: int) -> BatchOutcome:
    """Upsert a prepared batch (rows that fail here join its errors), emit events, record errors and progress."""
    rows, errors, processed = batch.rows, batch.errors, batch.processed
    existing = (
        await session.execute(
            _EXISTING,
            {
                "tenant_id": target.tenant_id,
                "external_ids": [r.profile.external_id for r in rows if r.profile.external_id],
                "emails": [r.profile.email for r in rows],
            },
        )
    ).all()
    chosen, conflicts = _resolve(rows, existing)
    errors.extend(conflicts)
    refused, profile_kept = await _outside_reach(session, target, rows, existing, chosen)
    errors.extend(refused)
    # After _outside_reach: a row keeping the stored profile writes no consent, so it is never refused for one.
    errors.extend(_consent_errors(rows, existing, chosen, target.update_columns, profile_kept))
    events: list[EventData] = []
    if chosen:
        updating = {pid: index for pid, index in chosen.items() if pid not in profile_kept}
        written = (
            (
                await session.execute(
                    _participant_upsert(target.update_columns),
                    {
                        "tenant_id": target.tenant_id,
                        "id": list(updating),
                        "document": [batch.documents[index] for index in updating.values()],
                    },
                )
            )
            .mappings()
            .all()
            if updating
            else []
        )
        enrolled = [(pid, row.enrolment) for pid, index in chosen.items() if (row := rows[index]).enrolment is not None]
        # The enrolment upsert runs in PostgreSQL while the snapshots are built here (it does not need them).
        enrolling = asyncio.ensure_future(_upsert_enrolments(session, target, enrolled)) if enrolled else None
        try:
            await asyncio.sleep(0)  # let it send the statement
            snapshot = _Snapshots(target.tenant_id)
            events.extend(snapshot(rows[chosen[stored["id"]]], stored) for stored in written)
            enrolment_rows = await enrolling if enrolling is not None else []
        except BaseException:
            if enrolling is not None and not enrolling.done():  # never leave a statement running on the session
                enrolling.cancel()
                await asyncio.wait([enrolling])
            raise
        events.extend(map(_EnrolmentEvents(target), enrolment_rows))
    await add_events(session, events)
    changed = sum(1 for e in events if isinstance(e, ProfileUpdated))
    failed_rows = len({e.row_number for e in errors})
    room = max(0, MAX_STORED_ERRORS - stored)
    to_store = errors[:room]
    if to_store:
        await session.execute(
            insert(import_errors),
            [
                {
                    "job_id": target.job_id,
                    "seq": stored + i,
                    "row_number": e.row_number,
                    "column_name": e.column,
                    "message": e.message,
                }
                for i, e in enumerate(to_store)
            ],
        )
    outcome = BatchOutcome(
        changed=changed,
        unchanged=processed - failed_rows - changed - len(profile_kept),
        failed=failed_rows,
        errors_stored=len(to_store),
        profile_kept_rows=sorted(rows[chosen[pid]].row_number for pid in profile_kept),
    )
    await session.execute(
        update(import_jobs)
        .where(import_jobs.c.id == target.job_id)
        .values(
            rows_processed=import_jobs.c.rows_processed + processed,
            rows_imported=import_jobs.c.rows_imported + outcome.changed,
            rows_unchanged=import_jobs.c.rows_unchanged + outcome.unchanged,
            rows_failed=import_jobs.c.rows_failed + outcome.failed,
            rows_profile_kept=import_jobs.c.rows_profile_kept + len(outcome.profile_kept_rows),
            errors_truncated=import_jobs.c.errors_truncated | (len(errors) > room),
            version=import_jobs.c.version + 1,
            updated_at=func.now(),
        )
    )
    return outcome
