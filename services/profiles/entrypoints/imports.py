"""CSV bulk import of participants and enrolments into a program, streamed.

The body is read chunk by chunk from the request stream, cut into lines and whole CSV records, parsed and
validated in batches of `IMPORT_BATCH_ROWS`, and each batch is written in its own transaction together with its
events and the job's progress, so `GET /v1/imports/{id}` shows progress from another request while the upload runs.
Batches are written one at a time in file order while the next ones are validated (`QUEUED_BATCHES`), so
PostgreSQL and Python work at the same time. Memory is bounded by a few batches, whatever the file size.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping
from starlette.requests import ClientDisconnect

from services.profiles.adapters import repository as repo
from services.profiles.adapters.import_store import ImportTarget, PreparedBatch, prepare_batch, write_batch
from services.profiles.adapters.orm import campuses, import_errors, import_jobs
from services.profiles.domain.csv_import import (
    HeaderError,
    ParsedRow,
    RecordAssembler,
    RecordTooLongError,
    RowError,
    RowParser,
    check_header,
    check_header_text,
    detect_delimiter,
    parse_records,
    separator_line,
    stored_columns,
)
from services.profiles.domain.csv_text import NotTextError, TextLines, UnsupportedEncodingError
from services.profiles.entrypoints.http import READ_RESPONSES, not_found, transaction
from services.profiles.entrypoints.schemas import ImportJobOut, ImportReportOut, RowErrorOut
from shared.auth import CoordinatorOrOperatorPrincipal, Principal
from shared.http_errors import error_responses
from shared.http_protection import declare_idempotency_key
from shared.ids import new_id
from shared.paging import Limit, Offset, OffsetPage

IMPORT_BATCH_ROWS = 1_000
# Validated batches queue for the writer, at most this many (the one being written included): while a batch's
# statements run in PostgreSQL, the api validates the next batches instead of waiting. Memory: this many batches
# plus the one being validated.
QUEUED_BATCHES = 2
# Validation yields to the event loop every this many rows, so the batch being written sends its next statement
# as soon as PostgreSQL answers the previous one, rather than after the whole batch is validated.
VALIDATION_SLICE_ROWS = 50
MAX_IMPORT_ROWS = 1_000_000
REPORTED_ERRORS = 1_000

router = APIRouter(tags=["imports"])

_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "CSV, header row first: UTF-8 (a BOM is ignored) or UTF-16 with a BOM; comma, semicolon or tab "
            "separated; see docs/profiles/csv-import.md for the columns."
        ),
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


async def _lines(stream: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """Lines (with their line ending) of the uploaded bytes, a chunk's worth at a time (see `TextLines`).

    Where the bytes stop being text, the whole lines before that one come first, then `NotTextError`.
    """
    text = TextLines()
    try:
        async for chunk in stream:
            if lines := text.feed(chunk):
                yield lines
        if lines := text.finish():
            yield lines
    except NotTextError as error:
        if error.lines:
            yield error.lines
        raise


def _job(row: RowMapping) -> dict[str, Any]:
    return {name: row[name] for name in ImportJobOut.model_fields}


async def _visible_job(request: Request, principal: Principal, job_id: uuid.UUID) -> RowMapping:
    async with transaction(request) as session:
        row = (
            (
                await session.execute(
                    select(import_jobs).where(import_jobs.c.tenant_id == principal.tenant, import_jobs.c.id == job_id)
                )
            )
            .mappings()
            .one_or_none()
        )
    if row is None or not principal.manages(row["program_id"]):
        raise not_found("import")
    return row


class _ImportRun:
    """State of one running import: the header, the batch being filled, and counters (never the whole file)."""

    def __init__(self, request: Request, principal: Principal, program: RowMapping, job_id: uuid.UUID) -> None:
        self.request = request
        self.principal = principal
        self.program = program
        self.job_id = job_id
        self.header: list[str] | None = None
        self.delimiter = ","
        self.named_delimiter: str | None = None  # from an Excel "sep=" first line
        self.parser: RowParser | None = None
        self.target: ImportTarget | None = None
        self.campus_ids: dict[str, uuid.UUID] = {}
        self.next_row_number = 1
        self.pending: list[str] = []
        # Writes of validated batches, oldest first. Each waits for the one before it, so batches are written one
        # at a time and commit in file order; each returns the errors stored so far (numbering the next's).
        self.writes: collections.deque[asyncio.Task[int]] = collections.deque()
        # The first REPORTED_ERRORS rows that enrolled a person of another program and kept their stored profile.
        self.profile_kept_rows: list[int] = []

    async def start(self) -> None:
        async with transaction(self.request) as session:
            rows = await session.execute(
                select(campuses.c.id, campuses.c.name).where(campuses.c.tenant_id == self.principal.tenant)
            )
            for campus_id, name in rows:
                self.campus_ids[name.lower()] = campus_id
                self.campus_ids[str(campus_id)] = campus_id

    def take_header(self, record: str) -> None:
        check_header_text(record)
        if self.named_delimiter is None and (named := separator_line(record)) is not None:
            self.named_delimiter = named  # the header is the next record
            return
        self.delimiter = self.named_delimiter or detect_delimiter(record)
        [(_, cells)] = parse_records(1, [record], self.delimiter)
        if isinstance(cells, RowError):
            raise HeaderError(cells.message)
        self.header = check_header(cells)
        self.parser = RowParser(self.header, self.campus_ids)
        catalogue = repo.program_fields(self.program).function_catalogue
        self.target = ImportTarget(
            tenant_id=self.principal.tenant,
            program_id=self.program["id"],
            job_id=self.job_id,
            default_capacity=self.program["default_mentor_capacity"],
            update_columns=stored_columns(self.header),
            catalogue_keys=frozenset(entry.key for entry in catalogue),
            reachable_programs=None if self.principal.is_operator else self.principal.programs,
        )
        self.next_row_number = 2

    async def add(self, records: list[str]) -> None:
        for record in records:
            if self.header is None:
                self.take_header(record)
            else:
                self.pending.append(record)
            if len(self.pending) >= IMPORT_BATCH_ROWS:
                await self.flush()

    async def flush(self) -> None:
        if not self.pending or self.parser is None or self.target is None:
            return
        batch, self.pending = self.pending, []
        first = self.next_row_number
        self.next_row_number += len(batch)
        if self.next_row_number - 2 > MAX_IMPORT_ROWS:
            raise HeaderError(f"an import holds at most {MAX_IMPORT_ROWS} rows")
        valid: list[ParsedRow] = []
        errors: list[RowError] = []
        for index, (number, cells) in enumerate(parse_records(first, batch, self.delimiter), start=1):
            if index % VALIDATION_SLICE_ROWS == 0 and self.writes:
                await asyncio.sleep(0)
            if isinstance(cells, RowError):
                errors.append(cells)
            elif cells and any(cell.strip() for cell in cells):  # blank lines are skipped, not errors
                parsed = self.parser.parse(number, cells)
                if isinstance(parsed, ParsedRow):
                    valid.append(parsed)
                else:
                    errors.extend(parsed)
        prepared = prepare_batch(self.target, valid, errors)
        while len(self.writes) >= QUEUED_BATCHES:
            await self.writes.popleft()
        previous = self.writes[-1] if self.writes else None
        self.writes.append(asyncio.create_task(self._write(previous, self.target, prepared)))

    async def _write(
        self,
        previous: asyncio.Task[int] | None,
        target: ImportTarget,
        batch: PreparedBatch,
    ) -> int:
        errors_stored = 0 if previous is None else await previous
        async with transaction(self.request) as session:
            outcome = await write_batch(session, target, batch, errors_stored)
        room = REPORTED_ERRORS - len(self.profile_kept_rows)
        self.profile_kept_rows.extend(outcome.profile_kept_rows[:room])
        return errors_stored + outcome.errors_stored

    async def drain(self) -> None:
        """Wait for the batches on their way to the database (their errors surface here)."""
        while self.writes:
            await self.writes.popleft()

    def abandon(self) -> None:
        for task in self.writes:
            if not task.cancel() and not task.cancelled():
                task.exception()  # a failed write also fails the ones queued behind it: the first failure is reported


def _kept(run: _ImportRun) -> str:
    """Which rows a stopped import kept: every row before the failure (`run` is flushed, nothing is pending)."""
    last = run.next_row_number - 1
    if run.header is None or last < 2:
        return "nothing was imported"
    return f"the last row imported was row {last} (it and the rows before it were imported or reported)"


def _failure_text(error: Exception, run: _ImportRun) -> str:
    if isinstance(error, RecordTooLongError):
        return f"row {run.next_row_number}: {error}; {_kept(run)}, the rest of the file was not read"
    if isinstance(error, NotTextError):
        return (
            f"row {run.next_row_number} is not {error.encoding} text (byte offset {error.offset}: "
            f"0x{error.bad[:1].hex()}); {_kept(run)}, the rest of the file was not read. "
            "Save the file as UTF-8 and upload it again (rows already imported stay unchanged): in Excel, "
            "File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)'; in Google Sheets, File > Download > "
            "'Comma-separated values (.csv)'; in Numbers, File > Export To > CSV with Text Encoding 'Unicode (UTF-8)'."
        )
    if isinstance(error, ClientDisconnect):
        return f"the upload was interrupted; {_kept(run)}. Upload the file again (rows already imported stay unchanged)"
    return str(error)


async def _finish(request: Request, job_id: uuid.UUID, status_value: str, failure: str | None) -> RowMapping:
    async with transaction(request) as session:
        result = await session.execute(
            update(import_jobs)
            .where(import_jobs.c.id == job_id)
            .values(
                status=status_value,
                failure=failure.replace("\x00", "\\x00")[:1000] if failure else None,
                finished_at=func.now(),
                version=import_jobs.c.version + 1,
                updated_at=func.now(),
            )
            .returning(import_jobs)
        )
        job: RowMapping = result.mappings().one()
        return job


@router.post(
    "/programs/{program_id}/imports",
    status_code=201,
    responses={
        **READ_RESPONSES,
        **error_responses(
            415,
            422,
            descriptions={
                415: "The body is not text/csv.",
                422: "The header row cannot be imported (the job is marked failed); loc names the header.",
            },
        ),
    },
    openapi_extra=_CSV_BODY,
    dependencies=[Depends(declare_idempotency_key)],
)
async def import_participants(
    program_id: uuid.UUID, request: Request, response: Response, principal: CoordinatorOrOperatorPrincipal
) -> ImportReportOut:
    """Import participants (and their enrolments in this program) from CSV; re-uploading is harmless.

    Rows are matched to existing participants by external id, else by email; valid rows are stored even when
    others fail; each failure is reported with its row number, column and message.

    A matched person may be enrolled in other programs only: importing them into this one is how a program starts,
    and puts them in the coordinator's program, whose profile the coordinator then reaches. A coordinator's row
    about a person not yet in their programs enrols them but keeps their stored profile, which another program's
    coordinator maintains (counted in rows_profile_kept, listed in profile_kept_rows); without a role, such a row
    enrols no one and is a row error. An operator's rows update whoever they match.
    The report holds counts and the file's row errors, never a stored profile, person id or other program of a
    matched person; it tells no more than that profile does (a row withdrawing consent is refused when the person
    holds affinity attributes, and only when it would write the profile: for a person of the coordinator's programs
    or an operator's import).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in {"text/csv", "application/csv", "text/plain"}:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the CSV as a text/csv body")
    async with transaction(request) as session:
        program = await repo.program_row(session, principal.tenant, program_id)
        if program is None or not principal.manages(program_id):
            raise not_found("program")
        job_id = new_id()
        await session.execute(
            insert(import_jobs).values(id=job_id, tenant_id=principal.tenant, program_id=program_id, status="running")
        )
    run = _ImportRun(request, principal, program, job_id)
    failure: str | None = None
    header_failure = False
    try:
        await run.start()
        assembler = RecordAssembler()
        try:
            async for lines in _lines(request.stream()):
                await run.add(assembler.feed(lines))
        except (NotTextError, RecordTooLongError, ClientDisconnect) as stop:
            # Every record before the failure is whole (a dropped upload: every one received): keep them all, not
            # only the full batches, so what is imported does not depend on where a batch ends (the failure names
            # the last row imported).
            if isinstance(stop, RecordTooLongError):
                await run.add(stop.records)
            await run.flush()
            raise
        await run.add(assembler.finish())
        await run.flush()
        await run.drain()
        if run.header is None:
            raise HeaderError("the file is empty: a header row is required")
    except (HeaderError, UnsupportedEncodingError, RecordTooLongError, NotTextError, ClientDisconnect) as error:
        await run.drain()  # keep the batch already on its way: the report counts it
        header_failure = isinstance(error, HeaderError | UnsupportedEncodingError)
        failure = _failure_text(error, run)
    except BaseException:
        run.abandon()
        await _finish(request, job_id, "failed", "internal error")
        raise
    finally:
        run.abandon()
    job = await _finish(request, job_id, "failed" if failure else "completed", failure)
    if header_failure:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "header"), "msg": failure, "input": None}]
        )
    # Relative to this request (/v1/programs/{id}/imports): behind the ingress, which strips /api/profiles, an absolute
    # path would point outside the service (RFC 9110 §10.2.2 allows a relative reference).
    response.headers["Location"] = f"../../imports/{job_id}"
    async with transaction(request) as session:
        errors = (
            await session.execute(
                select(import_errors)
                .where(import_errors.c.job_id == job_id)
                .order_by(import_errors.c.seq)
                .limit(REPORTED_ERRORS)
            )
        ).mappings()
        listed = [
            RowErrorOut(row_number=e["row_number"], column=e["column_name"], message=e["message"]) for e in errors
        ]
    return ImportReportOut.model_validate({**_job(job), "errors": listed, "profile_kept_rows": run.profile_kept_rows})


# The path parameter is import_id, after its collection like every other (`/campuses/{campus_id}`); the URL is the
# same as when it was called job_id.
@router.get("/imports/{import_id}", responses=READ_RESPONSES)
async def read_import(
    import_id: uuid.UUID, request: Request, principal: CoordinatorOrOperatorPrincipal
) -> ImportJobOut:
    """Progress of an import, updated after every batch (also while the upload is still running)."""
    return ImportJobOut.model_validate(_job(await _visible_job(request, principal, import_id)))


@router.get("/programs/{program_id}/imports", responses=READ_RESPONSES)
async def list_imports(
    program_id: uuid.UUID,
    request: Request,
    principal: CoordinatorOrOperatorPrincipal,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[ImportJobOut]:
    """The program's imports, newest first."""
    async with transaction(request) as session:
        program = await repo.program_row(session, principal.tenant, program_id)
        if program is None or not principal.manages(program_id):
            raise not_found("program")
        rows = (
            await session.execute(
                select(import_jobs)
                .where(import_jobs.c.tenant_id == principal.tenant, import_jobs.c.program_id == program_id)
                .order_by(import_jobs.c.created_at.desc(), import_jobs.c.id)
                .offset(offset)
                .limit(limit + 1)
            )
        ).mappings()
        return OffsetPage[ImportJobOut].of(rows, offset, limit, lambda row: ImportJobOut.model_validate(_job(row)))


@router.get("/imports/{import_id}/errors", responses=READ_RESPONSES)
async def list_import_errors(
    import_id: uuid.UUID,
    request: Request,
    principal: CoordinatorOrOperatorPrincipal,
    offset: Offset = 0,
    limit: Limit = 100,
) -> OffsetPage[RowErrorOut]:
    """The stored row errors of an import (at most 10,000), in row order."""
    await _visible_job(request, principal, import_id)
    async with transaction(request) as session:
        rows = list(
            (
                await session.execute(
                    select(import_errors)
                    .where(import_errors.c.job_id == import_id)
                    .order_by(import_errors.c.seq)
                    .offset(offset)
                    .limit(limit + 1)
                )
            ).mappings()
        )
    return OffsetPage[RowErrorOut].of(
        rows,
        offset,
        limit,
        lambda e: RowErrorOut(row_number=e["row_number"], column=e["column_name"], message=e["message"]),
    )
