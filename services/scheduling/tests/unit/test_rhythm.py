"""Check-in and meeting state machines: what a sweep finds due, reminders, grace, and who may do what."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.scheduling.domain.errors import (
    IllegalTransitionError,
    InvalidMeetingTimeError,
    NaiveDatetimeError,
    NotAParticipantError,
    NotPermittedError,
    SchedulingDomainError,
)
from services.scheduling.domain.model import CheckIn, CheckInKind, CheckInState, RelationshipPhase
from services.scheduling.domain.rhythm import (
    Meeting,
    MeetingState,
    accept_meeting,
    cancel_checkin,
    cancel_meeting,
    cancel_meetings_on_match_end,
    complete_checkin,
    defer_checkin,
    due_now,
    mark_due,
    mark_meeting_held,
    mark_meeting_missed,
    mark_missed,
    missed_now,
    propose_meeting,
    reminder_key,
    reminders_due,
    reschedule_meeting,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GRACE = timedelta(days=3)
MENTOR, MENTEE, STRANGER = "mentor-1", "mentee-1", "someone-else"


def checkin(seq: int, due_at: datetime, state: CheckInState = CheckInState.SCHEDULED) -> CheckIn:
    return CheckIn(
        occurrence_key=f"m1:regular:{seq}",
        match_id="m1",
        kind=CheckInKind.REGULAR,
        seq=seq,
        due_at=due_at,
        phase=RelationshipPhase.CULTIVATION,
        state=state,
    )


def proposed(starts_at: datetime = T0 + 2 * DAY, checkin_key: str | None = "m1:regular:1") -> Meeting:
    return propose_meeting(
        meeting_id="meeting-1",
        match_id="m1",
        participants=(MENTOR, MENTEE),
        proposed_by=MENTOR,
        starts_at=starts_at,
        ends_at=starts_at + HOUR,
        now=T0,
        checkin_key=checkin_key,
    )


class TestSweeps:
    def test_due_now_finds_scheduled_check_ins_whose_time_has_come_oldest_first(self) -> None:
        later = checkin(2, T0 - HOUR)
        earlier = checkin(1, T0 - DAY)
        exactly_now = checkin(3, T0)
        future = checkin(4, T0 + HOUR)
        already_due = checkin(5, T0 - DAY, CheckInState.DUE)
        cancelled = checkin(6, T0 - DAY, CheckInState.CANCELLED)

        found = due_now([later, future, earlier, exactly_now, already_due, cancelled], T0)

        assert found == [earlier, later, exactly_now]

    def test_reminders_go_out_within_the_lead_time_and_not_once_the_check_in_is_due(self) -> None:
        lead = timedelta(hours=24)
        tomorrow = checkin(1, T0 + 23 * HOUR)
        in_two_days = checkin(2, T0 + 2 * DAY)
        on_the_edge = checkin(3, T0 + lead)
        overdue = checkin(4, T0 - HOUR)
        completed = checkin(5, T0 + HOUR, CheckInState.COMPLETED)

        found = reminders_due([in_two_days, tomorrow, on_the_edge, overdue, completed], T0, lead)

        assert found == [tomorrow, on_the_edge]
        assert reminder_key(tomorrow) == "m1:regular:1:reminder"

    def test_a_due_check_in_is_missed_only_once_the_grace_period_is_over(self) -> None:
        due = checkin(1, T0, CheckInState.DUE)

        assert missed_now([due], T0 + GRACE - timedelta(seconds=1), GRACE) == []
        assert missed_now([due], T0 + GRACE, GRACE) == [due]

    def test_a_scheduled_or_completed_check_in_is_never_reported_missed(self) -> None:
        long_ago = T0 - 30 * DAY
        checkins = [checkin(1, long_ago), checkin(2, long_ago, CheckInState.COMPLETED)]

        assert missed_now(checkins, T0, GRACE) == []

    def test_rescheduling_the_meeting_moves_the_grace_period(self) -> None:
        due = checkin(1, T0, CheckInState.DUE)
        deferred = defer_checkin(due, T0 + 5 * DAY)

        assert missed_now([deferred], T0 + GRACE, GRACE) == []
        assert missed_now([deferred], T0 + 5 * DAY + GRACE, GRACE) == [deferred]

    def test_sweeps_reject_a_naive_now(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            due_now([checkin(1, T0)], datetime(2026, 3, 1, 12))


class TestCheckInTransitions:
    def test_a_check_in_goes_scheduled_due_completed(self) -> None:
        due = mark_due(checkin(1, T0), T0)
        completed = complete_checkin(due)

        assert (due.state, completed.state) == (CheckInState.DUE, CheckInState.COMPLETED)

    def test_a_check_in_goes_scheduled_due_missed_after_the_grace_period(self) -> None:
        missed = mark_missed(mark_due(checkin(1, T0), T0), T0 + GRACE, GRACE)

        assert missed.state is CheckInState.MISSED

    def test_a_scheduled_check_in_can_be_completed_early_or_cancelled(self) -> None:
        assert complete_checkin(checkin(1, T0 + DAY)).state is CheckInState.COMPLETED
        assert cancel_checkin(checkin(1, T0 + DAY)).state is CheckInState.CANCELLED

    def test_a_check_in_cannot_become_due_before_its_time(self) -> None:
        with pytest.raises(IllegalTransitionError, match="not due yet"):
            mark_due(checkin(1, T0 + HOUR), T0)

    def test_a_check_in_cannot_be_missed_while_its_grace_period_runs(self) -> None:
        with pytest.raises(IllegalTransitionError, match="grace period"):
            mark_missed(checkin(1, T0, CheckInState.DUE), T0 + HOUR, GRACE)

    def test_a_scheduled_check_in_cannot_be_missed_without_coming_due(self) -> None:
        with pytest.raises(IllegalTransitionError):
            mark_missed(checkin(1, T0 - 30 * DAY), T0, GRACE)

    @pytest.mark.parametrize("settled", [CheckInState.COMPLETED, CheckInState.MISSED, CheckInState.CANCELLED])
    def test_a_settled_check_in_never_moves_again(self, settled: CheckInState) -> None:
        done = checkin(1, T0 - DAY, settled)

        for move in (lambda c: mark_due(c, T0), complete_checkin, cancel_checkin, lambda c: mark_missed(c, T0, GRACE)):
            if move is complete_checkin and settled is CheckInState.COMPLETED:
                continue
            with pytest.raises(IllegalTransitionError):
                move(done)
        with pytest.raises(IllegalTransitionError):
            defer_checkin(done, T0 + DAY)

    def test_a_check_in_cannot_be_completed_twice(self) -> None:
        with pytest.raises(IllegalTransitionError, match="completed to completed"):
            complete_checkin(checkin(1, T0, CheckInState.COMPLETED))


class TestMeetings:
    def test_the_other_party_accepts_a_proposal_which_raises_the_sequence(self) -> None:
        accepted = accept_meeting(proposed(), MENTEE, T0)

        assert accepted.state is MeetingState.ACCEPTED
        assert accepted.sequence == 1, "STATUS goes TENTATIVE to CONFIRMED: a significant change (RFC 5546 2.1.4)"
        assert accepted.last_changed_by == MENTEE

    def test_the_proposer_cannot_accept_their_own_proposal(self) -> None:
        with pytest.raises(NotPermittedError):
            accept_meeting(proposed(), MENTOR, T0)

    def test_someone_outside_the_match_can_do_nothing_with_the_meeting(self) -> None:
        meeting = proposed()
        with pytest.raises(NotAParticipantError):
            accept_meeting(meeting, STRANGER, T0)
        with pytest.raises(NotAParticipantError):
            cancel_meeting(meeting, STRANGER)
        with pytest.raises(NotAParticipantError):
            reschedule_meeting(meeting, STRANGER, starts_at=T0 + 3 * DAY, ends_at=T0 + 3 * DAY + HOUR, now=T0)
        with pytest.raises(NotAParticipantError):
            propose_meeting(
                meeting_id="x",
                match_id="m1",
                participants=(MENTOR, MENTEE),
                proposed_by=STRANGER,
                starts_at=T0 + DAY,
                ends_at=T0 + DAY + HOUR,
                now=T0,
            )

    def test_a_meeting_cannot_be_proposed_or_moved_into_the_past(self) -> None:
        with pytest.raises(InvalidMeetingTimeError):
            proposed(starts_at=T0 - HOUR)
        with pytest.raises(InvalidMeetingTimeError):
            reschedule_meeting(proposed(), MENTEE, starts_at=T0 - HOUR, ends_at=T0, now=T0)

    @pytest.mark.parametrize("actor", [MENTOR, MENTEE])
    def test_either_party_can_reschedule_which_raises_the_sequence_and_needs_the_other_to_accept(
        self, actor: str
    ) -> None:
        accepted = accept_meeting(proposed(), MENTEE, T0)
        new_start = T0 + 4 * DAY

        moved = reschedule_meeting(accepted, actor, starts_at=new_start, ends_at=new_start + HOUR, now=T0)

        assert moved.state is MeetingState.PROPOSED
        assert moved.sequence == accepted.sequence + 1
        assert (moved.starts_at, moved.proposed_by) == (new_start, actor)
        with pytest.raises(NotPermittedError):
            accept_meeting(moved, actor, T0)
        assert accept_meeting(moved, moved.other_party(actor), T0).state is MeetingState.ACCEPTED

    def test_each_reschedule_raises_the_sequence_again(self) -> None:
        meeting = proposed()
        for expected in (1, 2, 3):
            start = T0 + (expected + 2) * DAY
            meeting = reschedule_meeting(meeting, MENTEE, starts_at=start, ends_at=start + HOUR, now=T0)
            assert meeting.sequence == expected

    @pytest.mark.parametrize("actor", [MENTOR, MENTEE])
    def test_either_party_can_cancel_an_open_meeting(self, actor: str) -> None:
        for meeting in (proposed(), accept_meeting(proposed(), MENTEE, T0)):
            cancelled = cancel_meeting(meeting, actor)
            assert cancelled.state is MeetingState.CANCELLED
            assert cancelled.sequence == meeting.sequence + 1

    @pytest.mark.parametrize("actor", [MENTOR, MENTEE])
    def test_a_held_meeting_completes_its_check_in(self, actor: str) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)
        due = checkin(1, T0 + DAY, CheckInState.DUE)

        held, completed = mark_meeting_held(meeting, actor, meeting.starts_at + HOUR, due)

        assert held.state is MeetingState.HELD
        assert completed is not None
        assert completed.state is CheckInState.COMPLETED

    def test_a_meeting_held_before_its_check_in_was_due_completes_it_early(self) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)
        scheduled = checkin(1, T0 + 10 * DAY)

        _, completed = mark_meeting_held(meeting, MENTOR, meeting.starts_at, scheduled)

        assert completed is not None
        assert completed.state is CheckInState.COMPLETED

    def test_a_meeting_held_after_its_check_in_was_missed_leaves_the_check_in_missed(self) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)
        missed = checkin(1, T0 - 10 * DAY, CheckInState.MISSED)

        _, unchanged = mark_meeting_held(meeting, MENTOR, meeting.starts_at, missed)

        assert unchanged == missed

    def test_a_held_meeting_refuses_to_complete_another_check_in(self) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)

        with pytest.raises(SchedulingDomainError, match="not the one"):
            mark_meeting_held(meeting, MENTOR, meeting.starts_at, checkin(2, T0))

    def test_a_meeting_cannot_be_marked_held_or_missed_before_it_starts(self) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)
        with pytest.raises(IllegalTransitionError, match="not started"):
            mark_meeting_held(meeting, MENTOR, meeting.starts_at - timedelta(minutes=1))
        with pytest.raises(IllegalTransitionError, match="not started"):
            mark_meeting_missed(meeting, MENTOR, meeting.starts_at - timedelta(minutes=1))

    def test_a_proposal_nobody_accepted_cannot_be_held_or_missed(self) -> None:
        meeting = proposed()
        with pytest.raises(IllegalTransitionError):
            mark_meeting_held(meeting, MENTEE, meeting.starts_at)
        with pytest.raises(IllegalTransitionError):
            mark_meeting_missed(meeting, MENTEE, meeting.starts_at)

    def test_a_proposal_whose_start_has_passed_cannot_be_accepted(self) -> None:
        meeting = proposed()
        with pytest.raises(IllegalTransitionError, match="start has passed"):
            accept_meeting(meeting, MENTEE, meeting.starts_at)

    @pytest.mark.parametrize("ending", ["held", "missed", "cancelled"])
    def test_a_settled_meeting_never_moves_again(self, ending: str) -> None:
        meeting = accept_meeting(proposed(), MENTEE, T0)
        after = meeting.starts_at + HOUR
        if ending == "held":
            meeting, _ = mark_meeting_held(meeting, MENTOR, after)
        elif ending == "missed":
            meeting = mark_meeting_missed(meeting, MENTOR, after)
        else:
            meeting = cancel_meeting(meeting, MENTOR)

        with pytest.raises(IllegalTransitionError):
            cancel_meeting(meeting, MENTEE)
        with pytest.raises(IllegalTransitionError):
            reschedule_meeting(meeting, MENTEE, starts_at=after + DAY, ends_at=after + DAY + HOUR, now=after)
        with pytest.raises(IllegalTransitionError):
            mark_meeting_held(meeting, MENTEE, after)
        with pytest.raises(IllegalTransitionError):
            mark_meeting_missed(meeting, MENTEE, after)
        with pytest.raises(IllegalTransitionError):
            accept_meeting(meeting, MENTEE, T0)

    def test_a_meeting_must_end_after_it_starts_and_have_two_people(self) -> None:
        with pytest.raises(InvalidMeetingTimeError):
            replace(proposed(), ends_at=T0 + DAY)
        with pytest.raises(SchedulingDomainError):
            replace(proposed(), participants=(MENTOR, MENTOR))

    def test_a_match_ending_cancels_only_its_open_meetings_after_the_end(self) -> None:
        ended = T0 + 3 * DAY
        before_end = accept_meeting(proposed(starts_at=T0 + DAY), MENTEE, T0)
        after_end = accept_meeting(replace(proposed(starts_at=T0 + 5 * DAY), meeting_id="meeting-2"), MENTEE, T0)
        proposal_after_end = replace(proposed(starts_at=T0 + 6 * DAY), meeting_id="meeting-3")
        held_before, _ = mark_meeting_held(before_end, MENTOR, before_end.starts_at)

        cancelled = cancel_meetings_on_match_end([before_end, after_end, proposal_after_end, held_before], ended)

        assert [m.meeting_id for m in cancelled] == ["meeting-2", "meeting-3"]
        assert all(m.state is MeetingState.CANCELLED and m.last_changed_by is None for m in cancelled)
        assert [m.sequence for m in cancelled] == [2, 1], "one more than each had: accepted 1, proposed 0"
