"""Benchmark: a full feedback program report (all breakdowns) for 50k matches and 1M pulses, in memory.

Run with ``python -m benchmarks.feedback_reports``. Prints a markdown table and replaces only the
"## Feedback: program reports" section of docs/benchmarks.md. The target of issue 6 is ≤ 2 s per full report.

Compared against a pure-Python baseline doing the same two-stage work with loops and dicts (records into
finest cells, roll-up of every breakdown, sorted-list medians, sets for distinct people), which also checks
that both give the same figures.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import report
from benchmarks.report import load_note, machine
from services.feedback.domain.privacy import additive_groups, suppress_small_groups
from services.feedback.domain.reports import (
    ALL_BREAKDOWNS,
    DIMENSIONS,
    FIRST_MEETING_DAY_BINS,
    MENTEE,
    MENTOR,
    NOT_ENDED,
    ROLES,
    ReportColumns,
    build_report,
    day_number,
    distinct_people,
    finest_cell_totals,
    report_from_totals,
    report_to_csv,
)

SECTION_TITLE = "## Feedback: program reports"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
AS_OF = date(2026, 1, 15)


def generate(matches: int, pulses: int, seed: int = 2025) -> ReportColumns:
    rng = np.random.default_rng(seed)
    programs, campuses, cohorts = 5, 8, 6
    mentors, mentees = matches * 2 // 5, matches * 9 // 10
    person_campus = rng.integers(0, campuses, mentors + mentees)
    match_person = np.stack([rng.integers(0, mentors, matches), mentors + rng.integers(0, mentees, matches)], axis=1)
    cohort = rng.integers(0, cohorts, matches)
    first_term = day_number(date(2023, 9, 1))
    started = first_term + cohort * 182 + rng.integers(0, 60, matches)
    planned_end = started + 270
    leaves_early = rng.random(matches) < 0.25
    ended = np.where(leaves_early, started + rng.integers(10, 260, matches), NOT_ENDED)

    check_ins_per_match = rng.integers(4, 16, matches)
    check_in_match = np.repeat(np.arange(matches), check_ins_per_match)
    ordinal = np.arange(len(check_in_match)) - np.repeat(
        np.cumsum(check_ins_per_match) - check_ins_per_match, check_ins_per_match
    )
    meetings = matches * 4
    meeting_match = rng.integers(0, matches, meetings)
    surveys = matches
    survey_match = rng.integers(0, matches, surveys)
    pulse_match = rng.integers(0, matches, pulses)
    return ReportColumns(
        program_labels=tuple(f"program-{n}" for n in range(programs)),
        campus_labels=tuple(f"campus-{n}" for n in range(campuses)),
        cohort_labels=tuple(f"{2023 + (n + 1) // 2}-{'spring' if n % 2 else 'autumn'}" for n in range(cohorts)),
        match_program=rng.integers(0, programs, matches),
        match_cohort=cohort,
        match_campus=person_campus[match_person],
        match_person=match_person,
        match_started=started,
        match_planned_end=planned_end,
        match_ended=ended,
        check_in_match=check_in_match,
        check_in_due=started[check_in_match] + 14 * (ordinal + 1),
        check_in_completed=rng.random(len(check_in_match)) < 0.8,
        pulse_match=pulse_match,
        pulse_role=rng.integers(0, 2, pulses),
        pulse_usefulness=rng.integers(0, 6, pulses),  # 0: question left unanswered
        meeting_match=meeting_match,
        meeting_day=started[meeting_match] + rng.integers(0, 120, meetings),
        survey_match=survey_match,
        survey_role=rng.integers(0, 2, surveys),
        survey_before=rng.uniform(1, 5, surveys),
        survey_after=np.where(rng.random(surveys) < 0.3, np.nan, rng.uniform(1, 5, surveys)),
    )


# ---------------------------------------------------------------------------------------------------------------
# Pure-Python baseline over plain records (tuples)


def plain_records(columns: ReportColumns) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "matches": list(
            zip(
                columns.match_program.tolist(),
                columns.match_cohort.tolist(),
                columns.match_campus.tolist(),
                columns.match_person.tolist(),
                columns.match_started.tolist(),
                columns.match_planned_end.tolist(),
                columns.match_ended.tolist(),
                strict=True,
            )
        ),
        "check_ins": list(
            zip(
                columns.check_in_match.tolist(),
                columns.check_in_due.tolist(),
                columns.check_in_completed.tolist(),
                strict=True,
            )
        ),
        "pulses": list(
            zip(
                columns.pulse_match.tolist(),
                columns.pulse_role.tolist(),
                columns.pulse_usefulness.tolist(),
                strict=True,
            )
        ),
        "meetings": list(zip(columns.meeting_match.tolist(), columns.meeting_day.tolist(), strict=True)),
        "surveys": list(
            zip(
                columns.survey_match.tolist(),
                columns.survey_role.tolist(),
                columns.survey_before.tolist(),
                columns.survey_after.tolist(),
                strict=True,
            )
        ),
    }


ADDITIVE = (
    "participations",
    "should_be_active",
    "active",
    "ended_or_due",
    "reached_end",
    "due",
    "completed",
    "useful_sum",
    "useful_count",
    "survey_sum",
    "survey_count",
)


def naive_report(records: dict[str, list[tuple[Any, ...]]], columns: ReportColumns, min_size: int) -> dict[Any, Any]:
    today = day_number(AS_OF)
    labels = (columns.program_labels, columns.campus_labels, columns.cohort_labels, ROLES)
    matches = records["matches"]
    per_match_due = [0] * len(matches)
    per_match_completed = [0] * len(matches)
    for match, due, completed in records["check_ins"]:
        if due <= today:
            per_match_due[match] += 1
            per_match_completed[match] += completed
    first_meeting: dict[int, int] = {}
    for match, day in records["meetings"]:
        if day < first_meeting.get(match, NOT_ENDED):
            first_meeting[match] = day

    finest: dict[tuple[int, ...], dict[str, float]] = defaultdict(lambda: dict.fromkeys(ADDITIVE, 0.0))
    finest_days: dict[tuple[int, ...], list[int]] = defaultdict(list)
    cell_of: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    people: dict[tuple[str, ...], dict[tuple[int, ...], set[int]]] = {b: defaultdict(set) for b in ALL_BREAKDOWNS}
    for index, (program, cohort, campus, person, started, planned_end, ended_day) in enumerate(matches):
        is_ended = ended_day <= today
        planned_over = planned_end <= today
        should_run = started <= today and not planned_over
        ended_or_due = started <= today and (is_ended or planned_over)
        reached = ended_or_due and planned_over and (not is_ended or ended_day >= planned_end)
        cells = []
        for role in (MENTOR, MENTEE):
            cell = (program, campus[role], cohort, role)
            cells.append(cell)
            totals = finest[cell]
            totals["participations"] += 1
            totals["should_be_active"] += should_run
            totals["active"] += should_run and not is_ended
            totals["ended_or_due"] += ended_or_due
            totals["reached_end"] += reached
            totals["due"] += per_match_due[index]
            totals["completed"] += per_match_completed[index]
            if index in first_meeting:
                finest_days[cell].append(min(max(first_meeting[index] - started, 0), FIRST_MEETING_DAY_BINS - 1))
            for breakdown in ALL_BREAKDOWNS:
                key = tuple(cell[DIMENSIONS.index(d)] for d in breakdown)
                people[breakdown][key].add(person[role])
        cell_of.append((cells[0], cells[1]))
    for match, role, usefulness in records["pulses"]:
        if usefulness:
            totals = finest[cell_of[match][role]]
            totals["useful_sum"] += usefulness
            totals["useful_count"] += 1
    for match, role, before, after in records["surveys"]:
        if after == after:  # not nan
            totals = finest[cell_of[match][role]]
            totals["survey_sum"] += after - before
            totals["survey_count"] += 1

    sizes: dict[tuple[tuple[str, str], ...], int] = {}
    values: dict[tuple[tuple[str, str], ...], dict[str, float | None]] = {}
    for breakdown in ALL_BREAKDOWNS:
        positions = [DIMENSIONS.index(d) for d in breakdown]
        rolled: dict[tuple[int, ...], dict[str, float]] = defaultdict(lambda: dict.fromkeys(ADDITIVE, 0.0))
        rolled_days: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for finest_cell, totals in finest.items():
            key = tuple(finest_cell[p] for p in positions)
            target = rolled[key]
            for name in ADDITIVE:
                target[name] += totals[name]
            rolled_days[key].extend(finest_days[finest_cell])
        for key, totals in rolled.items():
            named = tuple((d, labels[DIMENSIONS.index(d)][code]) for d, code in zip(breakdown, key, strict=True))
            sizes[named] = len(people[breakdown][key])

            def ratio(numerator: str, denominator: str, totals: dict[str, float] = totals) -> float | None:
                return totals[numerator] / totals[denominator] if totals[denominator] else None

            days = rolled_days[key]
            values[named] = {
                "active_match_rate": ratio("active", "should_be_active"),
                "retention": ratio("reached_end", "ended_or_due"),
                "satisfaction": ratio("useful_sum", "useful_count"),
                "check_in_completion": ratio("completed", "due"),
                "median_days_to_first_meeting": float(statistics.median(days)) if days else None,
                "survey_change": ratio("survey_sum", "survey_count"),
            }
    hidden = suppress_small_groups(sizes, additive_groups(sizes, ALL_BREAKDOWNS), min_size)
    return {key: None if key in hidden else (sizes[key], values[key]) for key in sizes}


# ---------------------------------------------------------------------------------------------------------------


def best_of(runs: int, action: Any) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def check_same_figures(report: Any, naive: dict[Any, Any]) -> int:
    compared = 0
    for row in report.rows:
        expected = naive[row.key]
        if expected is None:
            assert row.suppressed is not None, row.key
            continue
        size, metrics = expected
        assert row.participants == size, row.key
        for name, value in metrics.items():
            got = row.metrics[name]
            assert (got is None) == (value is None), (row.key, name)
            assert got is None or abs(got - value) < 1e-9 * max(1.0, abs(value)), (row.key, name, got, value)
        compared += 1
    assert len(naive) == len(report.rows)
    return compared


def write_section(markdown: str) -> None:
    report.write_section(SECTION_TITLE.removeprefix("## "), markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=50_000)
    parser.add_argument("--pulses", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    columns = generate(args.matches, args.pulses)
    min_size = 5
    full_time, report = best_of(args.runs, lambda: build_report(columns, AS_OF, min_group_size=min_size))
    finest_time, finest = best_of(args.runs, lambda: finest_cell_totals(columns, AS_OF))
    people_time, people = best_of(args.runs, lambda: {b: distinct_people(columns, b) for b in ALL_BREAKDOWNS})
    rest_time, _ = best_of(
        args.runs, lambda: report_from_totals(columns, finest, people, AS_OF, min_group_size=min_size)
    )
    csv_time, _ = best_of(args.runs, lambda: report_to_csv(report))

    records = plain_records(columns)
    naive_time, naive = best_of(1, lambda: naive_report(records, columns, min_size))
    compared = check_same_figures(report, naive)
    hidden = sum(row.suppressed is not None for row in report.rows)

    target = "yes" if full_time <= 2.0 else "**no**"
    markdown = f"""
Pure domain functions (`services/feedback/domain/reports.py`), data generated in memory, no database.
{args.matches:,} matches ({2 * args.matches:,} participations), {len(columns.pulse_match):,} pulses,
{len(columns.check_in_match):,} check-ins, {len(columns.meeting_match):,} meetings,
{len(columns.survey_match):,} surveys;
5 programs × 8 campuses × 6 cohorts × 2 roles; all {len(ALL_BREAKDOWNS)} breakdowns (every subset of
program, campus, cohort, role) → {len(report.rows):,} cells, {hidden:,} suppressed (minimum group size {min_size}).
Best of {args.runs} runs (the baseline: 1 run). The baseline is the same two-stage algorithm in pure-Python loops over
plain tuples; both gave the same figures on all {compared:,} visible cells.

| step | time (s) |
|---|---:|
| full report, vectorised (`build_report`) | {full_time:.3f} |
| · finest-cell totals (`finest_cell_totals`) | {finest_time:.3f} |
| · distinct people, all breakdowns (`distinct_people`) | {people_time:.3f} |
| · roll-up, metrics, suppression, rows (`report_from_totals`) | {rest_time:.3f} |
| CSV export (`report_to_csv`) | {csv_time:.3f} |
| full report, pure-Python baseline | {naive_time:.3f} |
| **speed-up (baseline / vectorised)** | **{naive_time / full_time:.1f}×** |

Target ≤ 2 s for a full report: {target}.
Machine: {machine()} ({load_note()});
Python {platform.python_version()}, numpy {np.__version__}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.
Run: `python -m benchmarks.feedback_reports`. The service-level benchmark (aggregation in SQL) comes later.
"""
    print(markdown)
    if not args.no_write:
        write_section(markdown)
        print(f"updated {DOC_PATH}")


if __name__ == "__main__":
    main()
