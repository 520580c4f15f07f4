"""The scheduling HTTP API: slots, meetings, check-ins, reminders, calendars.

Who may do what: participants see and act on their own matches' meetings; coordinators (and operators) see the
schedules and overdue check-ins of the programs they manage; everything is scoped by the token's tenant, and a
resource the caller may not see is a 404 (no existence oracle). The calendar feed alone takes no bearer token:
the unguessable token in its URL is the credential.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduling.adapters.orm import check_ins, meetings
from services.scheduling.adapters.repository import load_person
from services.scheduling.application import calendars
from services.scheduling.application import meetings as meeting_cases
from services.scheduling.application.access import (
    NO_OVERLAPS,
    ConflictError,
    ForbiddenError,
    InvalidReferenceError,
    NotFoundError,
    OverlappingMeetingError,
    StaleVersionError,
    require_program,
    visible_match,
)
from services.scheduling.application.calendars import CalendarFile
from services.scheduling.application.reminders import reminders_of_person
from services.scheduling.domain.errors import (
    IllegalTransitionError,
    InvalidAvailabilityError,
    InvalidMeetingTimeError,
    NaiveDatetimeError,
    NotAParticipantError,
    NotPermittedError,
    SchedulingDomainError,
)
from services.scheduling.domain.model import CheckInKind, CheckInState
from services.scheduling.domain.slots import SlotPreference, suggest_slots
from services.scheduling.entrypoints.schemas import (
    INSTANT_RANGE,
    CalendarFeedOut,
    CheckInOut,
    Instant,
    Limit,
    MeetingConflictOut,
    MeetingOut,
    ProposeMeeting,
    ReminderOut,
    RescheduleMeeting,
    SlotOut,
    SlotSuggestions,
)
from shared.auth import AnyRolePrincipal, ParticipantPrincipal, Principal
from shared.clock import Clock
from shared.events.values import MeetingOutcome
from shared.http_errors import ERROR_DESCRIPTIONS, ErrorBody, error_json, error_responses, install_domain_errors
from shared.paging import Offset, OffsetPage
from shared.preconditions import IfMatchValue, if_match_header, set_etag
from shared.service import API_PREFIX, Runtime, Transaction, create_service_app
from shared.settings import clock_of

CALENDAR_MEDIA_TYPE = "text/calendar"
FEED_PATH = API_PREFIX + "/calendar-feeds/{token}"
FeedToken = Annotated[str, Path(min_length=20, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(401, 403, 404, *codes)


OVERLAP_CODE = "meeting_overlap"
_OVERLAP_EXAMPLE = error_json(
    OVERLAP_CODE,
    "this time overlaps an open meeting: your meeting 0b3c6f0e-5d7a-4a52-9a1e-2f4f1c6b8d11 in another match is "
    "already accepted from 2027-03-16T16:00:00+00:00 to 2027-03-16T17:00:00+00:00; pick another time",
)
_OVERLAP_EXAMPLE["detail"]["conflict"] = {
    "meeting_id": "0b3c6f0e-5d7a-4a52-9a1e-2f4f1c6b8d11",
    "starts_at": "2027-03-16T16:00:00Z",
    "ends_at": "2027-03-16T17:00:00Z",
}
# The 409 of a booking: the common error body, and for meeting_overlap the meeting in the way as data too.
_BOOKING_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": f"{ERROR_DESCRIPTIONS[409]} With error ``{OVERLAP_CODE}``, ``detail.conflict`` is the open "
        "meeting in the way (a MeetingConflictOut: starts_at, ends_at and meeting_id, null when that meeting is in a "
        "match you are not part of).",
        "content": {"application/json": {"example": _OVERLAP_EXAMPLE}},
    }
}

CALENDAR_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {CALENDAR_MEDIA_TYPE: {"schema": {"type": "string"}}},
        "description": "iCalendar (RFC 5545), with an ETag and Last-Modified.",
    },
    304: {"description": "The copy named by If-None-Match (or If-Modified-Since) is current."},
}


def _not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.2.2: If-None-Match (weak comparison) decides when sent; else If-Modified-Since, at whole
    seconds as HTTP dates go. A client polling a feed gets a 304 while nothing it shows has changed."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored (RFC 9110 §13.1.3)
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def _calendar_response(request: Request, file: CalendarFile, headers: dict[str, str]) -> Response:
    """The calendar with an ETag (its content) and Last-Modified, or a 304 when the client's copy is current."""
    etag = '"' + hashlib.sha256(file.body).hexdigest()[:32] + '"'
    headers = {**headers, "ETag": etag}
    if file.last_modified is not None:
        headers["Last-Modified"] = format_datetime(file.last_modified.astimezone(UTC), usegmt=True)
    if _not_modified(request, etag, file.last_modified):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if request.method == "HEAD":
        # RFC 9110 §9.3.2: the GET's headers (its Content-Length too), no body; clients and proxies probe this way.
        headers["Content-Length"] = str(len(file.body))
        return Response(media_type=CALENDAR_MEDIA_TYPE, headers=headers)
    return Response(file.body, media_type=CALENDAR_MEDIA_TYPE, headers=headers)


def clock(request: Request) -> Clock:
    found: Clock = request.app.state.clock
    return found


Session = Transaction  # committed before the response is sent (shared.service)
Now = Annotated[Clock, Depends(clock)]
MatchId = Annotated[uuid.UUID, Path()]


def _person(principal: Principal) -> uuid.UUID:
    if principal.person_id is None:
        raise ForbiddenError("this token names no person")
    return principal.person_id


router = APIRouter(tags=["scheduling"])


@router.get("/matches/{match_id}/slots", response_model=SlotSuggestions, responses=_errors(409, 422))
async def suggest_meeting_slots(
    match_id: MatchId,
    principal: AnyRolePrincipal,
    db: Session,
    now: Now,
    start: Annotated[
        Instant | None, Query(description=f"Earliest slot start, with a UTC offset (default: now). {INSTANT_RANGE}")
    ] = None,
    days: Annotated[int, Query(ge=1, le=90, description="Horizon in days from start.")] = 14,
    duration_minutes: Annotated[int, Query(ge=15, le=480, description="Length of the meeting to find room for.")] = 60,
    limit: Annotated[int, Query(ge=1, le=20, description="How many slots to suggest (not a page: no offset).")] = 5,
    preference: Annotated[
        SlotPreference,
        Query(
            description="earliest: the first free slots; balanced: those nearest early afternoon in both people's "
            "local time, then the earliest."
        ),
    ] = SlotPreference.EARLIEST,
) -> SlotSuggestions:
    """Slots when both people of the match are available, each in their own time zone (DST-correct), and neither
    has a proposed or accepted meeting (with each other or anyone else)."""
    match = await visible_match(db, principal, match_id)
    mentee = await load_person(db, match.tenant_id, match.mentee_person_id)
    mentor = await load_person(db, match.tenant_id, match.mentor_person_id)
    if mentee.availability is None or mentor.availability is None:
        raise ConflictError("the availability of one of the two people is not known")
    begin = now.now() if start is None else start
    end = begin + timedelta(days=days)
    pair = (match.mentee_person_id, match.mentor_person_id)
    slots = suggest_slots(
        mentee.availability,
        mentor.availability,
        start=begin,
        end=end,
        duration=timedelta(minutes=duration_minutes),
        limit=limit,
        preference=preference,
        busy=await meeting_cases.busy_times(db, match.tenant_id, pair, begin, end),
    )
    return SlotSuggestions(match_id=match_id, slots=[SlotOut(starts_at=s.starts_at, ends_at=s.ends_at) for s in slots])


@router.get("/matches/{match_id}/check-ins", response_model=OffsetPage[CheckInOut], responses=_errors())
async def list_match_check_ins(
    match_id: MatchId, principal: AnyRolePrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[CheckInOut]:
    """The match's check-ins, earliest due first."""
    match = await visible_match(db, principal, match_id)
    rows = await db.execute(
        select(check_ins)
        .where(check_ins.c.match_id == match.match_id)
        .order_by(check_ins.c.due_at, check_ins.c.check_in_id)
        .limit(limit + 1)
        .offset(offset)
    )
    return OffsetPage[CheckInOut].of(rows, offset, limit, CheckInOut.of)


@router.get("/matches/{match_id}/meetings", response_model=OffsetPage[MeetingOut], responses=_errors())
async def list_match_meetings(
    match_id: MatchId, principal: AnyRolePrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[MeetingOut]:
    """The match's meetings, earliest start first."""
    match = await visible_match(db, principal, match_id)
    rows = await db.execute(
        select(meetings)
        .where(meetings.c.match_id == match.match_id)
        .order_by(meetings.c.starts_at, meetings.c.meeting_id)
        .limit(limit + 1)
        .offset(offset)
    )
    return await _meeting_page(db, principal, list(rows), offset, limit)


@router.post(
    "/matches/{match_id}/meetings",
    response_model=MeetingOut,
    status_code=status.HTTP_201_CREATED,
    responses={**_errors(409, 422), **_BOOKING_CONFLICT},
)
async def propose_meeting(
    match_id: MatchId, body: ProposeMeeting, principal: AnyRolePrincipal, db: Session, now: Now, response: Response
) -> MeetingOut:
    """Either participant proposes a meeting; the other accepts it. A time overlapping a proposed or accepted
    meeting of either person (in any match) is a 409 ``meeting_overlap`` naming that meeting
    (``detail.conflict``)."""
    row = await meeting_cases.propose(
        db,
        principal,
        match_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        meeting_format=body.format,
        check_in_id=body.check_in_id,
        now=now.now(),
    )
    return await _meeting(db, principal, response, row)


MeetingId = Annotated[uuid.UUID, Path()]


IfMatch = Annotated[
    IfMatchValue | None,
    if_match_header(
        'ETag of the meeting as you read it, e.g. "3" (optional; a stale one gives 412, so two '
        "participants acting on the same read cannot overwrite each other).",
    ),
]
_WRITE: dict[int | str, dict[str, Any]] = {
    412: {"model": ErrorBody, "description": "If-Match names a version the meeting no longer has."}
}


async def _meeting(db: AsyncSession, principal: Principal, response: Response, row: Any) -> MeetingOut:
    set_etag(response, row.version)
    overlaps = await meeting_cases.overlaps_of(db, principal, [row])
    return MeetingOut.of(row, overlaps.get(row.meeting_id, NO_OVERLAPS))


async def _meeting_page(
    db: AsyncSession, principal: Principal, rows: list[Any], offset: int, limit: int
) -> OffsetPage[MeetingOut]:
    """A page of meetings, each with the meetings overlapping it (one query for the whole page)."""
    overlaps = await meeting_cases.overlaps_of(db, principal, rows[:limit])
    return OffsetPage[MeetingOut].of(
        rows, offset, limit, lambda row: MeetingOut.of(row, overlaps.get(row.meeting_id, NO_OVERLAPS))
    )


@router.get("/meetings/{meeting_id}", response_model=MeetingOut, responses=_errors())
async def read_meeting(
    meeting_id: MeetingId, principal: AnyRolePrincipal, db: Session, response: Response
) -> MeetingOut:
    row, _, _ = await meeting_cases.visible_meeting(db, principal, meeting_id)
    return await _meeting(db, principal, response, row)


@dataclass(frozen=True)
class MeetingWrite:
    """What every change of a meeting needs: who asks, the transaction, the time, the version they read."""

    principal: Principal
    db: AsyncSession
    now: datetime
    response: Response
    if_match: str | None

    async def answer(self, row: Any) -> MeetingOut:
        return await _meeting(self.db, self.principal, self.response, row)


async def meeting_write(
    principal: AnyRolePrincipal, db: Session, now: Now, response: Response, if_match: IfMatch = None
) -> MeetingWrite:
    return MeetingWrite(principal, db, now.now(), response, if_match)


Write = Annotated[MeetingWrite, Depends(meeting_write)]


@router.post(
    "/meetings/{meeting_id}/accept",
    response_model=MeetingOut,
    responses={**_errors(409), **_BOOKING_CONFLICT, **_WRITE},
)
async def accept_meeting(meeting_id: MeetingId, w: Write) -> MeetingOut:
    """The participant who did not propose (or last move) the meeting accepts it; if either person already has an
    accepted meeting overlapping it (in any match), 409 ``meeting_overlap`` naming that meeting
    (``detail.conflict``)."""
    return await w.answer(await meeting_cases.accept(w.db, w.principal, meeting_id, w.now, w.if_match))


@router.post(
    "/meetings/{meeting_id}/reschedule",
    response_model=MeetingOut,
    responses={**_errors(409, 422), **_BOOKING_CONFLICT, **_WRITE},
)
async def reschedule_meeting(meeting_id: MeetingId, body: RescheduleMeeting, w: Write) -> MeetingOut:
    """Either participant moves an open meeting; into a time taken by another open meeting of either person, 409
    ``meeting_overlap`` naming it (``detail.conflict``)."""
    row = await meeting_cases.reschedule(
        w.db, w.principal, meeting_id, starts_at=body.starts_at, ends_at=body.ends_at, now=w.now, if_match=w.if_match
    )
    return await w.answer(row)


@router.post("/meetings/{meeting_id}/cancel", response_model=MeetingOut, responses={**_errors(409), **_WRITE})
async def cancel_meeting(meeting_id: MeetingId, w: Write) -> MeetingOut:
    """Either participant cancels the meeting (announced on the event stream); the check-in it was for no longer waits
    for it. If-Match names the version read."""
    return await w.answer(await meeting_cases.cancel(w.db, w.principal, meeting_id, w.now, w.if_match))


@router.post("/meetings/{meeting_id}/held", response_model=MeetingOut, responses={**_errors(409), **_WRITE})
async def mark_meeting_held(meeting_id: MeetingId, w: Write) -> MeetingOut:
    """Either participant records the meeting took place; it completes the check-in it was for."""
    return await w.answer(
        await meeting_cases.mark(w.db, w.principal, meeting_id, MeetingOutcome.HELD, w.now, w.if_match)
    )


@router.post("/meetings/{meeting_id}/missed", response_model=MeetingOut, responses={**_errors(409), **_WRITE})
async def mark_meeting_missed(meeting_id: MeetingId, w: Write) -> MeetingOut:
    """Either participant records that the meeting did not take place; unlike `held`, it completes no check-in. If-Match
    names the version read."""
    return await w.answer(
        await meeting_cases.mark(w.db, w.principal, meeting_id, MeetingOutcome.MISSED, w.now, w.if_match)
    )


@router.get("/meetings/{meeting_id}/ics", response_class=Response, responses={**CALENDAR_RESPONSE, **_errors()})
async def download_meeting_ics(
    meeting_id: MeetingId, principal: AnyRolePrincipal, db: Session, request: Request
) -> Response:
    """An .ics file to add to one's own calendar (no iTIP METHOD; STATUS:CANCELLED once cancelled), in your zone;
    DTSTAMP and LAST-MODIFIED are the meeting's last change, so a client keeps the newest copy it imported."""
    row, match, meeting = await meeting_cases.visible_meeting(db, principal, meeting_id)
    zone = calendars.NO_ZONE
    if principal.person_id is not None:
        zone = await calendars.calendar_zone(db, match.tenant_id, principal.person_id)
    file = calendars.meeting_file(calendars.calendar_entry(row, meeting.checkin_key), zone)
    return _calendar_response(
        request,
        file,
        {
            "Content-Disposition": f'attachment; filename="meeting-{row.meeting_id}.ics"',
            "Cache-Control": "private, no-cache",
        },
    )


@router.head(
    "/meetings/{meeting_id}/ics",
    response_class=Response,
    responses={**CALENDAR_RESPONSE, **_errors()},
    summary="The headers of a meeting's .ics download, without its body",
)
async def probe_meeting_ics(
    meeting_id: MeetingId, principal: AnyRolePrincipal, db: Session, request: Request
) -> Response:
    """As GET (the same ETag, Last-Modified, Content-Length and 304s), without the body."""
    return await download_meeting_ics(meeting_id, principal, db, request)


@router.get("/me/meetings", response_model=OffsetPage[MeetingOut], responses=_errors())
async def my_meetings(
    principal: ParticipantPrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[MeetingOut]:
    """Your meetings across all your matches, latest start first."""
    rows = await meeting_cases.meetings_of_person(db, principal.tenant, _person(principal), limit + 1, offset)
    return await _meeting_page(db, principal, rows, offset, limit)


@router.get("/me/reminders", response_model=OffsetPage[ReminderOut], responses=_errors())
async def my_reminders(
    principal: ParticipantPrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[ReminderOut]:
    """Your check-in reminders, newest first: one per check-in of your matches, recorded when it came within the
    program's reminder lead of its due time. Each is also published as a CheckInReminderDue event, which is how a
    notification service learns of everyone's reminders. `check_in_state` says where the check-in stands now: a
    reminder stays listed after its check-in was cancelled (the match ended) or settled."""
    rows = await reminders_of_person(db, principal.tenant, _person(principal), limit + 1, offset)
    return OffsetPage[ReminderOut].of(rows, offset, limit, ReminderOut.of)


@router.post(
    "/me/calendar-feed", response_model=CalendarFeedOut, status_code=status.HTTP_201_CREATED, responses=_errors()
)
async def create_calendar_feed(
    principal: ParticipantPrincipal, db: Session, now: Now, request: Request
) -> CalendarFeedOut:
    """Create or rotate the caller's private feed URL; a previous URL stops working."""
    token = await calendars.issue_feed_token(db, principal.tenant, _person(principal), now.now())
    if token is None:
        raise NotFoundError("you were erased from this organisation: there is no calendar to publish")
    base: str = request.app.state.feed_base_url
    return CalendarFeedOut(url=base.rstrip("/") + FEED_PATH.format(token=token))


@router.delete("/me/calendar-feed", status_code=status.HTTP_204_NO_CONTENT, responses=_errors())
async def revoke_calendar_feed(principal: ParticipantPrincipal, db: Session) -> Response:
    """Revokes your calendar feed: its URL answers 404 from now on (and this answers 404 when you have no feed)."""
    if not await calendars.revoke_feed_token(db, principal.tenant, _person(principal)):
        raise NotFoundError("no calendar feed to revoke")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/calendar-feeds/{token}",
    response_class=Response,
    responses={**CALENDAR_RESPONSE, 404: {"model": ErrorBody, "description": "Unknown or revoked feed token."}},
    summary="A participant's private iCalendar feed (no bearer token: the URL is the credential)",
)
async def calendar_feed(
    token: FeedToken,
    db: Session,
    request: Request,
) -> Response:
    """The same meetings give the same bytes: ETag and Last-Modified let a polling client get a 304."""
    file = await calendars.feed_for_token(db, token)
    if file is None:
        raise NotFoundError("unknown or revoked calendar feed")
    return _calendar_response(request, file, {"Cache-Control": "private, max-age=300"})


@router.head(
    "/calendar-feeds/{token}",
    response_class=Response,
    responses={**CALENDAR_RESPONSE, 404: {"model": ErrorBody, "description": "Unknown or revoked feed token."}},
    summary="The headers of a participant's private iCalendar feed, without its body",
)
async def probe_calendar_feed(token: FeedToken, db: Session, request: Request) -> Response:
    """As GET (the same ETag, Last-Modified, Content-Length and 304s), without the body: some calendar clients and
    proxies check a subscription this way before they fetch it."""
    return await calendar_feed(token, db, request)


ProgramId = Annotated[uuid.UUID, Path()]


@router.get("/programs/{program_id}/check-ins", response_model=OffsetPage[CheckInOut], responses=_errors(422))
async def program_schedule(
    program_id: ProgramId,
    principal: AnyRolePrincipal,
    db: Session,
    state: CheckInState | None = None,
    kind: Annotated[
        CheckInKind | None,
        Query(description="One kind only, e.g. first_meeting with state=missed: the pairs that never met in time."),
    ] = None,
    due_from: Annotated[
        Instant | None, Query(description=f"Check-ins due at or after this instant, with a UTC offset. {INSTANT_RANGE}")
    ] = None,
    due_to: Annotated[
        Instant | None, Query(description=f"Check-ins due before this instant, with a UTC offset. {INSTANT_RANGE}")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OffsetPage[CheckInOut]:
    """The check-in schedule of a program (coordinators of the program and operators), by state, kind (the
    milestones: first_meeting, midpoint_review, closing; or regular) and due time."""
    await require_program(db, principal, program_id)
    query = select(check_ins).where(check_ins.c.tenant_id == principal.tenant, check_ins.c.program_id == program_id)
    if state is not None:
        query = query.where(check_ins.c.state == state.value)
    if kind is not None:
        query = query.where(check_ins.c.kind == kind.value)
    if due_from is not None:
        query = query.where(check_ins.c.due_at >= due_from)
    if due_to is not None:
        query = query.where(check_ins.c.due_at < due_to)
    rows = await db.execute(query.order_by(check_ins.c.due_at, check_ins.c.check_in_id).limit(limit + 1).offset(offset))
    return OffsetPage[CheckInOut].of(rows, offset, limit, CheckInOut.of)


@router.get("/programs/{program_id}/overdue-check-ins", response_model=OffsetPage[CheckInOut], responses=_errors())
async def program_overdue(
    program_id: ProgramId, principal: AnyRolePrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[CheckInOut]:
    """Check-ins that came due and were not completed: still open (``due``) or already ``missed``."""
    await require_program(db, principal, program_id)
    rows = await db.execute(
        select(check_ins)
        .where(
            check_ins.c.tenant_id == principal.tenant,
            check_ins.c.program_id == program_id,
            check_ins.c.state.in_([CheckInState.DUE.value, CheckInState.MISSED.value]),
        )
        .order_by(check_ins.c.due_at, check_ins.c.check_in_id)
        .limit(limit + 1)
        .offset(offset)
    )
    return OffsetPage[CheckInOut].of(rows, offset, limit, CheckInOut.of)


@router.get("/programs/{program_id}/meeting-overlaps", response_model=OffsetPage[MeetingOut], responses=_errors())
async def program_double_bookings(
    program_id: ProgramId, principal: AnyRolePrincipal, db: Session, limit: Limit = 100, offset: Offset = 0
) -> OffsetPage[MeetingOut]:
    """The program's proposed and accepted meetings that overlap another open meeting of either person (double
    bookings made before overlaps were refused), earliest first, each with ``overlaps_with`` (coordinators of the
    program and operators). Cancelling or moving one of them clears it."""
    await require_program(db, principal, program_id)
    rows = await meeting_cases.double_booked_in_program(db, principal.tenant, program_id, limit + 1, offset)
    return await _meeting_page(db, principal, rows, offset, limit)


# The status and error code of each domain error (in this order for the reader; Starlette picks the most specific
# class in the exception's MRO). OverlappingMeetingError (409 meeting_overlap) has its own handler: it carries data.
DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (NotFoundError, 404, "not_found"),
    (ForbiddenError, 403, "forbidden"),
    (NotAParticipantError, 403, "forbidden"),
    (NotPermittedError, 403, "forbidden"),
    (ConflictError, 409, "conflict"),
    (StaleVersionError, 412, "precondition_failed"),
    (IllegalTransitionError, 409, "illegal_transition"),
    (InvalidMeetingTimeError, 422, "invalid_meeting_time"),
    (InvalidReferenceError, 422, "invalid_reference"),
    (InvalidAvailabilityError, 422, "invalid_request"),
    (NaiveDatetimeError, 422, "invalid_request"),
    (SchedulingDomainError, 409, "conflict"),
    # Last resort: dates are bounded where they are parsed (schemas.Instant), so this should not be reached.
    (OverflowError, 422, "invalid_request"),
]


async def _meeting_overlap(_: Request, exc: Exception) -> Response:
    """The common error body, with the meeting in the way as data beside the sentence naming it."""
    assert isinstance(exc, OverlappingMeetingError)
    body = error_json(OVERLAP_CODE, str(exc))
    body["detail"]["conflict"] = MeetingConflictOut.of(exc.conflict).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)


def build_app(runtime: Runtime, clock: Clock | None = None) -> FastAPI:
    app = create_service_app(
        runtime,
        title="Mentorloom scheduling",
        description="Check-in plans, meetings across time zones, reminders and calendars of mentoring matches.",
    )
    app.state.clock = clock or clock_of(runtime.settings)
    app.state.feed_base_url = getattr(runtime.settings, "calendar_feed_base_url", "http://127.0.0.1:8103")
    install_domain_errors(app, DOMAIN_ERRORS)
    app.add_exception_handler(OverlappingMeetingError, _meeting_overlap)
    app.include_router(router, prefix=API_PREFIX)
    return app


__all__ = ["build_app"]
