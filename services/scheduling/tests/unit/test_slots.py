"""Slot suggestions across time zones: DST switches in both hemispheres, pairs far apart, windows over midnight.

The expected UTC times below are worked out by hand from the zones' rules:
* New York: EST (UTC-5) until Sunday 8 March 2026 02:00, EDT (UTC-4) until Sunday 1 November 2026 02:00.
* Sydney: AEDT (UTC+11) until Sunday 5 April 2026 03:00, AEST (UTC+10) until Sunday 4 October 2026 02:00.
So Sydney is 16 hours ahead of New York until 8 March, 15 until 5 April, 14 until 4 October, 15 until
1 November and 16 again after.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.domain.errors import InvalidAvailabilityError, NaiveDatetimeError
from services.scheduling.domain.slots import (
    Availability,
    Slot,
    SlotPreference,
    WeeklyWindow,
    overlap_intervals,
    suggest_slots,
    weekly_overlap_hours,
)

HOUR = timedelta(hours=1)
WEEKDAYS = range(5)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def every(days: range | list[int], start: time, end: time) -> tuple[WeeklyWindow, ...]:
    return tuple(WeeklyWindow(day, start, end) for day in days)


# New York evenings on weekdays; Sydney mornings Tuesday to Saturday (the same instants, a day ahead).
NEW_YORK_EVENINGS = Availability("America/New_York", every(WEEKDAYS, time(18), time(20)))
SYDNEY_MORNINGS = Availability("Australia/Sydney", every(range(1, 6), time(8), time(10)))


class TestSydneyAndNewYork:
    def test_before_new_york_springs_forward_the_two_never_overlap(self) -> None:
        # NY 18–20 EST is 23:00–01:00 UTC; Sydney 08–10 AEDT is 21:00–23:00 UTC: they only touch.
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 2, 16)) == 0
        assert (
            suggest_slots(
                NEW_YORK_EVENINGS,
                SYDNEY_MORNINGS,
                start=utc(2026, 2, 1),
                end=utc(2026, 3, 8),
                duration=HOUR,
            )
            == []
        )

    def test_after_new_york_springs_forward_they_share_one_hour_a_weekday(self) -> None:
        slots = suggest_slots(
            NEW_YORK_EVENINGS, SYDNEY_MORNINGS, start=utc(2026, 3, 1), end=utc(2026, 3, 29), duration=HOUR, limit=3
        )

        # Monday 9 March 18:00 EDT = 22:00 UTC = Tuesday 10 March 09:00 AEDT.
        assert slots == [
            Slot(utc(2026, 3, 9, 22), utc(2026, 3, 9, 23)),
            Slot(utc(2026, 3, 10, 22), utc(2026, 3, 10, 23)),
            Slot(utc(2026, 3, 11, 22), utc(2026, 3, 11, 23)),
        ]
        first = slots[0].starts_at
        assert first.astimezone(ZoneInfo("America/New_York")).time() == time(18)
        assert first.astimezone(ZoneInfo("Australia/Sydney")).time() == time(9)
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 3, 16)) == 5

    def test_when_sydney_falls_back_in_april_the_overlap_grows_to_two_hours(self) -> None:
        overlaps = overlap_intervals(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, start=utc(2026, 4, 1), end=utc(2026, 4, 8))

        assert overlaps == [
            (utc(2026, 4, 1, 22), utc(2026, 4, 1, 23)),  # Thu 2 April 09:00 AEDT
            (utc(2026, 4, 2, 22), utc(2026, 4, 2, 23)),
            (utc(2026, 4, 3, 22), utc(2026, 4, 3, 23)),  # Sat 4 April, the last AEDT morning
            (utc(2026, 4, 6, 22), utc(2026, 4, 7, 0)),  # Tue 7 April 08:00–10:00 AEST
            (utc(2026, 4, 7, 22), utc(2026, 4, 8, 0)),
        ]
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 5, 4)) == 10

    def test_when_sydney_springs_forward_in_october_the_overlap_shrinks_back_to_one_hour(self) -> None:
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 9, 28)) == 10
        slots = suggest_slots(
            NEW_YORK_EVENINGS,
            SYDNEY_MORNINGS,
            start=utc(2026, 10, 5),
            end=utc(2026, 10, 6),
            duration=HOUR,
            limit=5,
        )
        # Monday 5 October 18:00 EDT = 22:00 UTC = Tuesday 6 October 09:00 AEDT; 19:00 EDT would be 11:00 in Sydney.
        assert slots == [Slot(utc(2026, 10, 5, 22), utc(2026, 10, 5, 23))]
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 10, 12)) == 5

    def test_when_new_york_falls_back_in_november_the_overlap_disappears_again(self) -> None:
        assert overlap_intervals(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, start=utc(2026, 10, 26), end=utc(2026, 11, 7)) == [
            (utc(2026, d, n, 22), utc(2026, d, n, 23)) for d, n in [(10, 26), (10, 27), (10, 28), (10, 29), (10, 30)]
        ]
        assert weekly_overlap_hours(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, week_starting=date(2026, 11, 2)) == 0

    def test_balanced_slots_favour_the_hour_kinder_to_both(self) -> None:
        slots = suggest_slots(
            NEW_YORK_EVENINGS,
            SYDNEY_MORNINGS,
            start=utc(2026, 5, 4),
            end=utc(2026, 5, 5),
            duration=HOUR,
            limit=2,
            preference=SlotPreference.BALANCED,
        )
        # Measured at the middle of the hour: 22:00 UTC is 18:30 in NY (5.5 h from 13:00), 23:00 UTC 19:30 (6.5 h).
        assert slots == [Slot(utc(2026, 5, 4, 22), utc(2026, 5, 4, 23)), Slot(utc(2026, 5, 4, 23), utc(2026, 5, 5))]


class TestFarApartAndOverMidnight:
    def test_a_pair_a_whole_day_apart_meets_on_different_calendar_days(self) -> None:
        # Kiritimati is UTC+14, Honolulu UTC-10: the same wall-clock time, one calendar day apart.
        honolulu = Availability("Pacific/Honolulu", (WeeklyWindow(0, time(9), time(11)),))  # Monday
        kiritimati_tuesday = Availability("Pacific/Kiritimati", (WeeklyWindow(1, time(9), time(11)),))
        kiritimati_monday = Availability("Pacific/Kiritimati", (WeeklyWindow(0, time(9), time(11)),))
        week = {"start": utc(2026, 6, 1), "end": utc(2026, 6, 8)}

        assert overlap_intervals(honolulu, kiritimati_tuesday, **week) == [(utc(2026, 6, 1, 19), utc(2026, 6, 1, 21))]
        assert overlap_intervals(honolulu, kiritimati_monday, **week) == []

    def test_a_pair_seventeen_hours_apart_meets_across_utc_midnight(self) -> None:
        # Los Angeles Wed 16:00–18:00 PDT (UTC-7) = 23:00–01:00 UTC; Sydney Thu 09:00–11:00 AEST (UTC+10)
        # = Wed 23:00–01:00 UTC in June: a full two hours, crossing UTC midnight.
        los_angeles = Availability("America/Los_Angeles", (WeeklyWindow(2, time(16), time(18)),))
        sydney = Availability("Australia/Sydney", (WeeklyWindow(3, time(9), time(11)),))

        slots = suggest_slots(los_angeles, sydney, start=utc(2026, 6, 1), end=utc(2026, 6, 8), duration=HOUR)

        assert slots == [Slot(utc(2026, 6, 3, 23), utc(2026, 6, 4, 0)), Slot(utc(2026, 6, 4, 0), utc(2026, 6, 4, 1))]

    def test_a_window_crossing_midnight_meets_a_partner_window_that_crosses_midnight_only_for_them(self) -> None:
        # London Friday 22:00–02:00 GMT; Kolkata (UTC+5:30) Saturday 04:00–06:00 = Friday 22:30–00:30 UTC.
        london = Availability("Europe/London", (WeeklyWindow(4, time(22), time(2)),))
        kolkata = Availability("Asia/Kolkata", (WeeklyWindow(5, time(4), time(6)),))

        slots = suggest_slots(london, kolkata, start=utc(2026, 1, 5), end=utc(2026, 1, 12), duration=HOUR)

        assert slots == [
            Slot(utc(2026, 1, 9, 22, 30), utc(2026, 1, 9, 23, 30)),
            Slot(utc(2026, 1, 9, 23, 30), utc(2026, 1, 10, 0, 30)),
        ]

    def test_a_range_starting_after_midnight_still_sees_a_window_begun_the_evening_before(self) -> None:
        london = Availability("Europe/London", (WeeklyWindow(4, time(22), time(2)),))
        kolkata = Availability("Asia/Kolkata", (WeeklyWindow(5, time(4), time(6)),))

        assert overlap_intervals(london, kolkata, start=utc(2026, 1, 10), end=utc(2026, 1, 11)) == [
            (utc(2026, 1, 10), utc(2026, 1, 10, 0, 30))
        ]

    def test_a_window_ending_at_midnight_runs_to_the_end_of_the_day(self) -> None:
        late = Availability("UTC", (WeeklyWindow(0, time(23), time(0)),))
        anyone = Availability("UTC", every(range(7), time(0), time(0)))

        assert overlap_intervals(late, anyone, start=utc(2026, 1, 5), end=utc(2026, 1, 12)) == [
            (utc(2026, 1, 5, 23), utc(2026, 1, 6))
        ]

    def test_people_whose_windows_never_meet_get_no_slots(self) -> None:
        mornings = Availability("Europe/Berlin", every(range(7), time(8), time(10)))
        evenings = Availability("Europe/Berlin", every(range(7), time(18), time(20)))

        assert suggest_slots(mornings, evenings, start=utc(2026, 1, 1), end=utc(2026, 2, 1), duration=HOUR) == []
        assert weekly_overlap_hours(mornings, evenings, week_starting=date(2026, 1, 5)) == 0

    def test_an_overlap_shorter_than_the_meeting_yields_no_slot(self) -> None:
        first = Availability("UTC", (WeeklyWindow(0, time(9), time(10)),))
        second = Availability("UTC", (WeeklyWindow(0, time(9, 30), time(11)),))

        assert suggest_slots(first, second, start=utc(2026, 1, 5), end=utc(2026, 1, 6), duration=HOUR) == []


class TestDstEdges:
    ALL_SUNDAY_UTC = Availability("UTC", (WeeklyWindow(6, time(0), time(0)),))

    def test_a_window_starting_in_the_skipped_hour_opens_when_the_clocks_jump(self) -> None:
        # New York, Sunday 8 March 2026: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never shows.
        new_york = Availability("America/New_York", (WeeklyWindow(6, time(2, 30), time(4)),))

        assert overlap_intervals(new_york, self.ALL_SUNDAY_UTC, start=utc(2026, 3, 8), end=utc(2026, 3, 9)) == [
            (utc(2026, 3, 8, 7), utc(2026, 3, 8, 8))
        ]

    def test_a_window_ending_in_the_skipped_hour_closes_when_the_clocks_jump(self) -> None:
        new_york = Availability("America/New_York", (WeeklyWindow(6, time(1), time(2, 30)),))

        assert overlap_intervals(new_york, self.ALL_SUNDAY_UTC, start=utc(2026, 3, 8), end=utc(2026, 3, 9)) == [
            (utc(2026, 3, 8, 6), utc(2026, 3, 8, 7))
        ]

    def test_a_window_spanning_the_repeated_hour_lasts_an_hour_longer_in_real_time(self) -> None:
        # New York, Sunday 1 November 2026: 01:00 EDT (05:00 UTC) … 02:00 EDT falls back to 01:00 EST … 03:00 EST.
        new_york = Availability("America/New_York", (WeeklyWindow(6, time(1), time(3)),))

        assert overlap_intervals(new_york, self.ALL_SUNDAY_UTC, start=utc(2026, 11, 1), end=utc(2026, 11, 2)) == [
            (utc(2026, 11, 1, 5), utc(2026, 11, 1, 8))
        ]

    def test_a_window_ending_in_the_repeated_hour_ends_at_its_first_occurrence(self) -> None:
        new_york = Availability("America/New_York", (WeeklyWindow(6, time(0, 30), time(1, 30)),))

        assert overlap_intervals(new_york, self.ALL_SUNDAY_UTC, start=utc(2026, 11, 1), end=utc(2026, 11, 2)) == [
            (utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30))
        ]

    def test_sydney_falling_back_gives_a_window_over_the_repeated_hour_its_extra_hour(self) -> None:
        # Sydney, Sunday 5 April 2026: 03:00 AEDT (16:00 UTC Saturday) falls back to 02:00 AEST.
        sydney = Availability("Australia/Sydney", (WeeklyWindow(6, time(1), time(4)),))
        all_saturday_utc = Availability("UTC", (WeeklyWindow(5, time(0), time(0)),))

        assert overlap_intervals(sydney, all_saturday_utc, start=utc(2026, 4, 4), end=utc(2026, 4, 5)) == [
            (utc(2026, 4, 4, 14), utc(2026, 4, 4, 18))
        ]


class TestSlotRequests:
    def test_slots_never_exceed_the_limit_and_never_overlap(self) -> None:
        everyone = Availability("UTC", every(range(7), time(9), time(17)))

        slots = suggest_slots(
            everyone,
            everyone,
            start=utc(2026, 1, 5),
            end=utc(2026, 2, 5),
            duration=timedelta(minutes=45),
            limit=7,
            preference=SlotPreference.BALANCED,
        )

        assert len(slots) == 7
        spans = sorted((s.starts_at, s.ends_at) for s in slots)
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
        # the best balanced slot for two people in one zone is centred on 13:00
        assert slots[0] == Slot(utc(2026, 1, 5, 12, 30), utc(2026, 1, 5, 13, 15))

    def test_slots_start_no_earlier_than_the_range(self) -> None:
        everyone = Availability("UTC", every(range(7), time(9), time(17)))

        slots = suggest_slots(everyone, everyone, start=utc(2026, 1, 5, 10, 10), end=utc(2026, 1, 6), duration=HOUR)

        assert slots[0].starts_at == utc(2026, 1, 5, 10, 30)

    @pytest.mark.parametrize(
        "arguments",
        [
            {"duration": timedelta(0)},
            {"duration": HOUR, "limit": -1},
            {"duration": HOUR, "end": utc(2026, 1, 1)},
            {"duration": HOUR, "end": utc(2028, 1, 1)},
            {"duration": HOUR, "step": timedelta(0)},
        ],
    )
    def test_malformed_requests_are_rejected(self, arguments: dict[str, object]) -> None:
        request: dict[str, object] = {"start": utc(2026, 1, 1), "end": utc(2026, 2, 1), **arguments}
        with pytest.raises(InvalidAvailabilityError):
            suggest_slots(NEW_YORK_EVENINGS, SYDNEY_MORNINGS, **request)  # type: ignore[arg-type]

    def test_naive_range_bounds_are_rejected(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            suggest_slots(
                NEW_YORK_EVENINGS, SYDNEY_MORNINGS, start=datetime(2026, 1, 1), end=utc(2026, 2, 1), duration=HOUR
            )

    def test_unknown_time_zones_and_weekdays_are_rejected(self) -> None:
        with pytest.raises(InvalidAvailabilityError):
            Availability("Mars/Olympus_Mons", ())
        with pytest.raises(InvalidAvailabilityError):
            WeeklyWindow(7, time(9), time(10))


# An independent oracle: minute by minute, is the wall clock of each person inside one of their windows?
ORACLE_ZONES = [
    "America/New_York",
    "Australia/Sydney",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Auckland",
    "America/Los_Angeles",
    "Pacific/Kiritimati",
    "Pacific/Honolulu",
    "UTC",
]
# Switch days in 2026 for the zones above; the oracle ranges start near them to cross a switch.
SWITCH_DAYS = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 9, 27), date(2026, 10, 4),
               date(2026, 10, 25), date(2026, 11, 1)]  # fmt: skip


def wall_clock_available(person: Availability, minute: datetime) -> bool:
    local = minute.astimezone(person.zone)
    now, today, yesterday = local.time(), local.weekday(), (local.weekday() - 1) % 7
    for window in person.windows:
        if window.weekday == today and window.start <= now and (window.crosses_midnight or now < window.end):
            return True
        if window.crosses_midnight and window.weekday == yesterday and now < window.end:
            return True
    return False


@st.composite
def windows(draw: st.DrawFn) -> WeeklyWindow:
    # Edges stay clear of 01:00–04:00 local, where clocks change: there the oracle's "wall clock shows it"
    # and the domain's "continuous stretch from the first time it shows" differ by design (see slots.py).
    start_quarter = draw(st.integers(min_value=4 * 4, max_value=23 * 4 + 3))
    length_quarters = draw(st.integers(min_value=1, max_value=24 * 4 - start_quarter + 4))
    end_quarter = (start_quarter + length_quarters) % (24 * 4)
    return WeeklyWindow(
        draw(st.integers(min_value=0, max_value=6)),
        time(start_quarter // 4, start_quarter % 4 * 15),
        time(end_quarter // 4, end_quarter % 4 * 15),
    )


availabilities = st.builds(
    Availability, st.sampled_from(ORACLE_ZONES), st.lists(windows(), min_size=0, max_size=6).map(tuple)
)


@settings(max_examples=40, deadline=None)
@given(
    first=availabilities,
    second=availabilities,
    around=st.sampled_from(SWITCH_DAYS),
    offset_hours=st.integers(min_value=-72, max_value=24),
)
def test_overlaps_match_a_minute_by_minute_wall_clock_oracle(
    first: Availability, second: Availability, around: date, offset_hours: int
) -> None:
    start = datetime.combine(around, time(0), tzinfo=UTC) + timedelta(hours=offset_hours)
    end = start + timedelta(days=3)

    covered: set[datetime] = set()
    for low, high in overlap_intervals(first, second, start=start, end=end):
        minute = low
        while minute < high:
            covered.add(minute)
            minute += timedelta(minutes=1)
    expected = set()
    minute = start
    while minute < end:
        if wall_clock_available(first, minute) and wall_clock_available(second, minute):
            expected.add(minute)
        minute += timedelta(minutes=1)

    assert covered == expected


@settings(max_examples=40, deadline=None)
@given(
    first=availabilities,
    second=availabilities,
    minutes=st.sampled_from([30, 45, 60, 90]),
    limit=st.integers(min_value=1, max_value=8),
    preference=st.sampled_from(list(SlotPreference)),
)
def test_every_suggested_slot_lies_inside_the_overlap_and_none_overlap(
    first: Availability, second: Availability, minutes: int, limit: int, preference: SlotPreference
) -> None:
    start, end = utc(2026, 3, 2), utc(2026, 3, 30)
    overlaps = overlap_intervals(first, second, start=start, end=end)

    slots = suggest_slots(
        first, second, start=start, end=end, duration=timedelta(minutes=minutes), limit=limit, preference=preference
    )

    assert len(slots) <= limit
    for slot in slots:
        assert slot.ends_at - slot.starts_at == timedelta(minutes=minutes)
        assert any(low <= slot.starts_at and slot.ends_at <= high for low, high in overlaps)
    spans = sorted((s.starts_at, s.ends_at) for s in slots)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
    if preference is SlotPreference.EARLIEST:
        assert [s.starts_at for s in slots] == sorted(s.starts_at for s in slots)
    fits_somewhere = any(high - low >= timedelta(minutes=minutes + 30) for low, high in overlaps)
    if fits_somewhere:
        assert slots


def test_a_busy_hour_inside_an_overlap_is_left_out_and_the_rest_of_the_overlap_still_offered() -> None:
    berlin = Availability("Europe/Berlin", every([0], time(17), time(20)))  # 16:00-19:00 UTC in March 2027
    new_york = Availability("America/New_York", every([0], time(9), time(15)))  # 14:00-20:00 UTC
    monday = utc(2027, 3, 1)
    busy = [(monday + timedelta(hours=16, minutes=30), monday + timedelta(hours=17))]

    slots = suggest_slots(berlin, new_york, start=monday, end=monday + timedelta(days=1), duration=HOUR, busy=busy)

    assert slots == [Slot(monday + timedelta(hours=h), monday + timedelta(hours=h + 1)) for h in (17, 18)]


@settings(max_examples=40, deadline=None)
@given(
    first=availabilities,
    second=availabilities,
    busy=st.lists(
        st.tuples(st.integers(min_value=0, max_value=28 * 96), st.integers(min_value=1, max_value=12)), max_size=12
    ),
    preference=st.sampled_from(list(SlotPreference)),
)
def test_no_suggested_slot_overlaps_a_busy_time(
    first: Availability, second: Availability, busy: list[tuple[int, int]], preference: SlotPreference
) -> None:
    start, end = utc(2026, 3, 2), utc(2026, 3, 30)
    quarter = timedelta(minutes=15)
    taken = [(start + at * quarter, start + (at + length) * quarter) for at, length in busy]

    slots = suggest_slots(
        first, second, start=start, end=end, duration=HOUR, limit=20, preference=preference, busy=taken
    )

    for slot in slots:
        assert all(slot.ends_at <= low or high <= slot.starts_at for low, high in taken), slot
