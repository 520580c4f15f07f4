"""CSV import rows: records across lines, parsing into profiles, errors by row and column."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.profiles.domain.csv_import import (
    HeaderError,
    ParsedRow,
    RecordAssembler,
    RecordTooLongError,
    check_header,
    check_header_text,
    detect_delimiter,
    parse_records,
    parse_row,
    separator_line,
    stored_columns,
)

# 20:00 UTC on 1 March 2026: already 2 March east of UTC, so a start up to 2027-03-03 is within a year.
EVENING = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
HEADER = check_header(
    ["email", "display_name", "tenure_start", "time_zone", "availability", "needs", "role", "capacity", "campus"]
)


def row(**cells: str) -> list[str]:
    base = {"email": "a@example.org", "display_name": "A", "tenure_start": "2020-01-01", "time_zone": "UTC",
            "availability": "", "needs": "", "role": "", "capacity": "", "campus": ""}  # fmt: skip
    return list((base | cells).values())


def test_a_quoted_newline_does_not_end_a_record() -> None:
    assembler = RecordAssembler()
    records = assembler.feed(['a,"first\n', 'second",b\n', "c,d\n"])
    assert records == ['a,"first\nsecond",b\n', "c,d\n"]
    assert parse_records(2, records) == [(2, ["a", "first\nsecond", "b"]), (3, ["c", "d"])]


def test_an_unclosed_quote_is_refused_before_it_eats_the_file() -> None:
    assembler = RecordAssembler(max_record_chars=100)
    with pytest.raises(RecordTooLongError):
        assembler.feed(['a,"never closed\n'] + ["more text\n"] * 20)


def test_an_unclosed_quote_hands_back_the_whole_records_before_it() -> None:
    assembler = RecordAssembler(max_record_chars=100)
    with pytest.raises(RecordTooLongError) as raised:
        assembler.feed(["a,b\n", 'c,"d\ne",f\n', 'g,"never closed\n'] + ["more text\n"] * 20)
    assert raised.value.records == ["a,b\n", 'c,"d\ne",f\n']


@pytest.mark.parametrize(("line", "delimiter"), [("sep=;\r\n", ";"), ("SEP=,\n", ","), ("sep=\t\r", "\t")])
def test_an_excel_sep_line_names_the_separator(line: str, delimiter: str) -> None:
    assert separator_line(line) == delimiter


def test_a_header_is_not_a_sep_line_and_a_sep_line_naming_another_separator_is_refused() -> None:
    assert separator_line("email;display_name;sep=\n") is None
    with pytest.raises(HeaderError, match="names a separator other than comma, semicolon or tab"):
        separator_line("sep=|\n")


def test_a_header_holding_nuls_is_refused_as_utf16_without_a_bom() -> None:
    header = "email,display_name,tenure_start,time_zone\r\n".encode("utf-16-le").decode()
    with pytest.raises(HeaderError, match="looks like UTF-16 without a byte-order mark") as raised:
        check_header_text(header)
    assert "\x00" not in str(raised.value)
    check_header_text("email,display_name,tenure_start,time_zone\r\n")  # a UTF-8 header passes


def test_a_malformed_record_is_a_row_error_and_its_neighbours_survive() -> None:
    parsed = parse_records(2, ["a,b\n", 'x,"y"z\n', "c,d\n"])
    assert parsed[0] == (2, ["a", "b"])
    assert parsed[2] == (4, ["c", "d"])
    error = parsed[1][1]
    assert not isinstance(error, list)
    assert error.row_number == 3


def test_unknown_and_missing_columns_are_refused() -> None:
    with pytest.raises(HeaderError, match=r"unknown columns: 'shoe_size'"):
        check_header(["email", "display_name", "tenure_start", "time_zone", "shoe_size"])
    with pytest.raises(HeaderError, match="missing required columns: time_zone"):
        check_header(["email", "display_name", "tenure_start"])


def test_a_column_named_twice_is_refused_by_name() -> None:
    with pytest.raises(HeaderError, match=r"columns that appear more than once: email$"):
        check_header(["email", "display_name", "tenure_start", "time_zone", "Email"])


def test_an_update_writes_only_the_columns_the_header_names() -> None:
    assert stored_columns(["email", "display_name", "goal_text", "communication"]) == {
        "email", "display_name", "goals", "working_style"
    }  # fmt: skip


def test_a_valid_row_becomes_a_profile_with_windows_needs_and_enrolment() -> None:
    campus = uuid.uuid4()
    parsed = parse_row(
        2, HEADER,
        row(availability="mon 9:00-11:00; Wednesday 14:00-15:30", needs="job_search:critical", role="mentor",
            capacity="3", campus="North"),
        {"north": campus},
    )  # fmt: skip
    assert isinstance(parsed, ParsedRow)
    assert [w.weekday.value for w in parsed.profile.availability] == ["monday", "wednesday"]
    assert parsed.needs is not None
    assert parsed.needs.needs[0].level.value == "critical"
    assert parsed.enrolment is not None
    assert parsed.enrolment.capacity == 3
    assert parsed.profile.campus_id == campus


@pytest.mark.parametrize(
    ("cells", "column"),
    [
        ({"email": "nope"}, "email"),
        ({"time_zone": "Atlantis/Capital"}, "time_zone"),
        ({"tenure_start": "2020-02-30"}, "tenure_start"),
        ({"tenure_start": "3020-01-01"}, "tenure_start"),
        ({"tenure_start": "1899-12-31"}, "tenure_start"),
        ({"availability": "mon 11:00-09:00"}, "availability"),
        ({"availability": "someday 09:00-10:00"}, "availability"),
        ({"needs": "job_search"}, "needs"),
        ({"needs": "job_search:urgent"}, "needs"),
        ({"role": "mentee", "capacity": "2"}, "capacity"),
        ({"campus": "Moon base"}, "campus"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"display_name": "nul\x00byte"}, "display_name"),
    ],
)
def test_an_invalid_cell_is_reported_with_its_row_and_column(cells: dict[str, str], column: str) -> None:
    errors = parse_row(7, HEADER, row(**cells), {})
    assert isinstance(errors, list)
    assert (errors[0].row_number, errors[0].column) == (7, column)


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ({"email": "nope"}, "an email address has the form local-part@domain"),
        ({"time_zone": "Mars/Olympus"}, "unknown IANA time zone 'Mars/Olympus'"),
        ({"role": "mentee", "capacity": "2"}, "a mentee-only enrolment has capacity 0"),
        (
            {"tenure_start": "2027-03-04"},
            "tenure_start must not be more than a year ahead: 2027-03-04 is after 2027-03-03",
        ),
        ({"tenure_start": "1899-12-31"}, "tenure_start must not be before 1900-01-01"),
    ],
)
def test_a_validators_message_reaches_the_report_in_its_own_words(cells: dict[str, str], message: str) -> None:
    errors = parse_row(7, HEADER, row(**cells), {}, now=EVENING)
    assert isinstance(errors, list)
    assert errors[0].message == message  # not "Value error, …"


def test_an_upcoming_starter_up_to_a_year_ahead_is_a_valid_row() -> None:
    parsed = parse_row(7, HEADER, row(tenure_start="2027-03-03"), {}, now=EVENING)
    assert isinstance(parsed, ParsedRow), parsed
    assert parsed.profile.tenure_start == date(2027, 3, 3)


def test_a_row_with_too_few_cells_is_an_error() -> None:
    errors = parse_row(3, HEADER, ["a@example.org"], {})
    assert isinstance(errors, list)
    assert "expected 9 cells" in errors[0].message


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("email,display_name,tenure_start,time_zone\r\n", ","),
        ("email;display_name;tenure_start;time_zone\r\n", ";"),
        ("email\tdisplay_name\ttenure_start\ttime_zone\n", "\t"),
        ('"Email";"Display_Name";tenure_start;time_zone\n', ";"),
        # One misspelt column: the separator still splits the rest into known names, so the error names it.
        ("email;display_nam;tenure_start;time_zone\n", ";"),
        ("nothing;known\n", ","),
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_header_into_known_columns(header: str, delimiter: str) -> None:
    assert detect_delimiter(header) == delimiter


def test_a_semicolon_file_quotes_its_list_cells_and_they_stay_lists() -> None:
    [(_, cells)] = parse_records(2, ['a@example.org;A;2020-01-01;UTC;"mon 09:00-10:00;tue 10:00-11:00";;;;\n'], ";")
    assert isinstance(cells, list)
    parsed = parse_row(2, HEADER, cells, {}, now=EVENING)
    assert isinstance(parsed, ParsedRow)
    assert [w.weekday for w in parsed.profile.availability] == ["monday", "tuesday"]
