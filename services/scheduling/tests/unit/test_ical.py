"""iCalendar output, parsed back with the icalendar library and checked field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Component

from services.scheduling.domain.errors import InvalidAvailabilityError
from services.scheduling.domain.ical import (
    CalendarEntry,
    CalendarParty,
    meeting_ics,
    meeting_uid,
    participant_feed,
)
from services.scheduling.domain.rhythm import (
    Meeting,
    accept_meeting,
    cancel_meeting,
    propose_meeting,
    reschedule_meeting,
)

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=5)
MENTOR, MENTEE = "mentor-7f3a", "mentee-91bc"
# Monday 9 March 2026 22:00 UTC: 18:00 EDT in New York (a day after its switch), 09:00 AEDT in Sydney.
STARTS = datetime(2026, 3, 9, 22, 0, tzinfo=UTC)


def proposal(meeting_id: str = "meeting-42", starts_at: datetime = STARTS) -> Meeting:
    return propose_meeting(
        meeting_id=meeting_id,
        match_id="match-secret-17",
        participants=(MENTOR, MENTEE),
        proposed_by=MENTOR,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        now=NOW,
    )


def at(meeting: Meeting, last_modified: datetime = NOW) -> CalendarEntry:
    """The meeting as last changed at ``last_modified`` (proposed at NOW)."""
    return CalendarEntry(meeting, created_at=NOW, last_modified=last_modified)


def parse_single(ics: bytes) -> tuple[Calendar, Component]:
    calendar = Calendar.from_ical(ics)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def utc_start_end(event: Component) -> tuple[datetime, datetime]:
    return event.decoded("dtstart").astimezone(UTC), event.decoded("dtend").astimezone(UTC)


class TestSingleMeeting:
    def test_a_proposal_is_a_tentative_event_with_a_stable_uid_and_no_itip_method(self) -> None:
        calendar, event = parse_single(meeting_ics(at(proposal())))

        # A download the user adds to their own calendar, not an invitation: METHOD:REQUEST without ORGANIZER and
        # ATTENDEE is a broken iTIP message to Outlook and others.
        assert "method" not in calendar
        assert calendar["version"] == "2.0"
        assert str(event["uid"]) == "meeting-42@mentorloom" == meeting_uid("meeting-42")
        assert event["status"] == "TENTATIVE"
        assert event.decoded("sequence") == 0
        assert event.decoded("dtstamp") == NOW

    def test_times_in_utc_mode_are_written_with_z_and_match_the_meeting(self) -> None:
        ics = meeting_ics(at(proposal()))
        calendar, event = parse_single(ics)

        assert b"DTSTART:20260309T220000Z" in ics
        assert b"DTEND:20260309T230000Z" in ics
        assert utc_start_end(event) == (STARTS, STARTS + timedelta(hours=1))
        assert calendar.walk("VTIMEZONE") == []

    @pytest.mark.parametrize(
        ("zone", "local_start"),
        [("America/New_York", b"20260309T180000"), ("Australia/Sydney", b"20260310T090000")],
    )
    def test_times_in_a_participant_zone_carry_a_vtimezone_and_the_same_instant(
        self, zone: str, local_start: bytes
    ) -> None:
        ics = meeting_ics(at(proposal()), time_zone=zone)
        calendar, event = parse_single(ics)

        assert f"DTSTART;TZID={zone}:".encode() + local_start in ics
        assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == [zone]
        assert event.decoded("dtstart").tzinfo is not None
        assert utc_start_end(event) == (STARTS, STARTS + timedelta(hours=1))

    def test_the_vtimezone_alone_lets_a_client_place_the_meeting_across_a_dst_switch(self) -> None:
        # Read the VTIMEZONE's own rules (not the local tz database) for a meeting after Sydney's April switch.
        after_switch = datetime(2026, 4, 7, 22, 0, tzinfo=UTC)  # Wednesday 8 April 08:00 AEST
        calendar, _ = parse_single(meeting_ics(at(proposal(starts_at=after_switch)), time_zone="Australia/Sydney"))

        from_vtimezone = calendar.timezones[0].to_tz(lookup_tzid=False)
        local = datetime(2026, 4, 8, 8, 0, tzinfo=from_vtimezone)
        assert local.astimezone(UTC) == after_switch
        assert datetime(2026, 3, 10, 9, 0, tzinfo=from_vtimezone).astimezone(UTC) == STARTS

    def test_an_accepted_meeting_is_confirmed_with_the_same_uid_and_a_higher_sequence(self) -> None:
        _, before = parse_single(meeting_ics(at(proposal())))
        _, after = parse_single(meeting_ics(at(accept_meeting(proposal(), MENTEE, NOW), LATER)))

        assert after["status"] == "CONFIRMED"
        assert after["uid"] == before["uid"]
        # Clients that compare SEQUENCE before DTSTAMP (Google, Outlook) take the confirmation over the tentative copy.
        assert after.decoded("sequence") == before.decoded("sequence") + 1
        assert after.decoded("dtstamp") > before.decoded("dtstamp")

    def test_a_rescheduled_meeting_keeps_its_uid_raises_its_sequence_and_moves_in_utc(self) -> None:
        accepted = accept_meeting(proposal(), MENTEE, NOW)
        new_start = STARTS + timedelta(days=7, minutes=30)
        moved = reschedule_meeting(
            accepted, MENTEE, starts_at=new_start, ends_at=new_start + timedelta(hours=1), now=NOW
        )
        _, before = parse_single(meeting_ics(at(accepted), time_zone="America/New_York"))
        _, after = parse_single(meeting_ics(at(moved, LATER), time_zone="America/New_York"))

        assert after["uid"] == before["uid"]
        assert after.decoded("sequence") == before.decoded("sequence") + 1 == 2  # accepted 1, moved 2
        assert after["status"] == "TENTATIVE"
        assert utc_start_end(after) == (new_start, new_start + timedelta(hours=1))

    def test_a_cancelled_meeting_is_the_same_event_with_status_cancelled_and_no_itip_method(self) -> None:
        accepted = accept_meeting(proposal(), MENTEE, NOW)
        calendar, event = parse_single(meeting_ics(at(cancel_meeting(accepted, MENTOR), LATER)))

        assert "method" not in calendar
        assert event["status"] == "CANCELLED"
        assert str(event["uid"]) == "meeting-42@mentorloom"
        assert event.decoded("sequence") == 2  # accepted 1, cancelled 2

    def test_organizer_and_attendees_are_included_only_when_given(self) -> None:
        _, bare = parse_single(meeting_ics(at(proposal())))
        _, addressed = parse_single(
            meeting_ics(
                at(proposal()),
                organizer=CalendarParty("noreply@mentorloom.example", "Mentorloom"),
                attendees=[CalendarParty("ada@example.org", "Ada"), CalendarParty("bo@example.org")],
            )
        )

        assert "organizer" not in bare
        assert "attendee" not in bare
        assert "method" not in Calendar.from_ical(meeting_ics(at(proposal()), attendees=[CalendarParty("a@b.c")]))
        assert str(addressed["organizer"]) == "mailto:noreply@mentorloom.example"
        assert addressed["organizer"].params["CN"] == "Mentorloom"
        assert sorted(str(a) for a in addressed.get("attendee", [])) == [
            "mailto:ada@example.org",
            "mailto:bo@example.org",
        ]

    def test_summary_and_description_leak_no_ids_of_people_or_the_match(self) -> None:
        ics = meeting_ics(at(proposal()), time_zone="Europe/Berlin")
        _, event = parse_single(ics)

        for private in (MENTOR, MENTEE, "match-secret-17"):
            assert private.encode() not in ics
        assert str(event["summary"]) == "Mentoring meeting"
        assert event["class"] == "PRIVATE"

    def test_dtstamp_and_last_modified_are_the_last_change_and_created_the_proposal(self) -> None:
        _, event = parse_single(meeting_ics(at(accept_meeting(proposal(), MENTEE, NOW), LATER)))

        # RFC 5545 3.8.7.2: without METHOD, DTSTAMP is when the information was last revised, not when it was read.
        assert (event.decoded("dtstamp"), event.decoded("last-modified"), event.decoded("created")) == (
            LATER,
            LATER,
            NOW,
        )

    @pytest.mark.parametrize("accepted", [False, True])
    def test_an_open_meeting_has_a_display_alarm_fifteen_minutes_before_it_starts(self, accepted: bool) -> None:
        meeting = accept_meeting(proposal(), MENTEE, NOW) if accepted else proposal()
        _, event = parse_single(meeting_ics(at(meeting), time_zone="America/New_York"))

        alarms = event.walk("VALARM")
        assert len(alarms) == 1
        assert str(alarms[0]["action"]) == "DISPLAY"
        assert str(alarms[0]["description"]) == "Mentoring meeting", "RFC 5545 requires one on a DISPLAY alarm"
        assert alarms[0].decoded("trigger") == -timedelta(minutes=15)
        assert alarms[0]["trigger"].params.get("RELATED", "START") == "START"

    def test_a_cancelled_meeting_has_no_alarm(self) -> None:
        _, event = parse_single(meeting_ics(at(cancel_meeting(proposal(), MENTEE), LATER)))

        assert event.walk("VALARM") == []

    def test_an_unknown_zone_is_rejected(self) -> None:
        with pytest.raises(InvalidAvailabilityError):
            meeting_ics(at(proposal()), time_zone="Nowhere/Special")


class TestParticipantFeed:
    def test_a_feed_lists_every_meeting_in_order_with_its_own_status_and_no_method(self) -> None:
        first = accept_meeting(proposal("meeting-1", STARTS), MENTEE, NOW)
        second = proposal("meeting-2", STARTS + timedelta(days=14))
        third = cancel_meeting(proposal("meeting-3", STARTS + timedelta(days=7)), MENTEE)

        ics = participant_feed([at(second), at(third), at(first)], time_zone="Australia/Sydney", name="My mentoring")
        calendar = Calendar.from_ical(ics)
        events = calendar.walk("VEVENT")

        assert "method" not in calendar
        assert str(calendar["x-wr-calname"]) == "My mentoring"
        assert [str(e["uid"]) for e in events] == [
            "meeting-1@mentorloom",
            "meeting-3@mentorloom",
            "meeting-2@mentorloom",
        ]
        assert [str(e["status"]) for e in events] == ["CONFIRMED", "CANCELLED", "TENTATIVE"]
        assert [e.decoded("sequence") for e in events] == [1, 1, 0]  # accepted, cancelled, proposed
        assert [utc_start_end(e)[0] for e in events] == [
            STARTS,
            STARTS + timedelta(days=7),
            STARTS + timedelta(days=14),
        ]
        assert len(calendar.walk("VTIMEZONE")) == 1

    def test_a_feed_spanning_sydney_dst_shows_local_times_that_shift_by_an_hour(self) -> None:
        # The same UTC time of day before and after Sydney falls back on 5 April 2026.
        before = proposal("meeting-1", datetime(2026, 3, 30, 22, 0, tzinfo=UTC))
        after = proposal("meeting-2", datetime(2026, 4, 6, 22, 0, tzinfo=UTC))
        calendar = Calendar.from_ical(participant_feed([at(before), at(after)], time_zone="Australia/Sydney"))

        local_hours = [
            e.decoded("dtstart").astimezone(ZoneInfo("Australia/Sydney")).hour for e in calendar.walk("VEVENT")
        ]
        assert local_hours == [9, 8]
        assert [utc_start_end(e)[0] for e in calendar.walk("VEVENT")] == [before.starts_at, after.starts_at]

    def test_a_feed_asks_to_be_polled_hourly(self) -> None:
        calendar = Calendar.from_ical(participant_feed([at(proposal())], time_zone="Europe/London"))

        assert calendar.decoded("refresh-interval") == timedelta(hours=1)
        assert calendar["refresh-interval"].params["VALUE"] == "DURATION"
        assert str(calendar["x-published-ttl"]) == "PT1H"

    def test_an_empty_feed_is_still_a_valid_calendar(self) -> None:
        calendar = Calendar.from_ical(participant_feed([], time_zone="Europe/London"))

        assert calendar.walk("VEVENT") == []
        assert str(calendar["prodid"]) == "-//Mentorloom//Scheduling//EN"
