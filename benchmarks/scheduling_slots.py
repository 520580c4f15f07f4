"""Scheduling benchmark: slot-suggestion latency across time zones and check-in plan throughput.

Measures the pure domain functions of ``services/scheduling/domain`` (no database): ``suggest_slots`` for
random pairs of people in random IANA zones over a four-week horizon, against a naive minute-by-minute
baseline measured in the same run (which must give the same slots), ``weekly_overlap_hours`` and
``plan_checkins``. Writes the "## Scheduling: slot suggestions" section of docs/benchmarks.md and leaves the
other sections alone. The target of issue 5 is ≤ 20 ms per pair for slot suggestions.

Run: ``python -m benchmarks.scheduling_slots`` (``--no-write`` to print only).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import report
from services.scheduling.domain.plan import ProgramRhythm, plan_checkins
from services.scheduling.domain.slots import (
    Availability,
    Slot,
    SlotPreference,
    WeeklyWindow,
    suggest_slots,
    weekly_overlap_hours,
)

T = TypeVar("T")

SECTION_TITLE = "## Scheduling: slot suggestions"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_MS = 20.0
HORIZON = timedelta(weeks=4)
DURATION = timedelta(hours=1)
STEP = timedelta(minutes=30)
LIMIT = 5

ZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo",
    "America/Santiago", "America/St_Johns", "Pacific/Honolulu", "Europe/London", "Europe/Berlin",
    "Europe/Helsinki", "Africa/Lagos", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Kathmandu",
    "Asia/Shanghai", "Asia/Tokyo", "Australia/Adelaide", "Australia/Sydney", "Pacific/Auckland",
    "Pacific/Chatham", "Pacific/Kiritimati", "UTC",
]  # fmt: skip


def random_window(rng: random.Random, weekday: int) -> WeeklyWindow:
    # Edges between 06:00 and 01:00 next day, in quarter hours: clear of the hours clocks change in, so the
    # naive wall-clock baseline and the domain agree exactly (they differ by design only inside those hours).
    start_quarter = rng.randrange(6 * 4, 23 * 4)
    length_quarters = rng.randrange(4, min(8 * 4, 25 * 4 - start_quarter) + 1)
    end_quarter = (start_quarter + length_quarters) % (24 * 4)
    return WeeklyWindow(
        weekday, time(start_quarter // 4, start_quarter % 4 * 15), time(end_quarter // 4, end_quarter % 4 * 15)
    )


def random_person(rng: random.Random) -> Availability:
    days = rng.sample(range(7), rng.randint(2, 7))
    windows = [random_window(rng, day) for day in days for _ in range(rng.choice((1, 1, 2)))]
    return Availability(rng.choice(ZONES), tuple(windows))


def random_pairs(count: int, seed: int) -> list[tuple[Availability, Availability, datetime]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        # Horizons start anywhere in 2026, so many of them cross a DST switch in one hemisphere or the other.
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=30 * rng.randrange(0, 2 * 24 * 330))
        pairs.append((random_person(rng), random_person(rng), start))
    return pairs


# Naive baseline: every minute of the horizon, look at both wall clocks and check every window.


def wall_clock_available(person: Availability, minute: datetime) -> bool:
    local = minute.astimezone(person.zone)
    now, today, yesterday = local.time(), local.weekday(), (local.weekday() - 1) % 7
    for window in person.windows:
        if window.weekday == today and window.start <= now and (window.crosses_midnight or now < window.end):
            return True
        if window.crosses_midnight and window.weekday == yesterday and now < window.end:
            return True
    return False


def naive_earliest_slots(first: Availability, second: Availability, start: datetime, end: datetime) -> list[Slot]:
    """Walk the horizon minute by minute, stopping as soon as ``LIMIT`` slots are found (as the domain may)."""
    step_minutes = int(STEP.total_seconds() // 60)
    duration_minutes = int(DURATION.total_seconds() // 60)
    epoch_minute = int(start.timestamp() // 60)  # the slot grid counts from the epoch, as the domain's does
    slots: list[Slot] = []
    candidate: int | None = None  # index of the aligned minute a slot being built starts at
    for index in range((end - start) // timedelta(minutes=1)):
        minute = start + timedelta(minutes=index)
        if not (wall_clock_available(first, minute) and wall_clock_available(second, minute)):
            candidate = None
            continue
        if candidate is None and (epoch_minute + index) % step_minutes == 0:
            candidate = index
        if candidate is not None and index - candidate + 1 == duration_minutes:
            begins = start + timedelta(minutes=candidate)
            slots.append(Slot(begins, begins + DURATION))
            candidate = None
            if len(slots) == LIMIT:
                break
    return slots


def timed_ms(action: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    started = clock.perf_counter_ns()
    result = action(*args, **kwargs)
    return (clock.perf_counter_ns() - started) / 1e6, result


def write_section(markdown: str) -> None:
    report.write_section(SECTION_TITLE.removeprefix("## "), markdown)


def latency_row(name: str, timings: list[float]) -> str:
    cells = [report.percentile(timings, share) for share in (0.5, 0.95, 0.99)] + [max(timings)]
    return f"| {name} | " + " | ".join(f"{value:.3f}" for value in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--baseline-pairs", type=int, default=50, help="pairs also run through the naive baseline")
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    pairs = random_pairs(args.pairs, args.seed)
    for first, second, start in pairs[:20]:  # warm caches (zoneinfo, imports) before timing
        suggest_slots(first, second, start=start, end=start + HORIZON, duration=DURATION)

    timings: dict[SlotPreference, list[float]] = {preference: [] for preference in SlotPreference}
    earliest_results: list[list[Slot]] = []
    for first, second, start in pairs:
        for preference in SlotPreference:
            elapsed, result = timed_ms(
                suggest_slots,
                first,
                second,
                start=start,
                end=start + HORIZON,
                duration=DURATION,
                limit=LIMIT,
                preference=preference,
                step=STEP,
            )
            timings[preference].append(elapsed)
            if preference is SlotPreference.EARLIEST:
                earliest_results.append(result)
    pairs_with_slots = sum(bool(result) for result in earliest_results)

    overlap_timings = [
        timed_ms(weekly_overlap_hours, first, second, week_starting=start.date())[0] for first, second, start in pairs
    ]

    baseline_pairs = pairs[: args.baseline_pairs]
    naive_timings, fast_timings, agreeing = [], [], 0
    for index, (first, second, start) in enumerate(baseline_pairs):
        elapsed, naive = timed_ms(naive_earliest_slots, first, second, start, start + HORIZON)
        naive_timings.append(elapsed)
        fast_timings.append(timings[SlotPreference.EARLIEST][index])
        agreeing += naive == earliest_results[index]
    speed_up = statistics.mean(naive_timings) / statistics.mean(fast_timings)

    programs = [
        ProgramRhythm(cadence_days=7, duration_days=84, first_meeting_within_days=7),
        ProgramRhythm(cadence_days=14, duration_days=365, first_meeting_within_days=14),
        ProgramRhythm(cadence_days=30, duration_days=180, first_meeting_within_days=10),
    ]
    match_start = datetime(2026, 9, 1, 8, tzinfo=UTC)
    started = clock.perf_counter()
    checkin_count = sum(
        len(plan_checkins(f"match-{index}", match_start, programs[index % len(programs)]))
        for index in range(args.plans)
    )
    plan_seconds = clock.perf_counter() - started

    p99 = report.percentile(timings[SlotPreference.BALANCED] + timings[SlotPreference.EARLIEST], 0.99)
    verdict = "yes" if p99 <= TARGET_MS else "**no**"
    markdown = f"""
Pure domain functions (`services/scheduling/domain/slots.py`, `plan.py`), no database.
{args.pairs:,} random pairs (seed {args.seed}) of people in {len(ZONES)} IANA zones (Sydney, New York, Kathmandu
UTC+5:45, Chatham UTC+12:45, Kiritimati UTC+14, Honolulu UTC−10, …), each with 2–14 weekly windows of 1–8 h
(some across midnight); horizons of 4 weeks starting at random in 2026, so many cross a DST switch.
Request: 1-hour slots on a 30-minute grid, up to {LIMIT}; {pairs_with_slots:,} of the pairs had at least one.
Each call timed on its own (ms):

| measure | p50 | p95 | p99 | max |
|---|---:|---:|---:|---:|
{latency_row("`suggest_slots`, earliest", timings[SlotPreference.EARLIEST])}
{latency_row("`suggest_slots`, balanced local hours", timings[SlotPreference.BALANCED])}
{latency_row("`weekly_overlap_hours` (one week)", overlap_timings)}
{latency_row(f"naive minute-by-minute baseline, earliest ({len(baseline_pairs)} pairs)", naive_timings)}

The baseline checks both wall clocks minute by minute through the horizon's 40,320 minutes (stopping at
the {LIMIT}th slot); it gave the same slots as `suggest_slots` on {agreeing} of {len(baseline_pairs)} pairs.
**Speed-up (baseline / interval arithmetic, mean over the same pairs): {speed_up:,.0f}×.**

Check-in plans (`plan_checkins`, a mix of weekly 12-week, biweekly year-long and monthly half-year programs):
{args.plans:,} plans with {checkin_count:,} check-ins in {plan_seconds:.2f} s =
{args.plans / plan_seconds:,.0f} plans/s, {checkin_count / plan_seconds:,.0f} check-ins/s.

Target ≤ {TARGET_MS:.0f} ms per pair for slot suggestions (p99 over both preferences: {p99:.2f} ms): {verdict}.
Machine: {report.machine()} ({report.load_note()});
Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.
Run: `python -m benchmarks.scheduling_slots`.
"""
    print(markdown)
    if agreeing != len(baseline_pairs):
        print(f"baseline disagreed on {len(baseline_pairs) - agreeing} pairs", file=sys.stderr)
        sys.exit(1)
    if not args.no_write:
        write_section(markdown)
        print(f"wrote the {SECTION_TITLE!r} section of {DOC_PATH}")


if __name__ == "__main__":
    main()
