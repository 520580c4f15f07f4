"""CheckInReminderDue: the sweeper writes it to the outbox with the reminder row, once per check-in."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.scheduling.application.reminders import reminders_of_person
from services.scheduling.application.sweeper import event_id, sweep
from services.scheduling.tests.integration.conftest import START, Feeder, rows, scalar
from services.scheduling.tests.integration.scenario import Scenario
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events.envelope import decode
from shared.events.models import CheckInReminderDue
from shared.events.values import CheckInKind, RelationshipPhase

pytestmark = pytest.mark.integration

REMINDER = "org.mentorloom.check-in.reminder-due.v1"


async def reminder_events(engine: AsyncEngine) -> list[CheckInReminderDue]:
    """The CheckInReminderDue rows of the outbox, decoded as a subscriber reads them."""
    found = await rows(
        engine, "SELECT headers::text, value FROM outbox WHERE headers::jsonb->>'ce_type' = :t ORDER BY id", t=REMINDER
    )
    events = []
    for headers, value in found:
        data = decode([(name, v.encode()) for name, v in json.loads(headers).items()], bytes(value)).data
        assert isinstance(data, CheckInReminderDue)
        events.append(data)
    return events


async def first_check_in(engine: AsyncEngine, match_id: object) -> Any:
    found = await rows(
        engine,
        "SELECT check_in_id, occurrence_key, due_at, remind_at, kind, phase FROM check_ins WHERE match_id = :m "
        "ORDER BY due_at LIMIT 1",
        m=match_id,
    )
    return found[0]


async def test_a_check_in_reminder_is_in_the_outbox_once_with_what_a_notification_needs(
    db: AsyncEngine, feed: Feeder, clock: MovableClock
) -> None:
    s = Scenario()
    match = s.match(START)
    await feed(s.program(reminder_lead_hours=48), match)
    check_in_id, occurrence_key, due_at, remind_at, kind, phase = await first_check_in(db, match.match_id)
    sessions = session_factory(db)

    clock.set(due_at - timedelta(hours=47))
    assert (await sweep(sessions, clock, batch_size=100)).reminders == 1
    assert (await sweep(sessions, clock, batch_size=100)).reminders == 0

    events = await reminder_events(db)
    assert events == [
        CheckInReminderDue(
            tenant_id=s.tenant_id,
            check_in_id=check_in_id,
            match_id=match.match_id,
            program_id=s.program_id,
            mentee_person_id=match.mentee_person_id,
            mentor_person_id=match.mentor_person_id,
            occurrence_key=occurrence_key,
            due_at=due_at,
            remind_at=remind_at,
            phase=RelationshipPhase(phase),
            kind=CheckInKind(kind),
        )
    ]
    assert remind_at == due_at - timedelta(hours=48)
    envelope = await rows(db, "SELECT key, headers::jsonb->>'ce_id', headers::jsonb->>'ce_subject' FROM outbox")
    assert [tuple(r) for r in envelope] == [
        (str(match.match_id), str(event_id(occurrence_key, "reminder")), str(check_in_id))
    ]
    assert await scalar(db, "SELECT count(*) FROM reminders WHERE check_in_id = :c", c=check_in_id) == 1


async def test_two_sweepers_running_concurrently_emit_each_reminder_once(
    db: AsyncEngine, feed: Feeder, clock: MovableClock, migrated: str
) -> None:
    s = Scenario()
    for _ in range(12):
        await feed(s.match(START))
    # A long lead puts many check-ins in their reminder window at once.
    await feed(s.program(check_in_cadence_days=7, reminder_lead_hours=336))
    clock.set(START + timedelta(days=20))
    expected = int(
        await scalar(
            db,
            "SELECT count(*) FROM check_ins WHERE remind_at <= :now AND due_at > :now AND state = 'scheduled'",
            now=clock.now(),
        )
    )
    assert expected > 12

    async def replica() -> None:
        engine = create_async_engine(migrated, pool_size=2)
        try:
            await sweep(session_factory(engine), clock, batch_size=5)
        finally:
            await engine.dispose()

    await asyncio.gather(replica(), replica())
    await asyncio.gather(replica(), replica())  # and once more: nothing new

    events = await reminder_events(db)
    assert len(events) == expected
    assert len({e.check_in_id for e in events}) == expected, "one event per check-in"
    recorded = {r[0] for r in await rows(db, "SELECT check_in_id FROM reminders")}
    assert recorded == {e.check_in_id for e in events}, "an event for every reminder row and no other"


async def test_no_reminder_event_for_a_cancelled_or_already_due_check_in_nor_one_of_an_ended_match(
    db: AsyncEngine, feed: Feeder, clock: MovableClock
) -> None:
    s = Scenario()
    ended, running = s.match(START), s.match(START)
    await feed(s.program(check_in_cadence_days=3, reminder_lead_hours=336), ended, running)
    await feed(s.end(ended, START + timedelta(days=1)))
    now = START + timedelta(days=20)
    # One check-in of the running match is already due (its reminder window passed unswept), one was cancelled by
    # a new plan: neither gets a reminder.
    swept_due, cancelled = (
        r[0]
        for r in await rows(
            db,
            "SELECT check_in_id FROM check_ins WHERE match_id = :m AND due_at > :now ORDER BY due_at LIMIT 2",
            m=running.match_id,
            now=now,
        )
    )
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE check_ins SET state = 'due', became_due_at = :now WHERE check_in_id = :c"),
            {"now": now, "c": swept_due},
        )
        await conn.execute(
            text("UPDATE check_ins SET state = 'cancelled', settled_at = :now WHERE check_in_id = :c"),
            {"now": now, "c": cancelled},
        )
    reminded = {
        r[0]
        for r in await rows(
            db,
            "SELECT check_in_id FROM check_ins WHERE match_id = :m AND state = 'scheduled' "
            "AND remind_at <= :now AND due_at > :now",
            m=running.match_id,
            now=now,
        )
    }
    assert reminded, "the running match has check-ins to remind of"
    clock.set(now)

    await sweep(session_factory(db), clock, batch_size=100)

    events = await reminder_events(db)
    assert {e.check_in_id for e in events} == reminded
    assert {e.match_id for e in events} == {running.match_id}


async def test_a_check_in_being_cancelled_while_the_sweeper_runs_gets_no_reminder(
    db: AsyncEngine, feed: Feeder, clock: MovableClock
) -> None:
    s = Scenario()
    match = s.match(START)
    await feed(s.program(reminder_lead_hours=48), match)
    check_in_id, _, due_at, _, _, _ = await first_check_in(db, match.match_id)
    clock.set(due_at - timedelta(hours=1))

    # The match's end is cancelling the check-in in a transaction not yet committed when the sweep runs.
    async with db.connect() as cancelling:
        transaction = await cancelling.begin()
        await cancelling.execute(
            text("UPDATE check_ins SET state = 'cancelled', settled_at = :now WHERE check_in_id = :c"),
            {"now": clock.now(), "c": check_in_id},
        )
        report = await asyncio.wait_for(sweep(session_factory(db), clock, batch_size=100), 30)
        await transaction.commit()

    assert report.reminders == 0
    assert await reminder_events(db) == []
    assert await scalar(db, "SELECT count(*) FROM reminders") == 0


async def test_a_participants_reminder_of_a_check_in_cancelled_later_says_it_was_cancelled(
    db: AsyncEngine, feed: Feeder, clock: MovableClock
) -> None:
    s = Scenario()
    ended, running = s.match(START), s.match(START)
    await feed(s.program(reminder_lead_hours=48), ended, running)
    ended_check_in, _, due_at, _, _, _ = await first_check_in(db, ended.match_id)
    running_check_in = (await first_check_in(db, running.match_id))[0]
    clock.set(due_at - timedelta(hours=47))
    assert (await sweep(session_factory(db), clock, batch_size=100)).reminders == 2
    await feed(s.end(ended, clock.now()))  # the match ends after its check-in was reminded

    async with session_factory(db)() as session:
        listed = {
            person: [
                (r.check_in_id, r.check_in_state) for r in await reminders_of_person(session, s.tenant_id, person, 10)
            ]
            for person in (ended.mentee_person_id, ended.mentor_person_id, running.mentee_person_id)
        }

    assert listed == {
        ended.mentee_person_id: [(ended_check_in, "cancelled")],
        ended.mentor_person_id: [(ended_check_in, "cancelled")],
        running.mentee_person_id: [(running_check_in, "scheduled")],
    }
