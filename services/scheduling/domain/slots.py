"""Meeting slots from the overlap of two people's weekly availability, each in their own IANA time zone.

Approach: interval arithmetic per local day. For each person and each local calendar day touching the
requested range, each weekly window of that weekday becomes one interval of real time (UTC seconds), so DST
is handled by the time-zone database one day at a time; the two people's merged interval lists are then
intersected with a linear two-pointer sweep, and slots are cut from the overlaps. A four-week horizon is a
few dozen intervals per person instead of 40,320 minutes.

What a window means on the days clocks change: a window is the continuous stretch of real time from the
first instant a person's wall clock reads its start to the first instant it reads its end.
* A time the clocks skip (spring forward, e.g. 02:30 in New York on the second Sunday of March) is reached
  at the jump itself: a 02:30–04:00 window opens at 03:00 EDT, a 01:00–02:30 window closes at 03:00 EDT.
* A time the clocks pass twice (fall back) means its first occurrence (as RFC 5545 reads local times), so a
  window never covers the repeated hour twice.
A window whose end is not after its start (e.g. Friday 22:00–02:00) runs past midnight into the next day;
start == end is a full 24 hours.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.scheduling.domain.errors import InvalidAvailabilityError, require_aware

#: Longest range one suggestion may scan; keeps an API caller from asking for years of slots.
MAX_HORIZON = timedelta(days=366)
#: The local hour both people are assumed to find most comfortable when balancing local hours.
COMFORT_CENTRE_SECONDS = 13 * 3600
_DAY = 86400

Interval = tuple[int, int]  # [start, end) in POSIX seconds (UTC)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A weekly availability window in the owner's local time. ``weekday`` follows ``date.weekday()`` (0 = Monday)."""

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise InvalidAvailabilityError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidAvailabilityError("window times are local wall-clock times and carry no tzinfo")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True, slots=True)
class Availability:
    """One person's weekly availability: windows read in ``time_zone`` (an IANA name such as ``Australia/Sydney``)."""

    time_zone: str
    windows: tuple[WeeklyWindow, ...]
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _by_weekday: tuple[tuple[WeeklyWindow, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidAvailabilityError(f"unknown time zone {self.time_zone!r}") from exc
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "windows", tuple(self.windows))
        by_weekday = tuple(tuple(w for w in self.windows if w.weekday == day) for day in range(7))
        object.__setattr__(self, "_by_weekday", by_weekday)

    def windows_on(self, weekday: int) -> tuple[WeeklyWindow, ...]:
        return self._by_weekday[weekday]


class SlotPreference(StrEnum):
    EARLIEST = "earliest"
    # Smallest worst-case distance of either person's local time from early afternoon, then earliest.
    BALANCED = "balanced"


@dataclass(frozen=True, slots=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


def _wall_clock_reaches(local: datetime, zone: ZoneInfo) -> int:
    """POSIX second at which the wall clock of ``zone`` first reads ``local`` (or jumps past it)."""
    first = local.replace(tzinfo=zone)  # fold=0: the first occurrence of a repeated time
    instant = int(first.timestamp())
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == local:
        return instant
    # ``local`` lies in a gap the clocks skip. fold=1 reads it with the offset after the jump, which lands
    # before the jump, fold=0 after it; bisect for the jump itself. zoneinfo does not expose transition
    # instants, and this runs only for window edges inside a gap (a few times a year at most).
    low = int(local.replace(tzinfo=zone, fold=1).timestamp())  # wall clock there reads before ``local``
    high = instant  # wall clock there reads after ``local``
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return high


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _availability_intervals(person: Availability, start: int, end: int) -> list[Interval]:
    """The person's availability as merged UTC intervals clipped to [start, end)."""
    zone = person.zone
    # One extra local day before: a window crossing midnight the day before can reach into the range.
    first_day = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp(end, zone).date()
    intervals: list[Interval] = []
    day = first_day
    while day <= last_day:
        for window in person.windows_on(day.weekday()):
            end_day = day + timedelta(days=1) if window.crosses_midnight else day
            opens = _wall_clock_reaches(datetime.combine(day, window.start), zone)
            closes = _wall_clock_reaches(datetime.combine(end_day, window.end), zone)
            opens, closes = max(opens, start), min(closes, end)
            if opens < closes:
                intervals.append((opens, closes))
        day += timedelta(days=1)
    return _merge(intervals)


def _intersect(first: Sequence[Interval], second: Sequence[Interval]) -> list[Interval]:
    overlaps: list[Interval] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            overlaps.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return overlaps


def _subtract(free: Sequence[Interval], busy: Sequence[Interval]) -> list[Interval]:
    """``free`` without the stretches ``busy`` covers (both sorted, ``busy`` merged)."""
    left: list[Interval] = []
    first = 0
    for start, end in free:
        while first < len(busy) and busy[first][1] <= start:
            first += 1
        at = first
        while at < len(busy) and busy[at][0] < end:
            if busy[at][0] > start:
                left.append((start, busy[at][0]))
            start = max(start, busy[at][1])
            at += 1
        if start < end:
            left.append((start, end))
    return left


def _range_seconds(start: datetime, end: datetime) -> tuple[int, int]:
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise InvalidAvailabilityError("the range must end after it starts")
    if end - start > MAX_HORIZON:
        raise InvalidAvailabilityError(f"the range may span at most {MAX_HORIZON.days} days")
    # Whole seconds: sub-second precision means nothing for meetings and would break integer arithmetic.
    return int(start.timestamp()), int(end.timestamp())


def overlap_intervals(
    first: Availability, second: Availability, *, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Stretches of real time within [start, end) when both people are available, as UTC datetimes."""
    low, high = _range_seconds(start, end)
    overlaps = _intersect(_availability_intervals(first, low, high), _availability_intervals(second, low, high))
    return [(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in overlaps]


def _local_discomfort(instant: int, zone: ZoneInfo) -> int:
    """Seconds between the local time of ``instant`` and the comfort centre, around the clock."""
    local = datetime.fromtimestamp(instant, zone)
    seconds_of_day = local.hour * 3600 + local.minute * 60 + local.second
    distance = abs(seconds_of_day - COMFORT_CENTRE_SECONDS)
    return min(distance, _DAY - distance)


def suggest_slots(
    first: Availability,
    second: Availability,
    *,
    start: datetime,
    end: datetime,
    duration: timedelta,
    limit: int = 5,
    preference: SlotPreference = SlotPreference.EARLIEST,
    step: timedelta = timedelta(minutes=30),
    busy: Iterable[tuple[datetime, datetime]] = (),
) -> list[Slot]:
    """Up to ``limit`` non-overlapping slots of ``duration`` in [start, end) when both people are available and
    neither is ``busy`` (e.g. the meetings either already has, with this partner or another).

    Candidate starts lie on a ``step`` grid counted from the Unix epoch (so, in UTC, on the hour and half
    hour by default, which every present-day zone shows as a quarter hour at worst). Slots come back in
    order of ``preference``: ``earliest`` first, or ``balanced``: the smallest worst-case distance of either
    person's local time (at the slot's middle) from 13:00, ties broken by the smaller sum, then the earlier.
    """
    if duration <= timedelta(0) or step <= timedelta(0):
        raise InvalidAvailabilityError("duration and step must be positive")
    if duration % timedelta(seconds=1) or step % timedelta(seconds=1):
        raise InvalidAvailabilityError("duration and step must be whole seconds")
    if limit < 0:
        raise InvalidAvailabilityError("limit must not be negative")
    low, high = _range_seconds(start, end)
    if limit == 0:
        return []
    length = int(duration.total_seconds())
    grid = int(step.total_seconds())
    overlaps = _intersect(_availability_intervals(first, low, high), _availability_intervals(second, low, high))
    taken = _merge((math.floor(b.timestamp()), math.ceil(e.timestamp())) for b, e in busy)
    overlaps = _subtract(overlaps, taken)

    chosen: list[Interval] = []
    if preference is SlotPreference.EARLIEST:
        # Earliest first needs no ranking: walk the overlaps in order and lay slots back to back.
        for overlap_start, overlap_end in overlaps:
            slot_start = -(-overlap_start // grid) * grid
            while slot_start + length <= overlap_end and len(chosen) < limit:
                chosen.append((slot_start, slot_start + length))
                slot_start = -(-(slot_start + length) // grid) * grid
            if len(chosen) == limit:
                break
    else:
        half = length // 2
        ranked: list[tuple[int, int, int]] = []
        for overlap_start, overlap_end in overlaps:
            slot_start = -(-overlap_start // grid) * grid
            while slot_start + length <= overlap_end:
                middle = slot_start + half
                a = _local_discomfort(middle, first.zone)
                b = _local_discomfort(middle, second.zone)
                ranked.append((max(a, b), a + b, slot_start))
                slot_start += grid
        # Keep only non-overlapping slots; the heap avoids sorting every candidate when the limit is small.
        heapq.heapify(ranked)
        while ranked and len(chosen) < limit:
            _, _, slot_start = heapq.heappop(ranked)
            if all(slot_start + length <= s or e <= slot_start for s, e in chosen):
                chosen.append((slot_start, slot_start + length))
    return [Slot(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in chosen]


def weekly_overlap_hours(first: Availability, second: Availability, *, week_starting: date) -> float:
    """Hours per week both people are available, over the seven days from ``week_starting`` 00:00 UTC.

    The figure depends on the week when the two zones change clocks on different dates (e.g. Sydney and
    New York), so matching should pass a week inside the program's term rather than rely on a default.
    """
    start = datetime.combine(week_starting, time(0), tzinfo=UTC)
    low, high = _range_seconds(start, start + timedelta(days=7))
    overlaps = _intersect(_availability_intervals(first, low, high), _availability_intervals(second, low, high))
    return sum(e - s for s, e in overlaps) / 3600
