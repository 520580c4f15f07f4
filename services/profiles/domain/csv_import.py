"""CSV rows of a participant import: columns, parsing and validation into profile fields (pure, no I/O).

The column reference lives in docs/profiles/csv-import.md. List cells hold items separated by ``;``.
Row numbers are those a spreadsheet shows: the header is row 1, the first participant row 2.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.profiles.domain.model import (
    TEXT_CHECKED,
    EnrolmentFields,
    NeedsInventory,
    OfferInventory,
    ProfileFields,
    tenure_start_refusal,
)

REQUIRED_COLUMNS = ("email", "display_name", "tenure_start", "time_zone")
PROFILE_COLUMNS = (
    "external_id", "email", "display_name", "campus", "department", "team", "reporting_line_id", "role_level",
    "tenure_start", "time_zone", "languages", "interests", "skills", "goal_tags", "goal_text",
    "desired_outcome_tags", "desired_outcome_text", "communication", "meeting_format", "cadence",
    "consent_affinity_matching", "consent_share_email", "affinity_attributes", "availability",
)  # fmt: skip
INVENTORY_COLUMNS = ("needs", "offers")
ENROLMENT_COLUMNS = ("role", "capacity", "status", "cohort")
ALL_COLUMNS = PROFILE_COLUMNS + INVENTORY_COLUMNS + ENROLMENT_COLUMNS
MAX_CELL_LENGTH = 10_000
MAX_RECORD_CHARS = 100_000
# Field separators spreadsheets write: comma; semicolon where the comma is the decimal separator (Excel in most
# European locales); tab (Excel's "Unicode Text").
DELIMITERS = (",", ";", "\t")

# Which database columns a CSV column writes: an update touches only what the file's header names.
STORED_BY_COLUMN: dict[str, tuple[str, ...]] = {
    "campus": ("campus_id",),
    "goal_tags": ("goals",),
    "goal_text": ("goals",),
    "desired_outcome_tags": ("desired_outcomes",),
    "desired_outcome_text": ("desired_outcomes",),
    "communication": ("working_style",),
    "meeting_format": ("working_style",),
    "cadence": ("working_style",),
    "consent_affinity_matching": ("consent",),
    "consent_share_email": ("consent",),
}

_WEEKDAYS = {
    "mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday", "sat": "saturday",
    "sun": "sunday",
}  # fmt: skip
_WINDOW = re.compile(r"^\s*([A-Za-z]+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}


class HeaderError(ValueError):
    """The header row cannot be imported at all (missing or unknown columns)."""


@dataclass(frozen=True, slots=True)
class RowError:
    row_number: int
    column: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """A valid row: the profile, its inventories (None = column absent), and the enrolment if a role was given."""

    row_number: int
    profile: ProfileFields
    needs: NeedsInventory | None
    offers: OfferInventory | None
    enrolment: EnrolmentFields | None


def check_header(header: list[str]) -> list[str]:
    columns = [column.strip().lower() for column in header]
    unknown = [c for c in columns if c not in ALL_COLUMNS]
    if unknown:
        listed = ", ".join(repr(c) for c in unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise HeaderError(f"unknown columns: {listed[:500]} (see the column reference)")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise HeaderError(f"missing required columns: {', '.join(missing)}")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise HeaderError(f"columns that appear more than once: {', '.join(twice)}")
    return columns


def check_header_text(record: str) -> None:
    """Refuse a header record holding NULs: what a UTF-16 file without a BOM looks like when read as UTF-8.

    Column names are ASCII, so each one's UTF-16 code units are its letter and a NUL byte, which is valid UTF-8;
    without this, the import would list NUL-ridden "unknown columns".
    """
    if "\x00" in record:
        raise HeaderError(
            "the header row holds NUL characters: the file looks like UTF-16 without a byte-order mark (BOM). "
            "Save it again as CSV UTF-8 (in Excel, File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)'; "
            "in LibreOffice, Text CSV with character set 'Unicode (UTF-8)') and upload it again"
        )


def separator_line(record: str) -> str | None:
    """The separator an Excel ``sep=`` first line names, or None when the record is not one.

    Excel honours such a line and shows the next one as row 1, so the header is the next record and the row
    numbers stay those Excel shows.
    """
    line = record.rstrip("\r\n")
    if line[:4].lower() != "sep=":
        return None
    named = line[4:]
    if named not in DELIMITERS:
        raise HeaderError(f"the first line {line[:20]!r} names a separator other than comma, semicolon or tab")
    return named


def detect_delimiter(header: str) -> str:
    """The separator that splits the header record into the most known column names (comma when none does).

    The header holds only column names, which contain none of the separators, so this needs no guess from the data.
    """
    best, best_known = ",", 0
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([header], delimiter=delimiter, strict=True), [])
        except csv.Error:
            continue
        known = sum(cell.strip().lower() in ALL_COLUMNS for cell in cells)
        if known > best_known:
            best, best_known = delimiter, known
    return best


def stored_columns(header: Iterable[str]) -> frozenset[str]:
    """The participants-table columns an import with this header writes."""
    stored: set[str] = set()
    for column in header:
        if column in PROFILE_COLUMNS or column in INVENTORY_COLUMNS:
            stored.update(STORED_BY_COLUMN.get(column, (column,)))
    return frozenset(stored)


class RecordTooLongError(ValueError):
    """A record grew beyond the limit: almost always a quote that is never closed.

    ``records`` are the whole records before it, from the lines given to the call that raised.
    """

    def __init__(self, message: str, records: list[str]) -> None:
        super().__init__(message)
        self.records = records


class RecordAssembler:
    """Joins physical lines into whole CSV records, keeping only the unfinished record between calls.

    A quoted field may contain newlines; in RFC 4180 CSV a record ends exactly where the number of quote
    characters seen so far is even (an escaped quote is doubled). Cutting the stream only there lets each batch
    be parsed by its own csv.reader without ever holding more than one batch of the upload in memory.
    """

    def __init__(self, max_record_chars: int = MAX_RECORD_CHARS) -> None:
        self._pending: list[str] = []
        self._pending_chars = 0
        self._quotes = 0
        self._max = max_record_chars

    def feed(self, lines: Iterable[str]) -> list[str]:
        records: list[str] = []
        for line in lines:
            if not self._pending and line.count('"') % 2 == 0:  # the usual case: a line is a whole record
                records.append(line)
                continue
            self._pending.append(line)
            self._pending_chars += len(line)
            self._quotes += line.count('"')
            if self._quotes % 2 == 0:
                records.append("".join(self._pending))
                self._pending.clear()
                self._pending_chars = 0
                self._quotes = 0
            elif self._pending_chars > self._max:
                raise RecordTooLongError(f"a record exceeds {self._max} characters (unclosed quote?)", records)
        return records

    def finish(self) -> list[str]:
        rest = ["".join(self._pending)] if self._pending else []
        self._pending.clear()
        return rest


def parse_records(
    first_row_number: int, records: list[str], delimiter: str = ","
) -> list[tuple[int, list[str] | RowError]]:
    """Parse whole records into cells, numbering them; a malformed record becomes a row error."""
    try:
        rows: list[list[str] | RowError] = list(csv.reader(records, delimiter=delimiter, strict=True))
    except csv.Error:
        rows = []
        for record in records:  # find the bad record(s) without losing the good ones
            try:
                rows.extend(csv.reader([record], delimiter=delimiter, strict=True))
            except csv.Error as error:
                rows.append(RowError(0, None, f"malformed CSV: {error}"))
    numbered: list[tuple[int, list[str] | RowError]] = []
    for offset, row in enumerate(rows):
        number = first_row_number + offset
        numbered.append((number, RowError(number, row.column, row.message) if isinstance(row, RowError) else row))
    return numbered


def _split(cell: str) -> list[str]:
    if not cell:  # most optional list cells are empty
        return []
    return [item for item in map(str.strip, cell.split(";")) if item]


def _flag(cell: str, column: str) -> bool:
    value = cell.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _CellError(column, f"expected true or false, got {cell!r}")


class _CellError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _availability(cell: str) -> list[dict[str, str]]:
    windows = []
    for item in _split(cell):
        match = _WINDOW.match(item)
        weekday = _WEEKDAYS.get(match.group(1)[:3].lower()) if match else None
        if match is None or weekday is None:
            raise _CellError("availability", f"expected e.g. 'mon 09:00-12:00', got {item!r}")
        windows.append({"weekday": weekday, "start": match.group(2).zfill(5), "end": match.group(3).zfill(5)})
    return windows


def _needs(cell: str) -> list[dict[str, str]]:
    ratings = []
    for item in _split(cell):
        key, sep, level = item.partition(":")
        if not sep:
            raise _CellError("needs", f"expected function_key:level, got {item!r}")
        ratings.append({"function_key": key.strip(), "level": level.strip().lower()})
    return ratings


# Which CSV column a pydantic error location points at.
_FIELD_COLUMN = {
    "campus_id": "campus",
    "goals.tags": "goal_tags",
    "goals.text": "goal_text",
    "desired_outcomes.tags": "desired_outcome_tags",
    "desired_outcomes.text": "desired_outcome_text",
    "working_style.communication": "communication",
    "working_style.meeting_format": "meeting_format",
    "working_style.cadence": "cadence",
    "consent.affinity_matching": "consent_affinity_matching",
    "consent.share_email_with_partner": "consent_share_email",
}


def _column_of(loc: tuple[int | str, ...]) -> str:
    names = [str(part) for part in loc if isinstance(part, str)]
    for depth in (2, 1):
        joined = ".".join(names[:depth])
        if joined in _FIELD_COLUMN:
            return _FIELD_COLUMN[joined]
    return names[0] if names else "?"


def _errors(row_number: int, error: ValidationError) -> list[RowError]:
    return [RowError(row_number, _column_of(e["loc"]), _message(e)) for e in error.errors(include_url=False)]


def _message(detail: ErrorDetails) -> str:
    """pydantic's message without the 'Value error, ' it puts before a validator's own words."""
    if detail["type"] == "value_error" and "error" in detail.get("ctx", {}):
        return str(detail["ctx"]["error"])
    return detail["msg"]


# Cells were checked for NUL above, and strict UTF-8 decoding never yields surrogates.
_CHECKED = {TEXT_CHECKED: True}


_STYLE_COLUMNS = ("communication", "meeting_format", "cadence")


class RowParser:
    """Validates the rows of one file: the header's column positions are looked up once, not in every row.

    Every cell is stripped once into a list; a column the header does not name reads as the empty string (the
    list's extra last element). Rows are validated with the models' validators directly: they are called
    100,000 times an import, and the per-call wrapper of ``model_validate`` adds nothing here.
    """

    def __init__(self, header: list[str], campus_ids: dict[str, UUID], now: datetime | None = None) -> None:
        self._header = header
        # One instant for the whole file: every row's tenure_start is judged against the same "today".
        self._now = now or datetime.now(UTC)
        self._width = len(header)
        self._campus_ids = campus_ids
        position = {column: index for index, column in enumerate(header)}
        absent = self._width  # the index of the "" appended to every row's stripped cells
        self._index = {column: position.get(column, absent) for column in ALL_COLUMNS}
        self._has_needs = "needs" in position
        self._has_offers = "offers" in position

    def parse(self, row_number: int, cells: list[str]) -> ParsedRow | list[RowError]:
        """Validate one CSV row into a profile, its inventories and its enrolment, or the row's errors."""
        header = self._header
        if len(cells) != self._width:
            return [RowError(row_number, None, f"expected {self._width} cells, found {len(cells)}")]
        if max(map(len, cells)) > MAX_CELL_LENGTH:
            return [
                RowError(row_number, c, f"cell longer than {MAX_CELL_LENGTH} characters")
                for c, v in zip(header, cells, strict=True)
                if len(v) > MAX_CELL_LENGTH
            ]
        if "\x00" in "".join(cells):
            return [
                RowError(row_number, c, "cell contains a NUL character")
                for c, v in zip(header, cells, strict=True)
                if "\x00" in v
            ]
        values = [cell.strip() for cell in cells]
        values.append("")
        at = self._index
        try:
            profile: dict[str, Any] = {
                "email": values[at["email"]],
                "display_name": values[at["display_name"]],
                "tenure_start": values[at["tenure_start"]],
                "time_zone": values[at["time_zone"]],
                "external_id": values[at["external_id"]] or None,
                "department": values[at["department"]] or None,
                "team": values[at["team"]] or None,
                "reporting_line_id": values[at["reporting_line_id"]] or None,
                "role_level": values[at["role_level"]] or 0,
                "languages": _split(values[at["languages"]]),
                "interests": _split(values[at["interests"]]),
                "skills": _split(values[at["skills"]]),
                "goals": {"tags": _split(values[at["goal_tags"]]), "text": values[at["goal_text"]]},
                "desired_outcomes": {
                    "tags": _split(values[at["desired_outcome_tags"]]),
                    "text": values[at["desired_outcome_text"]],
                },
                "affinity_attributes": _split(values[at["affinity_attributes"]]),
                "consent": {
                    "affinity_matching": _flag(values[at["consent_affinity_matching"]], "consent_affinity_matching"),
                    "share_email_with_partner": _flag(values[at["consent_share_email"]], "consent_share_email"),
                },
                "availability": _availability(values[at["availability"]]),
                "working_style": {column: value.lower() for column in _STYLE_COLUMNS if (value := values[at[column]])},
            }
            if campus := values[at["campus"]]:
                campus_id = self._campus_ids.get(campus.lower())
                if campus_id is None:
                    raise _CellError("campus", f"no campus named {campus!r} in this organisation")
                profile["campus_id"] = campus_id
            needs = {"needs": _needs(values[at["needs"]])} if self._has_needs else None
            offers = {"offers": _split(values[at["offers"]])} if self._has_offers else None
        except _CellError as error:
            return [RowError(row_number, error.column, str(error))]
        enrolment = self._enrolment(values) if values[at["role"]] else None

        errors: list[RowError] = []
        parsed: list[Any] = []
        for model, data in (
            (ProfileFields, profile),
            (NeedsInventory, needs),
            (OfferInventory, offers),
            (EnrolmentFields, enrolment),
        ):
            if data is None:
                parsed.append(None)
                continue
            try:
                parsed.append(model.__pydantic_validator__.validate_python(data, context=_CHECKED))
            except ValidationError as error:
                found = _errors(row_number, error)
                if model is EnrolmentFields:  # enrolment errors of the whole model (loc ()) belong to the capacity cell
                    found = [
                        RowError(e.row_number, e.column if e.column != "?" else "capacity", e.message) for e in found
                    ]
                errors.extend(found)
        # Every row sets tenure_start (a required column), so its rule applies whatever is stored.
        valid_profile = parsed[0] if parsed and isinstance(parsed[0], ProfileFields) else None
        if valid_profile is not None and (refusal := tenure_start_refusal(valid_profile.tenure_start, now=self._now)):
            errors.insert(0, RowError(row_number, "tenure_start", refusal))
        if errors:
            return errors
        profile_fields, needs_fields, offer_fields, enrolment_fields = parsed
        return ParsedRow(row_number, profile_fields, needs_fields, offer_fields, enrolment_fields)

    def _enrolment(self, values: list[str]) -> dict[str, Any]:
        at = self._index
        enrolment: dict[str, Any] = {"role": values[at["role"]].lower()}
        if capacity := values[at["capacity"]]:
            enrolment["capacity"] = capacity
        if status := values[at["status"]]:
            enrolment["status"] = status.lower()
        if cohort := values[at["cohort"]]:
            enrolment["cohort"] = cohort
        return enrolment


def parse_row(
    row_number: int, header: list[str], cells: list[str], campus_ids: dict[str, UUID], now: datetime | None = None
) -> ParsedRow | list[RowError]:
    """Validate one CSV row; `campus_ids` maps campus names (lower case) and id strings to campus ids.

    An import validates many rows against one header: it uses one `RowParser` for all of them.
    """
    return RowParser(header, campus_ids, now).parse(row_number, cells)
