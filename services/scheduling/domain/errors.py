"""Errors the scheduling domain raises; the service layer maps them onto HTTP 409/403/422."""

from __future__ import annotations

from datetime import datetime


class SchedulingDomainError(Exception):
    """Base class: a rule of the scheduling domain was broken."""


class InvalidProgramRhythmError(SchedulingDomainError):
    """A program's duration, cadence or milestones cannot produce a plan."""


class IllegalTransitionError(SchedulingDomainError):
    """A check-in or meeting was asked to move to a state its current state does not lead to."""

    def __init__(self, subject: str, current: str, target: str, reason: str = "") -> None:
        self.subject = subject
        self.current = current
        self.target = target
        detail = f": {reason}" if reason else ""
        super().__init__(f"{subject} cannot go from {current} to {target}{detail}")


class NotAParticipantError(SchedulingDomainError):
    """Someone who is not one of the meeting's two participants tried to act on it."""


class NotPermittedError(SchedulingDomainError):
    """A participant tried an action reserved for the other participant (e.g. accepting their own proposal)."""


class InvalidAvailabilityError(SchedulingDomainError):
    """An availability window, time zone or slot request is malformed."""


class InvalidMeetingTimeError(SchedulingDomainError):
    """A meeting ends before it starts, or is proposed or moved into the past or past the program's end.

    ``field`` names the request field at fault (``starts_at`` or ``ends_at``) and ``value`` its value, so the answer
    can name both."""

    def __init__(self, message: str, value: datetime, field: str = "starts_at") -> None:
        self.field = field
        self.value = value
        super().__init__(message)


class NaiveDatetimeError(SchedulingDomainError):
    """A datetime without a time zone reached the domain; every instant here must be aware."""


def require_aware(value: datetime, name: str) -> None:
    """Reject naive datetimes: a naive value is ambiguous across the time zones this domain bridges."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
