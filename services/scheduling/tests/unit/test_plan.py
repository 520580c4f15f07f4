"""Check-in plans: generation from a program, re-planning after a change, cancellation when a match ends."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.domain.errors import InvalidProgramRhythmError, NaiveDatetimeError
from services.scheduling.domain.model import CheckIn, CheckInKind, CheckInState, RelationshipPhase
from services.scheduling.domain.plan import (
    ProgramRhythm,
    ReplanResult,
    cancellations_on_match_end,
    plan_checkins,
    replan,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MATCH = "match-1"
DAY = timedelta(days=1)

WEEKLY_QUARTER = ProgramRhythm(cadence_days=7, duration_days=84, first_meeting_within_days=7)
BIWEEKLY_YEAR = ProgramRhythm(cadence_days=14, duration_days=365, first_meeting_within_days=14)
MONTHLY_HALF_YEAR = ProgramRhythm(cadence_days=30, duration_days=180, first_meeting_within_days=10)
SHORT_FOUR_WEEKS = ProgramRhythm(cadence_days=7, duration_days=28, first_meeting_within_days=7)
PROGRAMS = [WEEKLY_QUARTER, BIWEEKLY_YEAR, MONTHLY_HALF_YEAR, SHORT_FOUR_WEEKS]

PHASE_ORDER = [
    RelationshipPhase.INITIATION,
    RelationshipPhase.CULTIVATION,
    RelationshipPhase.SEPARATION,
    RelationshipPhase.REDEFINITION,
]


def kinds(checkins: tuple[CheckIn, ...] | list[CheckIn]) -> list[CheckInKind]:
    return [c.kind for c in checkins]


def days_after_start(checkin: CheckIn) -> float:
    return (checkin.due_at - START) / DAY


class TestPlanGeneration:
    def test_a_weekly_quarter_has_a_first_meeting_regular_check_ins_a_midpoint_and_a_closing(self) -> None:
        plan = plan_checkins(MATCH, START, WEEKLY_QUARTER)

        assert [days_after_start(c) for c in plan] == [7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84]
        assert kinds(plan).count(CheckInKind.FIRST_MEETING) == 1
        assert kinds(plan).count(CheckInKind.MIDPOINT_REVIEW) == 1
        assert kinds(plan).count(CheckInKind.CLOSING) == 1
        assert plan[0].kind is CheckInKind.FIRST_MEETING
        assert plan[-1].kind is CheckInKind.CLOSING
        midpoint = next(c for c in plan if c.kind is CheckInKind.MIDPOINT_REVIEW)
        assert days_after_start(midpoint) == 42

    def test_a_biweekly_year_long_program_runs_its_grid_from_the_match_start(self) -> None:
        plan = plan_checkins(MATCH, START, BIWEEKLY_YEAR)

        regular = [c for c in plan if c.kind is CheckInKind.REGULAR]
        assert days_after_start(regular[0]) == 28  # day 14 is the first-meeting deadline itself
        assert all(days_after_start(c) % 14 == 0 for c in regular)
        assert plan[-1].due_at == START + 365 * DAY
        midpoint = next(c for c in plan if c.kind is CheckInKind.MIDPOINT_REVIEW)
        assert midpoint.due_at == START + timedelta(days=182, hours=12)
        # the grid point at day 182 is within half a cadence of the midpoint review, which stands in for it
        assert START + 182 * DAY not in {c.due_at for c in regular}
        assert len(plan) == 1 + 1 + 1 + len(regular)
        assert len(regular) == 23

    def test_a_monthly_program_has_check_ins_thirty_days_apart(self) -> None:
        plan = plan_checkins(MATCH, START, MONTHLY_HALF_YEAR)

        assert [(c.kind, days_after_start(c)) for c in plan] == [
            (CheckInKind.FIRST_MEETING, 10),
            (CheckInKind.REGULAR, 30),
            (CheckInKind.REGULAR, 60),
            (CheckInKind.MIDPOINT_REVIEW, 90),
            (CheckInKind.REGULAR, 120),
            (CheckInKind.REGULAR, 150),
            (CheckInKind.CLOSING, 180),
        ]

    def test_a_short_program_lets_its_milestones_stand_in_for_regular_check_ins(self) -> None:
        plan = plan_checkins(MATCH, START, SHORT_FOUR_WEEKS)

        assert [(c.kind, days_after_start(c)) for c in plan] == [
            (CheckInKind.FIRST_MEETING, 7),
            (CheckInKind.MIDPOINT_REVIEW, 14),
            (CheckInKind.REGULAR, 21),
            (CheckInKind.CLOSING, 28),
        ]

    @pytest.mark.parametrize("rhythm", PROGRAMS)
    def test_occurrence_keys_are_unique_and_name_match_kind_and_sequence(self, rhythm: ProgramRhythm) -> None:
        plan = plan_checkins(MATCH, START, rhythm)

        keys = [c.occurrence_key for c in plan]
        assert len(set(keys)) == len(keys)
        assert all(c.occurrence_key == f"{MATCH}:{c.kind.value}:{c.seq}" for c in plan)
        assert [c.due_at for c in plan] == sorted(c.due_at for c in plan)
        assert all(c.state is CheckInState.SCHEDULED and c.due_at.tzinfo is UTC for c in plan)

    @pytest.mark.parametrize("rhythm", PROGRAMS)
    def test_planning_the_same_match_twice_gives_the_same_keys_and_times(self, rhythm: ProgramRhythm) -> None:
        assert plan_checkins(MATCH, START, rhythm) == plan_checkins(MATCH, START, rhythm)

    @pytest.mark.parametrize("rhythm", PROGRAMS)
    def test_regular_check_ins_keep_half_a_cadence_from_milestones_and_never_leave_long_gaps(
        self, rhythm: ProgramRhythm
    ) -> None:
        plan = plan_checkins(MATCH, START, rhythm)
        half = rhythm.cadence / 2
        milestones = [c.due_at for c in plan if c.kind is not CheckInKind.REGULAR]

        for checkin in plan:
            if checkin.kind is CheckInKind.REGULAR:
                assert all(abs(checkin.due_at - m) >= half for m in milestones)
        for earlier, later in itertools.pairwise(plan):
            assert later.due_at - earlier.due_at <= rhythm.cadence * 1.5

    @pytest.mark.parametrize("rhythm", PROGRAMS)
    def test_phases_run_from_initiation_through_cultivation_and_separation_to_redefinition(
        self, rhythm: ProgramRhythm
    ) -> None:
        plan = plan_checkins(MATCH, START, rhythm)
        phase_ranks = [PHASE_ORDER.index(c.phase) for c in plan]

        assert phase_ranks == sorted(phase_ranks)
        assert plan[0].phase is RelationshipPhase.INITIATION
        assert plan[-1].phase is RelationshipPhase.REDEFINITION
        by_kind = {c.kind: c.phase for c in plan}
        assert by_kind[CheckInKind.FIRST_MEETING] is RelationshipPhase.INITIATION
        assert by_kind[CheckInKind.MIDPOINT_REVIEW] is RelationshipPhase.CULTIVATION
        assert by_kind[CheckInKind.CLOSING] is RelationshipPhase.REDEFINITION

    def test_regular_check_ins_in_the_last_sixth_of_a_year_are_separation(self) -> None:
        plan = plan_checkins(MATCH, START, BIWEEKLY_YEAR)
        end = START + 365 * DAY

        for checkin in plan:
            if checkin.kind is CheckInKind.REGULAR and checkin.due_at >= end - (end - START) / 6:
                assert checkin.phase is RelationshipPhase.SEPARATION
            elif checkin.kind is CheckInKind.REGULAR and checkin.due_at <= START + (end - START) / 6:
                assert checkin.phase is RelationshipPhase.INITIATION
            elif checkin.kind is CheckInKind.REGULAR:
                assert checkin.phase is RelationshipPhase.CULTIVATION
        assert {c.phase for c in plan} == set(RelationshipPhase)

    def test_a_program_end_date_cuts_a_late_match_short(self) -> None:
        rhythm = ProgramRhythm(cadence_days=14, duration_days=365, ends_at=START + 70 * DAY)

        plan = plan_checkins(MATCH, START, rhythm)

        assert plan[-1].kind is CheckInKind.CLOSING
        assert plan[-1].due_at == START + 70 * DAY
        assert next(c for c in plan if c.kind is CheckInKind.MIDPOINT_REVIEW).due_at == START + 35 * DAY

    def test_a_match_starting_after_the_program_ended_gets_no_check_ins(self) -> None:
        rhythm = ProgramRhythm(cadence_days=7, ends_at=START - DAY)

        assert plan_checkins(MATCH, START, rhythm) == ()

    def test_milestones_can_be_switched_off(self) -> None:
        rhythm = ProgramRhythm(cadence_days=7, duration_days=28, midpoint_review=False, closing_conversation=False)

        plan = plan_checkins(MATCH, START, rhythm)

        assert kinds(plan) == [CheckInKind.REGULAR] * 3
        assert [days_after_start(c) for c in plan] == [7, 14, 21]

    def test_a_program_shorter_than_its_first_meeting_window_has_no_separate_first_meeting(self) -> None:
        rhythm = ProgramRhythm(cadence_days=7, duration_days=10, first_meeting_within_days=14)

        plan = plan_checkins(MATCH, START, rhythm)

        assert CheckInKind.FIRST_MEETING not in kinds(plan)
        assert plan[-1].kind is CheckInKind.CLOSING

    def test_a_match_start_in_another_zone_is_planned_in_utc(self) -> None:
        from zoneinfo import ZoneInfo

        local_start = START.astimezone(ZoneInfo("Australia/Sydney"))

        assert plan_checkins(MATCH, local_start, WEEKLY_QUARTER) == plan_checkins(MATCH, START, WEEKLY_QUARTER)

    @pytest.mark.parametrize(
        "arguments",
        [
            {"cadence_days": 0, "duration_days": 30},
            {"cadence_days": 7},
            {"cadence_days": 7, "duration_days": 0},
            {"cadence_days": 7, "duration_days": 30, "first_meeting_within_days": 0},
        ],
    )
    def test_a_program_that_cannot_be_planned_is_rejected(self, arguments: dict[str, int]) -> None:
        with pytest.raises(InvalidProgramRhythmError):
            ProgramRhythm(**arguments)  # type: ignore[arg-type]

    def test_a_naive_start_time_is_rejected(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            plan_checkins(MATCH, datetime(2026, 1, 5, 9), WEEKLY_QUARTER)


def settle(plan: tuple[CheckIn, ...], now: datetime) -> list[CheckIn]:
    """The plan as it stands at ``now``: past check-ins completed, except the latest past one, still due."""
    past = [c for c in plan if c.due_at <= now]
    result = []
    for checkin in plan:
        if checkin in past[:-1]:
            result.append(replace(checkin, state=CheckInState.COMPLETED))
        elif past and checkin == past[-1]:
            result.append(replace(checkin, state=CheckInState.DUE))
        else:
            result.append(checkin)
    return result


class TestReplan:
    def test_re_planning_with_an_unchanged_program_keeps_everything(self) -> None:
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), START + 30 * DAY)

        result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=WEEKLY_QUARTER, now=START + 30 * DAY)

        assert result.cancel == ()
        assert result.add == ()
        assert list(result.keep) == existing

    def test_a_cadence_change_replaces_only_future_scheduled_check_ins(self) -> None:
        now = START + 30 * DAY
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), now)
        biweekly = replace(WEEKLY_QUARTER, cadence_days=14)

        result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=biweekly, now=now)

        past = [c for c in existing if c.due_at <= now]
        assert all(c in result.keep for c in past)
        assert all(c.due_at > now and c.state is CheckInState.SCHEDULED for c in result.cancel)
        assert all(c.due_at > now for c in result.add)
        remaining_future = sorted([c for c in result.keep if c.due_at > now] + list(result.add), key=lambda c: c.due_at)
        assert [(c.kind, days_after_start(c)) for c in remaining_future] == [
            (CheckInKind.MIDPOINT_REVIEW, 42),
            (CheckInKind.REGULAR, 56),
            (CheckInKind.REGULAR, 70),
            (CheckInKind.CLOSING, 84),
        ]
        # the unchanged milestones keep their rows; regular day 49/63/77 go, day 56 and 70 stay (same time)
        assert {c.occurrence_key for c in result.cancel} == {f"{MATCH}:regular:{k}" for k in (5, 7, 9, 11)}

    def test_added_check_ins_never_reuse_a_key_an_existing_row_holds(self) -> None:
        now = START + 30 * DAY
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), now)
        every_ten_days = replace(WEEKLY_QUARTER, cadence_days=10)

        first = replan(existing, match_id=MATCH, match_started_at=START, rhythm=every_ten_days, now=now)
        rows = {c.occurrence_key: c for c in existing}
        rows.update({c.occurrence_key: replace(c, state=CheckInState.CANCELLED) for c in first.cancel})
        assert not set(c.occurrence_key for c in first.add) & set(c.occurrence_key for c in existing)
        rows.update({c.occurrence_key: c for c in first.add})

        # and back again: the weekly grid's keys are all taken (some by cancelled rows), so new ones are minted
        second = replan(rows.values(), match_id=MATCH, match_started_at=START, rhythm=WEEKLY_QUARTER, now=now)
        assert second.add
        assert not {c.occurrence_key for c in second.add} & set(rows)
        assert len({c.occurrence_key for c in second.add}) == len(second.add)

    def test_a_first_meeting_already_held_is_not_planned_again_when_its_window_grows(self) -> None:
        now = START + 10 * DAY
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), now)
        assert existing[0].kind is CheckInKind.FIRST_MEETING

        longer_window = replace(WEEKLY_QUARTER, first_meeting_within_days=21)
        result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=longer_window, now=now)

        assert CheckInKind.FIRST_MEETING not in kinds(result.add)
        assert existing[0] in result.keep

    def test_a_longer_program_moves_the_midpoint_and_closing_to_new_keys(self) -> None:
        now = START + 20 * DAY
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), now)
        longer = replace(WEEKLY_QUARTER, duration_days=112)

        result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=longer, now=now)

        cancelled_keys = {c.occurrence_key for c in result.cancel}
        assert {f"{MATCH}:midpoint_review:1", f"{MATCH}:closing:1"} <= cancelled_keys
        added = {c.occurrence_key: c for c in result.add}
        assert added[f"{MATCH}:closing:2"].due_at == START + 112 * DAY
        assert added[f"{MATCH}:midpoint_review:2"].due_at == START + 56 * DAY

    def test_a_check_in_completed_early_is_never_cancelled_by_a_re_plan(self) -> None:
        now = START + 10 * DAY
        plan = plan_checkins(MATCH, START, WEEKLY_QUARTER)
        early = replace(plan[3], state=CheckInState.COMPLETED)  # due on day 28, held on day 9
        existing = [*plan[:3], early, *plan[4:]]

        result = replan(
            existing, match_id=MATCH, match_started_at=START, rhythm=replace(WEEKLY_QUARTER, cadence_days=10), now=now
        )

        assert early in result.keep
        assert early not in result.cancel

    def test_re_planning_adds_nothing_in_the_past(self) -> None:
        now = START + 50 * DAY
        existing = settle(plan_checkins(MATCH, START, MONTHLY_HALF_YEAR), now)
        weekly = replace(MONTHLY_HALF_YEAR, cadence_days=7)

        result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=weekly, now=now)

        assert result.add
        assert min(c.due_at for c in result.add) > now


class TestMatchEnd:
    def test_ending_a_match_cancels_every_check_in_still_open(self) -> None:
        ended = START + 30 * DAY
        existing = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), ended)

        to_cancel = cancellations_on_match_end(existing)

        assert {c.occurrence_key for c in to_cancel} == {
            c.occurrence_key for c in existing if c.state in (CheckInState.SCHEDULED, CheckInState.DUE)
        }
        assert any(c.state is CheckInState.DUE for c in to_cancel)
        assert any(c.due_at > ended for c in to_cancel)

    def test_ending_a_match_cancels_a_check_in_past_due_that_no_sweep_has_marked_yet(self) -> None:
        ended = START + 30 * DAY
        existing = plan_checkins(MATCH, START, WEEKLY_QUARTER)  # nothing swept: all still scheduled

        to_cancel = cancellations_on_match_end(existing)

        assert any(c.due_at <= ended for c in to_cancel)
        assert len(to_cancel) == len(existing)

    def test_ending_a_match_leaves_completed_missed_and_cancelled_check_ins_alone(self) -> None:
        ended = START + 30 * DAY
        settled = settle(plan_checkins(MATCH, START, WEEKLY_QUARTER), ended)
        history = [
            replace(c, state=state)
            for c, state in zip(
                settled, [CheckInState.COMPLETED, CheckInState.MISSED, CheckInState.CANCELLED], strict=False
            )
        ]

        assert cancellations_on_match_end(history) == ()


rhythms = st.builds(
    ProgramRhythm,
    cadence_days=st.integers(min_value=1, max_value=60),
    duration_days=st.integers(min_value=1, max_value=730),
    first_meeting_within_days=st.none() | st.integers(min_value=1, max_value=60),
    midpoint_review=st.booleans(),
    closing_conversation=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(rhythm=rhythms)
def test_every_plan_keeps_its_spacing_phase_order_and_unique_keys(rhythm: ProgramRhythm) -> None:
    plan = plan_checkins(MATCH, START, rhythm)
    end = START + timedelta(days=rhythm.duration_days or 0)

    assert len({c.occurrence_key for c in plan}) == len(plan)
    assert all(START < c.due_at <= end for c in plan)
    assert [c.due_at for c in plan] == sorted(c.due_at for c in plan)
    phase_ranks = [PHASE_ORDER.index(c.phase) for c in plan]
    assert phase_ranks == sorted(phase_ranks)
    milestones = [c for c in plan if c.kind is not CheckInKind.REGULAR]
    assert len({c.kind for c in milestones}) == len(milestones)
    for checkin in plan:
        if checkin.kind is CheckInKind.REGULAR:
            assert all(abs(checkin.due_at - m.due_at) >= rhythm.cadence / 2 for m in milestones)
    first_meeting = next((c.due_at for c in milestones if c.kind is CheckInKind.FIRST_MEETING), START)
    after_first = [c for c in plan if c.due_at >= first_meeting]
    for earlier, later in itertools.pairwise(after_first):
        assert later.due_at - earlier.due_at <= rhythm.cadence * 2


def apply(existing: list[CheckIn], result: ReplanResult) -> list[CheckIn]:
    return [
        *result.keep,
        *(replace(c, state=CheckInState.CANCELLED) for c in result.cancel),
        *result.add,
    ]


@settings(max_examples=100, deadline=None)
@given(before=rhythms, after=rhythms, now_days=st.integers(min_value=0, max_value=400))
def test_any_re_plan_spares_the_past_mints_fresh_keys_and_settles_at_once(
    before: ProgramRhythm, after: ProgramRhythm, now_days: int
) -> None:
    now = START + timedelta(days=now_days, hours=3)
    existing = settle(plan_checkins(MATCH, START, before), now)

    result = replan(existing, match_id=MATCH, match_started_at=START, rhythm=after, now=now)

    assert all(c.state is CheckInState.SCHEDULED and c.due_at > now for c in result.cancel)
    assert all(c.due_at > now for c in result.add)
    assert {c.occurrence_key for c in result.keep} | {c.occurrence_key for c in result.cancel} == {
        c.occurrence_key for c in existing
    }
    assert not {c.occurrence_key for c in result.add} & {c.occurrence_key for c in existing}
    rows = apply(existing, result)
    assert len({c.occurrence_key for c in rows}) == len(rows)
    again = replan(rows, match_id=MATCH, match_started_at=START, rhythm=after, now=now)
    assert (again.cancel, again.add) == ((), ())
