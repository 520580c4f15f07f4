"""Whether a program still takes new matches: not once it is closed or archived, nor after its last day."""

from __future__ import annotations

from datetime import date

from shared.events.values import ProgramStatus

#: Statuses in which a program takes no new proposals (its running matches are left to the end-of-program sweep).
NO_NEW_MATCHES = frozenset({ProgramStatus.CLOSED, ProgramStatus.ARCHIVED})

#: Statuses that also end the running matches at once, like the program's last day passing. Closing a program stops
#: its intake (open proposals lapse) while its pairs run to the planned end; archiving deletes the program, so
#: nothing of it may keep running (scheduling would keep check-ins of a program nobody can reach any more).
ENDS_RUNNING_MATCHES = frozenset({ProgramStatus.ARCHIVED})


def why_no_new_matches(status: ProgramStatus, last_day: date, today: date) -> str | None:
    """The reason a coordinator or mentee reads when nothing new may start in the program, or None when it may."""
    if status in NO_NEW_MATCHES:
        return f"the program is {status.value}: it takes no new matches"
    if today > last_day:
        return f"the program ended on {last_day.isoformat()}: it takes no new matches"
    return None
