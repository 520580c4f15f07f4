"""Program report metrics: pure, vectorised (numpy) functions over plain records.

The unit of a report is a *participation*: one person's place in one match (each match has a mentor's and a
mentee's). Campus and role are properties of the person, program and cohort (start term) of the match, so every
breakdown partitions participations. Match-level figures (active, retention, first meeting, check-ins) count once
per participation, which leaves rates and medians unchanged and makes every figure additive across cells.

Pipeline, each stage a pure function so the service can swap the first one for SQL:

1. :func:`finest_cell_totals`: additive counts, sums and a day histogram per finest cell
   (program × campus × cohort × role) — in SQL a ``GROUP BY`` of the same four columns;
   :func:`distinct_people` — in SQL ``COUNT(DISTINCT person) ... GROUP BY GROUPING SETS``.
2. :func:`roll_up`: the totals of any coarser breakdown are sums over the finest cells.
3. :func:`metrics_from_totals`: rates, means and the median from the totals.
4. :func:`build_report`: cells of every breakdown, small-group suppression (privacy module), rows.

Metric definitions (``as_of`` is the report date):
- active-match rate: among matches started by ``as_of`` whose planned end is after ``as_of`` (they should be
  running), the share not ended.
- retention: among matches that ended or should have ended by ``as_of``, the share that reached the planned end
  (not ended, or ended on or after the planned end day).
- satisfaction: mean pulse usefulness (1–5) of the participation's own pulses.
- check-in completion: completed / due check-ins, counting check-ins due by ``as_of``.
- median days to first meeting: days from match start to its first held meeting, over matches that had one.
- survey change: mean (after − before) over surveys answered both times.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Final

import numpy as np
from numpy.typing import NDArray

from services.feedback.domain.privacy import (
    DEFAULT_MIN_GROUP_SIZE,
    Breakdown,
    CellKey,
    SuppressionReason,
    additive_groups,
    suppress_small_groups,
)

DIMENSIONS: Final[Breakdown] = ("program", "campus", "cohort", "role")
ROLES: Final[tuple[str, str]] = ("mentor", "mentee")
MENTOR, MENTEE = 0, 1
# Every subset of the dimensions, coarse to fine; () is the grand total.
ALL_BREAKDOWNS: Final[tuple[Breakdown, ...]] = tuple(
    combo for size in range(len(DIMENSIONS) + 1) for combo in itertools.combinations(DIMENSIONS, size)
)
FIRST_MEETING_DAY_BINS: Final = 366  # day 365 collects "a year or more"; the median is exact below that
NOT_ENDED: Final = np.iinfo(np.int64).max
EPOCH: Final = date(1970, 1, 1)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

METRICS: Final[tuple[str, ...]] = (
    "active_match_rate",
    "retention",
    "satisfaction",
    "check_in_completion",
    "median_days_to_first_meeting",
    "survey_change",
)

# ---------------------------------------------------------------------------------------------------------------
# Plain records (what the service's projection holds) and their columnar form


@dataclass(frozen=True)
class MatchRecord:
    match_id: str
    program: str
    cohort: str  # e.g. the start term, "2025-autumn"
    mentor_id: str
    mentee_id: str
    mentor_campus: str
    mentee_campus: str
    started_on: date
    planned_end_on: date
    ended_on: date | None = None


@dataclass(frozen=True)
class CheckInRecord:
    match_id: str
    due_on: date
    completed: bool


@dataclass(frozen=True)
class PulseRecord:
    match_id: str
    respondent_id: str
    usefulness: int | None


@dataclass(frozen=True)
class MeetingRecord:
    match_id: str
    held_on: date


@dataclass(frozen=True)
class SurveyRecord:
    match_id: str
    respondent_id: str
    before: float
    after: float | None = None


@dataclass(frozen=True)
class ReportColumns:
    """Records as aligned numpy columns; ``*_match`` columns are positions in the match columns.

    Days are integer days since 1970-01-01; label columns are codes into the ``*_labels`` tuples.
    """

    program_labels: tuple[str, ...]
    campus_labels: tuple[str, ...]
    cohort_labels: tuple[str, ...]
    match_program: IntArray
    match_cohort: IntArray
    match_campus: IntArray  # shape (matches, 2): mentor's, mentee's campus
    match_person: IntArray  # shape (matches, 2): mentor's, mentee's person code
    match_started: IntArray
    match_planned_end: IntArray
    match_ended: IntArray  # NOT_ENDED when still running
    check_in_match: IntArray
    check_in_due: IntArray
    check_in_completed: BoolArray
    pulse_match: IntArray
    pulse_role: IntArray  # MENTOR or MENTEE
    pulse_usefulness: IntArray  # 0 when the question was not answered
    meeting_match: IntArray
    meeting_day: IntArray
    survey_match: IntArray
    survey_role: IntArray
    survey_before: FloatArray
    survey_after: FloatArray  # nan when not answered yet

    @property
    def match_count(self) -> int:
        return len(self.match_program)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.program_labels), len(self.campus_labels), len(self.cohort_labels), len(ROLES))


def day_number(day: date) -> int:
    return (day - EPOCH).days


def _codes(values: Sequence[str]) -> tuple[tuple[str, ...], IntArray]:
    labels, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return tuple(str(label) for label in labels), codes.astype(np.int64).reshape(-1)


def columns_from_records(
    matches: Sequence[MatchRecord],
    check_ins: Sequence[CheckInRecord] = (),
    pulses: Sequence[PulseRecord] = (),
    meetings: Sequence[MeetingRecord] = (),
    surveys: Sequence[SurveyRecord] = (),
) -> ReportColumns:
    """Columnar form of plain records. Records naming an unknown match, or a respondent who is not a party of
    the match, raise ValueError: they would otherwise be silently counted in the wrong cell."""
    position = {match.match_id: index for index, match in enumerate(matches)}
    if len(position) != len(matches):
        raise ValueError("duplicate match ids")

    def match_of(match_id: str) -> int:
        try:
            return position[match_id]
        except KeyError:
            raise ValueError(f"unknown match {match_id!r}") from None

    def role_of(match_id: str, respondent_id: str) -> int:
        match = matches[match_of(match_id)]
        if respondent_id == match.mentor_id:
            return MENTOR
        if respondent_id == match.mentee_id:
            return MENTEE
        raise ValueError(f"{respondent_id!r} is not a party of match {match_id!r}")

    program_labels, match_program = _codes([m.program for m in matches])
    cohort_labels, match_cohort = _codes([m.cohort for m in matches])
    campus_labels, campus_codes = _codes([c for m in matches for c in (m.mentor_campus, m.mentee_campus)])
    _, person_codes = _codes([p for m in matches for p in (m.mentor_id, m.mentee_id)])

    def ints(values: Sequence[int]) -> IntArray:
        return np.asarray(values, dtype=np.int64).reshape(-1)

    return ReportColumns(
        program_labels=program_labels,
        campus_labels=campus_labels,
        cohort_labels=cohort_labels,
        match_program=match_program,
        match_cohort=match_cohort,
        match_campus=campus_codes.reshape(-1, 2),
        match_person=person_codes.reshape(-1, 2),
        match_started=ints([day_number(m.started_on) for m in matches]),
        match_planned_end=ints([day_number(m.planned_end_on) for m in matches]),
        match_ended=ints([NOT_ENDED if m.ended_on is None else day_number(m.ended_on) for m in matches]),
        check_in_match=ints([match_of(c.match_id) for c in check_ins]),
        check_in_due=ints([day_number(c.due_on) for c in check_ins]),
        check_in_completed=np.asarray([c.completed for c in check_ins], dtype=np.bool_).reshape(-1),
        pulse_match=ints([match_of(p.match_id) for p in pulses]),
        pulse_role=ints([role_of(p.match_id, p.respondent_id) for p in pulses]),
        pulse_usefulness=ints([p.usefulness or 0 for p in pulses]),
        meeting_match=ints([match_of(m.match_id) for m in meetings]),
        meeting_day=ints([day_number(m.held_on) for m in meetings]),
        survey_match=ints([match_of(s.match_id) for s in surveys]),
        survey_role=ints([role_of(s.match_id, s.respondent_id) for s in surveys]),
        survey_before=np.asarray([s.before for s in surveys], dtype=np.float64).reshape(-1),
        survey_after=np.asarray([np.nan if s.after is None else s.after for s in surveys], dtype=np.float64).reshape(
            -1
        ),
    )


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: additive totals per finest cell


@dataclass(frozen=True)
class CellTotals:
    """Additive figures per cell; every array has the breakdown's dimensions as leading axes."""

    participations: IntArray
    should_be_active: IntArray
    active: IntArray
    ended_or_due: IntArray
    reached_end: IntArray
    check_ins_due: IntArray
    check_ins_completed: IntArray
    usefulness_sum: IntArray
    usefulness_count: IntArray
    survey_change_sum: FloatArray
    survey_change_count: IntArray
    first_meeting_days: IntArray  # histogram: one more trailing axis of FIRST_MEETING_DAY_BINS


def _participation_cells(columns: ReportColumns) -> IntArray:
    """Flat finest-cell index of each participation (2 × match + role)."""
    programs = np.repeat(columns.match_program, 2)
    cohorts = np.repeat(columns.match_cohort, 2)
    campuses = columns.match_campus.reshape(-1)
    roles = np.tile(np.array([MENTOR, MENTEE], dtype=np.int64), columns.match_count)
    return np.ravel_multi_index((programs, campuses, cohorts, roles), columns.shape).astype(np.int64)


def finest_cell_totals(columns: ReportColumns, as_of: date) -> CellTotals:
    today = day_number(as_of)
    cells = _participation_cells(columns)
    cell_count = int(np.prod(columns.shape))

    def per_cell(flags: FloatArray, participation_cells: IntArray = cells) -> IntArray:
        counted = np.bincount(participation_cells, weights=flags, minlength=cell_count)
        return np.rint(counted).astype(np.int64).reshape(columns.shape)

    def per_match(flags: BoolArray) -> IntArray:
        return per_cell(np.repeat(flags, 2).astype(np.float64))

    started = columns.match_started <= today
    planned_over = columns.match_planned_end <= today
    ended = columns.match_ended <= today
    should_be_active = started & ~planned_over
    ended_or_due = started & (ended | planned_over)
    reached_end = ended_or_due & planned_over & (~ended | (columns.match_ended >= columns.match_planned_end))

    due = columns.check_in_due <= today
    due_per_match = np.bincount(columns.check_in_match[due], minlength=columns.match_count)
    completed_per_match = np.bincount(
        columns.check_in_match[due & columns.check_in_completed], minlength=columns.match_count
    )

    pulse_cells = cells[2 * columns.pulse_match + columns.pulse_role]
    answered = columns.pulse_usefulness > 0

    answered_surveys = ~np.isnan(columns.survey_after)
    survey_cells = cells[2 * columns.survey_match[answered_surveys] + columns.survey_role[answered_surveys]]
    survey_change = columns.survey_after[answered_surveys] - columns.survey_before[answered_surveys]

    first_meeting = np.full(columns.match_count, NOT_ENDED, dtype=np.int64)
    np.minimum.at(first_meeting, columns.meeting_match, columns.meeting_day)
    had_meeting = first_meeting != NOT_ENDED
    days = np.clip(first_meeting - columns.match_started, 0, FIRST_MEETING_DAY_BINS - 1)
    participation_had_meeting = np.repeat(had_meeting, 2)
    histogram_index = (
        cells[participation_had_meeting] * FIRST_MEETING_DAY_BINS + np.repeat(days, 2)[participation_had_meeting]
    )
    histogram = np.bincount(histogram_index, minlength=cell_count * FIRST_MEETING_DAY_BINS).astype(np.int64)

    return CellTotals(
        participations=per_cell(np.ones(len(cells))),
        should_be_active=per_match(should_be_active),
        active=per_match(should_be_active & ~ended),
        ended_or_due=per_match(ended_or_due),
        reached_end=per_match(reached_end),
        check_ins_due=per_cell(np.repeat(due_per_match, 2).astype(np.float64)),
        check_ins_completed=per_cell(np.repeat(completed_per_match, 2).astype(np.float64)),
        usefulness_sum=per_cell(columns.pulse_usefulness.astype(np.float64), pulse_cells),
        usefulness_count=per_cell(answered.astype(np.float64), pulse_cells),
        survey_change_sum=np.bincount(survey_cells, weights=survey_change, minlength=cell_count)
        .astype(np.float64)
        .reshape(columns.shape),
        survey_change_count=per_cell(np.ones(len(survey_cells)), survey_cells),
        first_meeting_days=histogram.reshape((*columns.shape, FIRST_MEETING_DAY_BINS)),
    )


def distinct_people(columns: ReportColumns, breakdown: Breakdown) -> IntArray:
    """Distinct people per cell of a breakdown (not additive: one person may mentor in several cohorts)."""
    axes = _axes_of(breakdown)
    shape = tuple(columns.shape[axis] for axis in axes)
    coordinates = np.unravel_index(_participation_cells(columns), columns.shape)
    if axes:
        breakdown_cells = np.ravel_multi_index(tuple(coordinates[axis] for axis in axes), shape).astype(np.int64)
    else:
        breakdown_cells = np.zeros(len(coordinates[0]), dtype=np.int64)
    people = columns.match_person.reshape(-1)
    person_span = int(people.max()) + 1 if len(people) else 1
    # Sort and compare neighbours rather than np.unique: same result, several times faster here (numpy 2.x).
    pairs = np.sort(breakdown_cells * person_span + people)
    unique_pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
    return np.bincount(unique_pairs // person_span, minlength=int(np.prod(shape))).reshape(shape).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Stage 2 and 3: roll-up and metrics


def _axes_of(breakdown: Breakdown) -> tuple[int, ...]:
    axes = tuple(DIMENSIONS.index(dimension) for dimension in breakdown)
    if list(axes) != sorted(set(axes)):
        raise ValueError(f"breakdown {breakdown} must list distinct dimensions in the order {DIMENSIONS}")
    return axes


def roll_up(finest: CellTotals, breakdown: Breakdown) -> CellTotals:
    summed_axes = tuple(axis for axis in range(len(DIMENSIONS)) if axis not in _axes_of(breakdown))
    return CellTotals(**{item.name: getattr(finest, item.name).sum(axis=summed_axes) for item in fields(CellTotals)})


def _ratio(numerator: NDArray[np.generic], denominator: IntArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def median_from_histogram(histogram: IntArray) -> FloatArray:
    """Median per cell of integer values given as counts per value (last axis); nan for empty cells."""
    counts = histogram.sum(axis=-1)
    cumulative = np.cumsum(histogram, axis=-1)
    lower_rank = (counts - 1) // 2  # 0-based ranks of the two middle values (equal when the count is odd)
    upper_rank = counts // 2
    lower = (cumulative > lower_rank[..., None]).argmax(axis=-1)
    upper = (cumulative > upper_rank[..., None]).argmax(axis=-1)
    return np.where(counts > 0, (lower + upper) / 2.0, np.nan)


def metrics_from_totals(totals: CellTotals) -> dict[str, FloatArray]:
    return {
        "active_match_rate": _ratio(totals.active, totals.should_be_active),
        "retention": _ratio(totals.reached_end, totals.ended_or_due),
        "satisfaction": _ratio(totals.usefulness_sum, totals.usefulness_count),
        "check_in_completion": _ratio(totals.check_ins_completed, totals.check_ins_due),
        "median_days_to_first_meeting": median_from_histogram(totals.first_meeting_days),
        "survey_change": _ratio(totals.survey_change_sum, totals.survey_change_count),
    }


# ---------------------------------------------------------------------------------------------------------------
# Stage 4: the report


@dataclass(frozen=True)
class ReportRow:
    key: CellKey
    participants: int | None  # None when suppressed: even the size of a hidden group is hidden
    metrics: Mapping[str, float | None]
    suppressed: SuppressionReason | None

    @property
    def breakdown(self) -> Breakdown:
        return tuple(dimension for dimension, _ in self.key)


@dataclass(frozen=True)
class ProgramReport:
    as_of: date
    min_group_size: int
    rows: tuple[ReportRow, ...]

    def row(self, **dimensions: str) -> ReportRow:
        key = tuple((dimension, dimensions[dimension]) for dimension in DIMENSIONS if dimension in dimensions)
        return next(row for row in self.rows if row.key == key)


def build_report(
    columns: ReportColumns,
    as_of: date,
    *,
    breakdowns: Sequence[Breakdown] = ALL_BREAKDOWNS,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> ProgramReport:
    finest = finest_cell_totals(columns, as_of)
    people = {breakdown: distinct_people(columns, breakdown) for breakdown in breakdowns}
    return report_from_totals(columns, finest, people, as_of, breakdowns=breakdowns, min_group_size=min_group_size)


def report_from_totals(
    columns: ReportColumns,
    finest: CellTotals,
    people: Mapping[Breakdown, IntArray],
    as_of: date,
    *,
    breakdowns: Sequence[Breakdown] = ALL_BREAKDOWNS,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> ProgramReport:
    """Stages 2–4 over pre-aggregated totals (from :func:`finest_cell_totals` or from SQL)."""
    return report_from_labelled_totals(
        ReportLabels(columns.program_labels, columns.campus_labels, columns.cohort_labels),
        finest,
        people,
        as_of,
        breakdowns=breakdowns,
        min_group_size=min_group_size,
    )


@dataclass(frozen=True)
class ReportLabels:
    """The labels behind the codes of the program, campus and cohort axes (roles are always ``ROLES``)."""

    program_labels: tuple[str, ...]
    campus_labels: tuple[str, ...]
    cohort_labels: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.program_labels), len(self.campus_labels), len(self.cohort_labels), len(ROLES))


def report_from_labelled_totals(
    axis_labels: ReportLabels,
    finest: CellTotals,
    people: Mapping[Breakdown, IntArray],
    as_of: date,
    *,
    breakdowns: Sequence[Breakdown] = ALL_BREAKDOWNS,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> ProgramReport:
    """Stages 2–4 when stage 1 ran elsewhere (e.g. GROUP BY in PostgreSQL): only labels, no record columns."""
    labels = {
        "program": axis_labels.program_labels,
        "campus": axis_labels.campus_labels,
        "cohort": axis_labels.cohort_labels,
        "role": ROLES,
    }
    sizes: dict[CellKey, int] = {}
    values: dict[CellKey, dict[str, float | None]] = {}
    for breakdown in breakdowns:
        totals = roll_up(finest, breakdown)
        metrics = metrics_from_totals(totals)
        people_here = people[breakdown]
        if breakdown:
            cells = [tuple(int(i) for i in index) for index in zip(*np.nonzero(totals.participations > 0), strict=True)]
        else:
            cells = [()] if int(totals.participations) > 0 else []
        for cell in cells:
            key = tuple((dimension, labels[dimension][code]) for dimension, code in zip(breakdown, cell, strict=True))
            sizes[key] = int(people_here[cell])
            values[key] = {name: _plain(metric[cell]) for name, metric in metrics.items()}
    hidden = suppress_small_groups(sizes, additive_groups(sizes, breakdowns), min_group_size)
    rows = tuple(
        ReportRow(key=key, participants=size, metrics=values[key], suppressed=None)
        if key not in hidden
        else ReportRow(key=key, participants=None, metrics=dict.fromkeys(METRICS), suppressed=hidden[key])
        for key, size in sizes.items()
    )
    return ProgramReport(as_of=as_of, min_group_size=min_group_size, rows=rows)


def _plain(value: np.floating | float) -> float | None:
    number = float(value)
    return None if np.isnan(number) else number


# ---------------------------------------------------------------------------------------------------------------
# CSV export

CSV_COLUMNS: Final[tuple[str, ...]] = ("breakdown", *DIMENSIONS, "participants", *METRICS, "suppressed")
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(text: str) -> str:
    # Labels come from coordinators; a leading formula character would execute in a spreadsheet (CSV injection).
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def report_to_csv(report: ProgramReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        dimensions = dict(row.key)
        writer.writerow(
            [
                "+".join(row.breakdown) or "total",
                *(_safe_cell(dimensions.get(dimension, "")) for dimension in DIMENSIONS),
                "" if row.participants is None else row.participants,
                *("" if (value := row.metrics[name]) is None else round(value, 4) for name in METRICS),
                row.suppressed or "",
            ]
        )
    return buffer.getvalue()
