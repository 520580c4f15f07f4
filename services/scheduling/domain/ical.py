"""iCalendar output for meetings, built with the ``icalendar`` library.

* One meeting's ``.ics`` is a plain calendar object (RFC 5545, no METHOD) that the participant adds to their own
  calendar; a cancelled meeting is the same event with ``STATUS:CANCELLED``. It is not an iTIP message (RFC 5546):
  REQUEST, CANCEL and even PUBLISH require an ORGANIZER (REQUEST and CANCEL ATTENDEEs too), which would carry
  e-mail addresses we do not disclose, and Outlook and others treat a REQUEST without them as a broken
  invitation. Without METHOD clients import it as an event (Outlook reads it as PUBLISH).
* A participant's feed is a plain published calendar (no METHOD either) listing their meetings;
  cancelled ones stay in it with ``STATUS:CANCELLED`` so subscribed clients remove them.
* UIDs are stable per meeting (``<meeting_id>@mentorloom``) and ``SEQUENCE`` is the meeting's sequence, which
  rises on its acceptance, every reschedule and its cancellation (RFC 5546 2.1.4 counts a change of STATUS as
  significant), so clients replace the copy they hold instead of adding one.
* Times are written either in UTC (``...Z``) or, when a time zone is given, in that zone with a generated
  VTIMEZONE, so a participant's calendar shows the meeting in their own zone even across DST changes.
* ``DTSTAMP`` and ``LAST-MODIFIED`` are when the meeting last changed here, ``CREATED`` when it was proposed (RFC
  5545 3.8.7.2: without METHOD, DTSTAMP is the last revision in the calendar store), not the time of the download:
  so an unchanged feed is the same bytes on every poll (its ETag gives a 304), and of two copies with the same
  SEQUENCE a client keeps the later one.
* A proposed or accepted meeting carries a display alarm (``VALARM``, ``TRIGGER:-PT15M``) as its reminder; a
  cancelled, held or missed one none. Clients may drop alarms of subscribed calendars (Apple and Google do by
  default); the user's own settings decide there.
* SUMMARY and DESCRIPTION are generic on purpose: no names, goals or notes of the relationship leak into
  calendars, which are often shared or synced to third parties.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration, vText

from services.scheduling.domain.errors import InvalidAvailabilityError, require_aware
from services.scheduling.domain.rhythm import OPEN_MEETING_STATES, Meeting, MeetingState

PRODID = "-//Mentorloom//Scheduling//EN"
UID_DOMAIN = "mentorloom"
DEFAULT_SUMMARY = "Mentoring meeting"
DEFAULT_DESCRIPTION = "Peer-mentoring meeting arranged in Mentorloom. Open Mentorloom for the details."
DEFAULT_FEED_NAME = "Mentorloom meetings"
#: How long before an open meeting its alarm goes off.
ALARM_LEAD = timedelta(minutes=15)
#: How often a feed asks to be polled (RFC 7986 REFRESH-INTERVAL; X-PUBLISHED-TTL for Outlook and Apple).
FEED_REFRESH = timedelta(hours=1)

_STATUS = {
    MeetingState.PROPOSED: "TENTATIVE",
    MeetingState.ACCEPTED: "CONFIRMED",
    MeetingState.HELD: "CONFIRMED",
    MeetingState.MISSED: "CONFIRMED",
    MeetingState.CANCELLED: "CANCELLED",
}
# VTIMEZONE rules are generated for this margin around the meetings: wide enough for any client that
# expands them, far smaller than icalendar's default 1970–2038 span.
_VTIMEZONE_MARGIN = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class CalendarParty:
    """An ORGANIZER or ATTENDEE: an e-mail address and an optional display name."""

    email: str
    name: str | None = None

    def address(self) -> vCalAddress:
        address = vCalAddress(f"mailto:{self.email}")
        if self.name:
            address.params["CN"] = vText(self.name)
        return address


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """A meeting as a calendar shows it, with when it was proposed and last changed (its revision times)."""

    meeting: Meeting
    created_at: datetime
    last_modified: datetime

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")
        require_aware(self.last_modified, "last_modified")


def meeting_uid(meeting_id: str) -> str:
    """The meeting's iCalendar UID; never changes across reschedules and cancellation."""
    return f"{meeting_id}@{UID_DOMAIN}"


def ical_status(state: MeetingState) -> str:
    return _STATUS[state]


def load_zone(time_zone: str | None) -> ZoneInfo | None:
    """The zone named (None: UTC); InvalidAvailabilityError when this tzdata cannot load it."""
    if time_zone is None:
        return None
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidAvailabilityError(f"unknown time zone {time_zone!r}") from exc


def _alarm() -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", DEFAULT_SUMMARY)
    alarm.add("trigger", -ALARM_LEAD)
    return alarm


def _event(
    entry: CalendarEntry,
    *,
    zone: ZoneInfo | None,
    summary: str,
    description: str,
    organizer: CalendarParty | None,
    attendees: Sequence[CalendarParty],
) -> Event:
    meeting = entry.meeting
    event = Event()
    event.add("uid", meeting_uid(meeting.meeting_id))
    event.add("dtstamp", entry.last_modified.astimezone(UTC))
    event.add("created", entry.created_at.astimezone(UTC))
    event.add("last-modified", entry.last_modified.astimezone(UTC))
    target = zone if zone is not None else UTC
    event.add("dtstart", meeting.starts_at.astimezone(target))
    event.add("dtend", meeting.ends_at.astimezone(target))
    event.add("sequence", meeting.sequence)
    event.add("status", ical_status(meeting.state))
    event.add("summary", summary)
    event.add("description", description)
    event.add("class", "PRIVATE")
    event.add("transp", "TRANSPARENT" if meeting.state is MeetingState.CANCELLED else "OPAQUE")
    if organizer is not None:
        event.add("organizer", organizer.address())
    for attendee in attendees:
        address = attendee.address()
        address.params["ROLE"] = vText("REQ-PARTICIPANT")
        event.add("attendee", address)
    if meeting.state in OPEN_MEETING_STATES:
        event.add_component(_alarm())
    return event


def _calendar(events: Sequence[Event], zone: ZoneInfo | None, meetings: Sequence[Meeting]) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    for event in events:
        calendar.add_component(event)
    if zone is not None and meetings:
        first: date = min(m.starts_at for m in meetings).date() - _VTIMEZONE_MARGIN
        last: date = max(m.ends_at for m in meetings).date() + _VTIMEZONE_MARGIN
        calendar.add_missing_timezones(first_date=first, last_date=last)
    return calendar


def meeting_ics(
    entry: CalendarEntry,
    *,
    time_zone: str | None = None,
    summary: str = DEFAULT_SUMMARY,
    description: str = DEFAULT_DESCRIPTION,
    organizer: CalendarParty | None = None,
    attendees: Sequence[CalendarParty] = (),
) -> bytes:
    """The ``.ics`` download of one meeting: one event, no METHOD (see the module's docstring)."""
    zone = load_zone(time_zone)
    event = _event(
        entry,
        zone=zone,
        summary=summary,
        description=description,
        organizer=organizer,
        attendees=attendees,
    )
    return bytes(_calendar([event], zone, [entry.meeting]).to_ical())


def participant_feed(
    entries: Iterable[CalendarEntry],
    *,
    time_zone: str | None = None,
    name: str = DEFAULT_FEED_NAME,
) -> bytes:
    """A participant's subscribable feed: every meeting given, ordered by start, in their zone or UTC; the same
    entries give the same bytes (nothing in it depends on when it is read)."""
    zone = load_zone(time_zone)
    ordered = sorted(entries, key=lambda e: (e.meeting.starts_at, e.meeting.meeting_id))
    events = [
        _event(
            e,
            zone=zone,
            summary=DEFAULT_SUMMARY,
            description=DEFAULT_DESCRIPTION,
            organizer=None,
            attendees=(),
        )
        for e in ordered
    ]
    calendar = _calendar(events, zone, [e.meeting for e in ordered])
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", FEED_REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(FEED_REFRESH))
    if time_zone is not None:
        calendar.add("x-wr-timezone", time_zone)
    return bytes(calendar.to_ical())
