"""Event handlers of the feedback projection: one function, dispatching on the event's data type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback import application as app
from shared.clock import Clock, SystemClock
from shared.events.envelope import EventEnvelope
from shared.events.models import (
    CheckInDue,
    CheckInMissed,
    CheckInReminderDue,
    EnrollmentChanged,
    EventData,
    MatchAccepted,
    MatchEnded,
    MeetingCompleted,
    ProfileErased,
    ProfileUpdated,
    ProgramUpdated,
)
from shared.events.registry import MATCHING_TOPIC, PROFILES_TOPIC, SCHEDULING_TOPIC
from shared.projection import ForgetPerson, forget_after_commit

CONSUMED_TOPICS = (PROFILES_TOPIC, MATCHING_TOPIC, SCHEDULING_TOPIC)

EventHandler = Callable[[AsyncSession, EventEnvelope[EventData]], Awaitable[None]]


def make_handler(clock: Clock | None = None, forget_kept: ForgetPerson | None = None) -> EventHandler:
    """The projection's handler; events it does not need (e.g. MatchProposed) are acknowledged and ignored.

    `clock` (default: the system's) decides which check-ins are already due, and whether the first-meeting milestone has
    passed, when the match's health is assessed. `forget_kept(person_id, tenant_id)` drops the answers the API keeps in
    Redis for Idempotency-Key retries in the tenant that name an erased person (a pulse answer holds their note, an
    agreement their answers); it runs after the consumer's transaction commits, for every erasure delivered, as the
    erasure itself does its whole work again.
    """
    service_clock: Clock = clock or SystemClock()

    async def handle(session: AsyncSession, envelope: EventEnvelope[EventData]) -> None:
        data = envelope.data
        match data:
            case ProgramUpdated():
                await app.apply_program_updated(session, data, service_clock.now())
            case ProfileUpdated():
                await app.apply_profile_updated(session, data)
            case EnrollmentChanged():
                await app.apply_enrollment_changed(session, data)
            case ProfileErased():
                await app.apply_profile_erased(session, data, service_clock.now())
                forget_after_commit(session, forget_kept, data.tenant_id, data.person_id)
            case MatchAccepted():
                await app.apply_match_accepted(session, data)
            case MatchEnded():
                await app.apply_match_ended(session, data)
            case CheckInDue():
                await app.apply_check_in_due(session, data, service_clock.now())
            case CheckInMissed():
                await app.apply_check_in_missed(session, data, service_clock.now())
            case MeetingCompleted():
                await app.apply_meeting_completed(session, data, service_clock.now())
            case CheckInReminderDue():
                return  # for the participants (a notification service); the check-in's pulses open when it is due
            case _:
                return

    return handle
