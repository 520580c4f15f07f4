"""Check-in plans from events, and the sweeper's exactly-once CheckInDue / CheckInMissed / reminders."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from jsonschema import Draft202012Validator
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from services.scheduling.adapters.lease import SweeperLease
from services.scheduling.adapters.repository import ID_NAMESPACE
from services.scheduling.application.sweeper import DUE as DUE_TRANSITION
from services.scheduling.application.sweeper import SweeperRunner, event_id, sweep
from services.scheduling.settings import SchedulingSettings
from services.scheduling.tests.integration.conftest import START, Feeder, outbox_types, redis_client, rows, scalar
from services.scheduling.tests.integration.scenario import Scenario
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events.envelope import decode, encode
from shared.events.models import CheckInDue, CheckInMissed
from shared.events.registry import MATCHING_TOPIC, PROFILES_TOPIC, SCHEDULING_TOPIC
from shared.events.values import MeetingFormat
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.kafka import ensure_topics, make_producer, read_topic_to_end
from shared.messaging.outbox import OutboxRelay
from tests.consumer_groups import start_group_at_the_end

pytestmark = pytest.mark.integration

DUE = "org.mentorloom.check-in.due.v1"
MISSED = "org.mentorloom.check-in.missed.v1"
SCHEMAS = Path(__file__).resolve().parents[4] / "docs" / "events" / "schemas"


async def count_checkins(engine: AsyncEngine, match_id: object, state: str | None = None) -> int:
    sql = "SELECT count(*) FROM check_ins WHERE match_id = :m" + (" AND state = :s" if state else "")
    return int(await scalar(engine, sql, m=match_id, s=state))


async def test_plans_for_several_programs_are_generated_from_events_read_off_kafka(db, settings, unique, clock):
    weekly, monthly = Scenario(), Scenario()
    programs = [
        weekly.program(check_in_cadence_days=7),
        monthly.program(check_in_cadence_days=30, milestones={"first_meeting_within_days": 10}),
    ]
    accepted = [weekly.match(START), weekly.match(START + timedelta(days=3)), monthly.match(START)]
    group = f"scheduling-test-{unique}"
    # The group reads what this test publishes, not every earlier test's events on the shared topics.
    await start_group_at_the_end(settings.kafka_bootstrap, group, [PROFILES_TOPIC, MATCHING_TOPIC])
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        # Matches first: a match whose program is not yet known is planned when the program arrives.
        for data in [*accepted, *programs]:
            topic, key, value, headers = encode(data)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()

    from services.scheduling.application.projection import make_handler

    runner = ConsumerRunner(
        name=group,
        topics=[PROFILES_TOPIC, MATCHING_TOPIC],
        bootstrap=settings.kafka_bootstrap,
        sessions=session_factory(db),
        handler=make_handler(clock),
        decode=decode,
    )
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(300):
            counts = [await count_checkins(db, m.match_id) for m in accepted]
            if all(counts):
                break
            await asyncio.sleep(0.1)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)

    weekly_counts, monthly_count = counts[:2], counts[2]
    assert all(c > 8 for c in weekly_counts), "weekly programs have a check-in about every week"
    assert 3 <= monthly_count < weekly_counts[0] // 2
    kinds = await rows(db, "SELECT DISTINCT kind FROM check_ins WHERE match_id = :m", m=accepted[0].match_id)
    assert {k[0] for k in kinds} == {"first_meeting", "regular", "midpoint_review", "closing"}
    phases = await rows(db, "SELECT DISTINCT phase FROM check_ins WHERE match_id = :m", m=accepted[0].match_id)
    assert {p[0] for p in phases} == {"initiation", "cultivation", "separation", "redefinition"}


async def test_a_program_change_replans_only_future_check_ins_and_ignores_older_snapshots(db, feed: Feeder, clock):
    s = Scenario()
    match = s.match(START)
    await feed(s.program(version=2, check_in_cadence_days=14), match)
    before = await rows(db, "SELECT occurrence_key, due_at FROM check_ins WHERE match_id = :m", m=match.match_id)
    clock.advance(timedelta(days=30))
    past = {k for k, due in before if due <= clock.now()}

    await feed(s.program(version=1, check_in_cadence_days=3))  # stale: ignored
    assert await count_checkins(db, match.match_id) == len(before)

    await feed(s.program(version=3, check_in_cadence_days=10))
    after = await rows(db, "SELECT occurrence_key, due_at, state FROM check_ins WHERE match_id = :m", m=match.match_id)
    states = {k: st for k, _, st in after}
    assert all(states[k] == "scheduled" for k in past), "history is left as it was"
    future_open = [due for _, due, st in after if st == "scheduled" and due > clock.now()]
    gaps = {b - a for a, b in zip(sorted(future_open), sorted(future_open)[1:], strict=False)}
    assert timedelta(days=10) in gaps
    assert timedelta(days=14) not in gaps
    assert any(st == "cancelled" for st in states.values())


async def test_match_ended_cancels_open_check_ins_and_open_meetings(db, feed: Feeder, clock):
    s = Scenario()
    match = s.match(START)
    await feed(s.program(), match)
    from services.scheduling.application import meetings as cases
    from shared.auth import Principal, Role

    principal = Principal(
        subject="x",
        tenant=s.tenant_id,
        roles=frozenset({Role.PARTICIPANT}),
        person_id=match.mentee_person_id,
        expires_at=START + timedelta(days=365),
    )
    async with session_factory(db)() as session, session.begin():
        await cases.propose(
            session,
            principal,
            match.match_id,
            starts_at=START + timedelta(days=20),
            ends_at=START + timedelta(days=20, hours=1),
            meeting_format=MeetingFormat.VIRTUAL,
            check_in_id=None,
            now=clock.now(),
        )
    ended_at = START + timedelta(days=10)
    await feed(s.end(match, ended_at))

    left = await rows(db, "SELECT state, due_at FROM check_ins WHERE match_id = :m", m=match.match_id)
    assert any(due <= ended_at for _, due in left)  # one came due before the end but was never swept
    assert {st for st, _ in left} == {"cancelled"}
    cancelled = await rows(db, "SELECT state, version FROM meetings WHERE match_id = :m", m=match.match_id)
    assert [tuple(r) for r in cancelled] == [("cancelled", 2)]  # the platform's change moves the ETag too
    assert (await outbox_types(db)).count("org.mentorloom.meeting.cancelled.v1") == 1
    clock.advance(timedelta(days=120))  # far past every due time and grace period of the old plan
    swept = await sweep(session_factory(db), clock, batch_size=100)
    assert (swept.due, swept.missed, swept.reminders) == (0, 0, 0)


async def _schedule_due(feed: Feeder, clock: MovableClock, matches: int) -> int:
    s = Scenario()
    for _ in range(matches):
        await feed(s.match(START))
    await feed(s.program(check_in_cadence_days=7))
    clock.advance(timedelta(days=40))
    return matches


async def test_two_sweepers_running_concurrently_emit_each_check_in_due_once(db, feed, clock, settings, migrated):
    await _schedule_due(feed, clock, matches=12)
    expected = int(await scalar(db, "SELECT count(*) FROM check_ins WHERE due_at <= :now", now=clock.now()))
    assert expected > 50

    async def replica() -> None:
        engine = create_async_engine(migrated, pool_size=2)
        client = redis_client(settings.redis_url)
        try:
            lease = SweeperLease(client, settings.sweep_lease_key, settings.sweep_lease_seconds)
            runner = SweeperRunner(session_factory(engine), lease, clock, batch_size=7, interval_seconds=0.01)
            await runner.run_once(asyncio.Event())
            # And without the lease at all: both sweep the same rows, the database still says once.
            await sweep(session_factory(engine), clock, batch_size=5)
        finally:
            await client.aclose()
            await engine.dispose()

    await asyncio.gather(replica(), replica())

    due = await rows(
        db,
        "SELECT headers::jsonb->>'ce_id', count(*) FROM outbox WHERE headers::jsonb->>'ce_type' = :t GROUP BY 1",
        t=DUE,
    )
    assert len(due) == expected
    assert all(n == 1 for _, n in due)
    assert (
        await scalar(db, "SELECT count(*) FROM check_ins WHERE state = 'scheduled' AND due_at <= :n", n=clock.now())
        == 0
    )

    # The relay puts each on the scheduling topic once.
    due_ids = {ce_id for ce_id, _ in due}
    backlog = int(await scalar(db, "SELECT count(*) FROM outbox"))
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await ensure_topics(settings.kafka_bootstrap, [SCHEDULING_TOPIC])
        assert await OutboxRelay(db, producer, service="scheduling-test").drain() == backlog
    finally:
        await producer.stop()
    seen = await read_ids(settings.kafka_bootstrap, SCHEDULING_TOPIC, due_ids)
    assert sorted(seen) == sorted(due_ids), "each CheckInDue is on the topic exactly once"


async def read_ids(bootstrap: str, topic: str, wanted: set[str]) -> list[str]:
    """The ce_ids of ``wanted`` on the topic, with repeats: read to its end, so call it once the outbox is empty."""
    return [ce_id for _, ce_id in await _records_with_ids(bootstrap, topic, wanted)]


async def _records_with_ids(
    bootstrap: str, topic: str, wanted: set[str]
) -> list[tuple[ConsumerRecord[bytes, bytes], str]]:
    """The records whose ce_id is in ``wanted`` (other tests' events share the topic), with their ce_ids."""
    found: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
    for record in await read_topic_to_end(bootstrap, topic):
        ce_id = dict(record.headers).get("ce_id", b"").decode()
        if ce_id in wanted:
            found.append((record, ce_id))
    return found


def test_event_ids_are_the_uuid5_of_the_occurrence_key_and_the_event():
    assert event_id("m:regular:3", "due") == uuid.uuid5(ID_NAMESPACE, "m:regular:3:due")
    assert event_id("m:regular:3", "missed") == uuid.uuid5(ID_NAMESPACE, "m:regular:3:missed")


async def test_swept_events_published_by_the_relay_decode_and_match_the_published_json_schemas(
    db, feed, clock, settings
):
    s = Scenario()
    match = s.match(START)
    await feed(s.program(check_in_cadence_days=7, missed_grace_days=3), match)
    first_due = await scalar(db, "SELECT min(due_at) FROM check_ins WHERE match_id = :m", m=match.match_id)
    sessions = session_factory(db)
    clock.set(first_due)
    assert (await sweep(sessions, clock, batch_size=100)).due == 1
    clock.set(first_due + timedelta(days=3))
    assert (await sweep(sessions, clock, batch_size=100)).missed == 1
    wanted = {str(ce_id) for (ce_id,) in await rows(db, "SELECT headers::jsonb->>'ce_id' FROM outbox")}

    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await ensure_topics(settings.kafka_bootstrap, [SCHEDULING_TOPIC])
        assert await OutboxRelay(db, producer, service="scheduling-test").drain() == len(wanted)
    finally:
        await producer.stop()
    records = await read_records(settings.kafka_bootstrap, SCHEDULING_TOPIC, wanted)

    decoded = {type(envelope.data): (envelope, value) for envelope, value in ((decode(h, v), v) for h, v in records)}
    assert set(decoded) == {CheckInDue, CheckInMissed}
    for envelope, value in decoded.values():
        assert envelope.data.match_id == match.match_id  # type: ignore[attr-defined]
        assert envelope.data.due_at == first_due  # type: ignore[attr-defined]
        schema = json.loads((SCHEMAS / f"{envelope.type}.json").read_text())
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        assert list(validator.iter_errors(json.loads(value))) == []


async def read_records(bootstrap: str, topic: str, wanted: set[str]) -> list[tuple[list[tuple[str, bytes]], bytes]]:
    """The (headers, value) of the records whose ce_id is in ``wanted``, each once: the topic read to its end, so call
    it once the outbox is empty."""
    found: dict[str, tuple[list[tuple[str, bytes]], bytes]] = {}
    for record, ce_id in await _records_with_ids(bootstrap, topic, wanted):
        if record.value is not None:
            found[ce_id] = (list(record.headers), record.value)
    return list(found.values())


async def test_a_sweeper_killed_mid_sweep_and_restarted_emits_no_duplicate_and_misses_none(db, feed, clock):
    await _schedule_due(feed, clock, matches=10)
    expected = int(await scalar(db, "SELECT count(*) FROM check_ins WHERE due_at <= :now", now=clock.now()))
    batch_size = 4
    assert expected > 3 * batch_size
    claims = 0
    two_batches_committed = asyncio.Event()
    committed = 0

    def count_commit(_session: Session) -> None:
        nonlocal committed
        committed += 1
        if committed == 2:
            two_batches_committed.set()

    class DiesInItsThirdBatch(AsyncSession):
        """The sessions of a replica that dies inside its third CheckInDue batch, right after claiming it, once
        the two batches before have committed: the same point of the sweep on every run, whatever the timing."""

        async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal claims
            if statement is not DUE_TRANSITION.statement:
                return await super().execute(statement, *args, **kwargs)
            claims += 1
            batch = claims
            if batch < 3:
                event.listen(self.sync_session, "after_commit", count_commit)
            else:
                await two_batches_committed.wait()
            result = await super().execute(statement, *args, **kwargs)
            if batch == 3:
                first.cancel()  # the replica dies; its sweep cancels this batch before it commits: claim undone
            return result

    dying = async_sessionmaker[AsyncSession](db, class_=DiesInItsThirdBatch, expire_on_commit=False)
    first = asyncio.create_task(sweep(dying, clock, batch_size=batch_size))
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await outbox_types(db)).count(DUE) == 2 * batch_size
    assert await scalar(db, "SELECT count(*) FROM check_ins WHERE state = 'due'") == 2 * batch_size

    await sweep(session_factory(db), clock, batch_size=batch_size)  # another replica takes over

    due = await rows(
        db,
        "SELECT headers::jsonb->>'ce_id', count(*) FROM outbox WHERE headers::jsonb->>'ce_type' = :t GROUP BY 1",
        t=DUE,
    )
    assert len(due) == expected
    assert all(n == 1 for _, n in due)


async def test_the_lease_admits_one_sweeper_and_only_its_holder_releases_it(settings):
    first_client, second_client = redis_client(settings.redis_url), redis_client(settings.redis_url)
    try:
        first = SweeperLease(first_client, "lease-test", 5)
        second = SweeperLease(second_client, "lease-test", 5)
        assert await first.hold()
        assert not await second.hold()
        await second.release()  # not the holder: must not free the lease
        assert not await second.hold()
        assert await first.hold()  # renewal
        await first.release()
        assert await second.hold()
    finally:
        await first_client.aclose()
        await second_client.aclose()


async def test_reminders_come_a_lead_time_before_and_missed_after_the_grace_period(db, feed, clock):
    s = Scenario()
    match = s.match(START)
    await feed(s.program(reminder_lead_hours=48, missed_grace_days=3), match)
    first_due = await scalar(db, "SELECT min(due_at) FROM check_ins WHERE match_id = :m", m=match.match_id)
    sessions = session_factory(db)

    clock.set(first_due - timedelta(hours=49))
    assert (await sweep(sessions, clock, batch_size=100)).reminders == 0
    clock.set(first_due - timedelta(hours=47))
    assert (await sweep(sessions, clock, batch_size=100)).reminders == 1
    assert (await sweep(sessions, clock, batch_size=100)).reminders == 0, "a reminder happens once"

    clock.set(first_due)
    report = await sweep(sessions, clock, batch_size=100)
    assert (report.due, report.missed) == (1, 0)
    clock.set(first_due + timedelta(days=3) - timedelta(seconds=1))
    assert (await sweep(sessions, clock, batch_size=100)).missed == 0
    clock.set(first_due + timedelta(days=3))
    assert (await sweep(sessions, clock, batch_size=100)).missed == 1
    assert (await outbox_types(db)).count(MISSED) == 1
    state = await scalar(
        db, "SELECT state FROM check_ins WHERE due_at = :d AND match_id = :m", d=first_due, m=match.match_id
    )
    assert state == "missed"


async def test_an_erased_person_loses_time_zone_availability_and_calendar_feed(db, feed):
    s = Scenario()
    from datetime import time

    from services.scheduling.tests.integration.scenario import weekdays
    from shared.events import samples

    person = s.person(__import__("uuid").uuid4(), "Europe/Berlin", weekdays(time(9), time(17)), version=2)
    await feed(person)
    await feed(samples.profile_erased(tenant_id=s.tenant_id, person_id=person.person_id, version=3))
    await feed(s.person(person.person_id, "Asia/Tokyo", weekdays(time(9), time(17)), version=2))  # late: ignored
    found = await rows(
        db, "SELECT time_zone, availability, erased FROM people WHERE person_id = :p", p=person.person_id
    )
    assert found == [(None, [], True)]


_ = SchedulingSettings
