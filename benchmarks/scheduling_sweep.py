"""Scheduling benchmark: the CheckInDue sweep over 100k due check-ins, and slot suggestions through the API.

Starts embedded PostgreSQL and Redis (deploy/local/servers.py), migrates a fresh scheduling database, bulk-inserts
100,000 active matches with one check-in each due now, then times the real sweeper path (lease, bounded
``FOR UPDATE SKIP LOCKED`` batches, state transition, CheckInDue envelopes encoded by the contract and COPYed
into the outbox, the next batch claimed while the previous one is encoded), in a process with the garbage
collector tuned as ``run_roles`` tunes every service process. Besides wall time it reports CPU per check-in
(this process, and the PostgreSQL server's processes from /proc), which the shared machine's load does not inflate. The baseline, measured in the same run on the same rows, is one bare SQL statement doing the state
transition and an ``INSERT ... SELECT`` of JSON outbox rows without Python. Slot-suggestion latency is measured
through ``GET /v1/matches/{id}/slots`` (in-process ASGI, real database, a Sydney–New York pair).
Writes the "## Scheduling: CheckInDue sweep" section of docs/benchmarks.md and leaves other sections alone.

Run: ``python -m benchmarks.scheduling_sweep`` (``--no-write`` to print only, ``--matches N`` to resize).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time as clock
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks import report
from deploy.local.servers import EmbeddedPostgres, EmbeddedRedis
from services.scheduling.adapters.lease import SweeperLease
from services.scheduling.application.projection import make_handler
from services.scheduling.application.sweeper import SweeperRunner
from services.scheduling.bootstrap import DEFINITION
from services.scheduling.entrypoints.api import build_app
from services.scheduling.settings import SchedulingSettings
from shared.auth import mint_dev_token
from shared.clock import MovableClock
from shared.db import session_factory
from shared.events import samples
from shared.events.envelope import EventEnvelope
from shared.migrations import upgrade_to_head
from shared.service import Runtime, tune_garbage_collector

SECTION_TITLE = "## Scheduling: CheckInDue sweep"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_SWEEP_SECONDS = 10.0
TARGET_SLOT_MS = 20.0
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
BATCH = 5_000

_SEED = text(
    """
    WITH m AS (
        INSERT INTO matches (match_id, tenant_id, program_id, mentee_person_id, mentor_person_id, activated_at, planned)
        SELECT gen_random_uuid(), :tenant, :program, gen_random_uuid(), gen_random_uuid(), :activated, true
        FROM generate_series(1, :n)
        RETURNING match_id, mentee_person_id, mentor_person_id
    )
    INSERT INTO check_ins (check_in_id, occurrence_key, tenant_id, match_id, program_id, mentee_person_id,
                           mentor_person_id, kind, seq, phase, due_at, state, remind_at, missed_after)
    SELECT gen_random_uuid(), m.match_id::text || ':regular:1', :tenant, m.match_id, :program, m.mentee_person_id,
           m.mentor_person_id, 'regular', 1, 'cultivation', CAST(:due AS timestamptz), 'scheduled',
           CAST(:due AS timestamptz) - interval '1 day', CAST(:due AS timestamptz) + interval '7 days'
    FROM m
    """
)

_BASELINE = text(
    """
    WITH d AS (
        UPDATE check_ins SET state = 'due', became_due_at = :now
        WHERE state = 'scheduled' AND due_at <= CAST(:now AS timestamptz)
        RETURNING *
    )
    INSERT INTO outbox (topic, key, headers, value)
    SELECT 'mentorloom.scheduling.v1', d.match_id::text,
           jsonb_build_object('ce_id', gen_random_uuid()::text, 'ce_type', 'org.mentorloom.check-in.due.v1',
                              'ce_subject', d.check_in_id::text, 'ce_tenantid', d.tenant_id::text),
           convert_to(json_build_object('tenant_id', d.tenant_id, 'check_in_id', d.check_in_id,
                                        'match_id', d.match_id, 'program_id', d.program_id,
                                        'mentee_person_id', d.mentee_person_id,
                                        'mentor_person_id', d.mentor_person_id,
                                        'occurrence_key', d.occurrence_key, 'due_at', d.due_at,
                                        'phase', d.phase, 'kind', d.kind)::text, 'UTF8')
    FROM d
    """
)


def server_cpu_seconds(postmaster_pid: int | None) -> float:
    """User + system CPU of the PostgreSQL postmaster and its children (backends, walwriter …) from /proc."""
    if postmaster_pid is None:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, …
            if int(entry.name) == postmaster_pid or int(fields[1]) == postmaster_pid:
                total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def reset(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox"))
        await conn.execute(text("UPDATE check_ins SET state = 'scheduled', became_due_at = NULL"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE check_ins"))
        await conn.execute(text("VACUUM ANALYZE outbox"))
    await engine.dispose()


async def outbox_count(url: str) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        count = int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())
    await engine.dispose()
    return count


async def measure(url: str, redis_url: str, matches: int, postmaster_pid: int | None) -> dict[str, float]:
    figures: dict[str, float] = {}
    engine = create_async_engine(url, pool_size=4)
    tenant, program = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        started = clock.perf_counter()
        await conn.execute(
            _SEED,
            {"tenant": tenant, "program": program, "n": matches, "activated": NOW - timedelta(days=30), "due": NOW},
        )
        figures["seed_s"] = clock.perf_counter() - started
    await reset(url)

    settings = SchedulingSettings(database_url=url, redis_url=redis_url)
    runtime = Runtime.from_settings(settings)
    fake_clock = MovableClock(NOW)
    runner = SweeperRunner(
        runtime.sessions,
        SweeperLease(runtime.redis, settings.sweep_lease_key, settings.sweep_lease_seconds),
        fake_clock,
        batch_size=BATCH,
    )
    tune_garbage_collector()  # as run_roles does for every service process, the sweeper role included
    started, cpu_started, server_started = (
        clock.perf_counter(),
        clock.process_time(),
        server_cpu_seconds(postmaster_pid),
    )
    report = await runner.run_once(asyncio.Event())
    figures["sweep_s"] = clock.perf_counter() - started
    figures["sweep_cpu_us"] = (clock.process_time() - cpu_started) / matches * 1e6
    figures["server_cpu_us"] = (server_cpu_seconds(postmaster_pid) - server_started) / matches * 1e6
    assert report is not None, "the lease is free"
    assert report.due == matches, report
    assert await outbox_count(url) == matches
    await runner.lease.release()

    await reset(url)
    async with engine.begin() as conn:
        started = clock.perf_counter()
        await conn.execute(_BASELINE, {"now": NOW})
        figures["baseline_s"] = clock.perf_counter() - started
    assert await outbox_count(url) == matches

    figures.update(await slot_latency(engine, runtime, settings, fake_clock))
    await runtime.close()
    await engine.dispose()
    return figures


async def slot_latency(
    engine, runtime: Runtime, settings: SchedulingSettings, fake_clock: MovableClock
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    tenant, program = uuid.uuid4(), uuid.uuid4()
    mentee, mentor = uuid.uuid4(), uuid.uuid4()
    week = ("monday", "tuesday", "wednesday", "thursday", "friday")
    accepted = samples.match_accepted(
        tenant_id=tenant,
        program_id=program,
        match_id=uuid.uuid4(),
        mentee_person_id=mentee,
        mentor_person_id=mentor,
        activated_at=NOW,
    )
    events = [
        samples.profile_updated(tenant_id=tenant, person_id=mentee, version=1, time_zone="Australia/Sydney",
                                blocked_person_ids=(), availability=tuple(
                                    {"weekday": d, "start": time(7), "end": time(10)} for d in week)),
        samples.profile_updated(tenant_id=tenant, person_id=mentor, version=1, time_zone="America/New_York",
                                blocked_person_ids=(), availability=tuple(
                                    {"weekday": d, "start": time(15), "end": time(18)} for d in week)),
        samples.program_updated(tenant_id=tenant, program_id=program, version=1, starts_on=date(2026, 3, 1),
                                ends_on=date(2026, 12, 1)),
        accepted,
    ]  # fmt: skip
    handle = make_handler(fake_clock)
    sessions = session_factory(engine)
    for data in events:
        async with sessions() as session, session.begin():
            await handle(session, EventEnvelope.wrap(data))
    headers = {
        "Authorization": "Bearer " + mint_dev_token(settings, str(mentee), tenant, ["participant"], person_id=mentee)
    }
    app = build_app(runtime, fake_clock)
    timings: list[float] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for i in range(220):
            params: dict[str, str | int] = {"start": (NOW + timedelta(days=i % 60)).isoformat(), "days": 28, "limit": 5}
            started = clock.perf_counter()
            response = await client.get(f"/v1/matches/{accepted.match_id}/slots", params=params, headers=headers)
            elapsed = (clock.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            assert response.json()["slots"], "the pair has common hours every week"
            if i >= 20:  # the first calls warm up pools and caches
                timings.append(elapsed)
    timings.sort()
    return {
        "slot_p50_ms": statistics.median(timings),
        "slot_p95_ms": timings[int(len(timings) * 0.95) - 1],
        "slot_p99_ms": timings[int(len(timings) * 0.99) - 1],
        "slot_max_ms": timings[-1],
    }


def markdown(matches: int, f: dict[str, float]) -> str:
    rate = matches / f["sweep_s"]
    ratio = f["sweep_s"] / f["baseline_s"]
    return f"""
Service level: embedded PostgreSQL 18 (fsync off) and Redis, a fresh migrated scheduling database.
{matches:,} active matches, each with one check-in due now (bulk-inserted in {f["seed_s"]:.1f} s).
The sweeper path is the production one (`SweeperRunner.run_once`: Redis lease, batches of {BATCH:,} claimed with
`FOR UPDATE SKIP LOCKED` by primary-key array, `scheduled → due` with `RETURNING` in deadline order, one validated
CheckInDue envelope per row encoded by the contract and COPYed into the outbox, one transaction per batch; the
next batch is claimed while the previous one is encoded, and written after it commits), with the garbage
collector tuned as in every service process (`shared.service.tune_garbage_collector`). The baseline is one
bare SQL statement on the same rows: `UPDATE ... RETURNING` feeding an `INSERT ... SELECT` of JSON outbox rows,
no Python, no batching.

| measure | value |
|---|---:|
| sweep: {matches:,} due check-ins found and written to the outbox | {f["sweep_s"]:.2f} s |
| · throughput | {rate:,.0f} check-ins/s |
| · CPU per check-in: sweeper process / PostgreSQL server | {f["sweep_cpu_us"]:.1f} / {f["server_cpu_us"]:.1f} µs |
| baseline: bare SQL `UPDATE ... RETURNING` + `INSERT ... SELECT` | {f["baseline_s"]:.2f} s |
| **ratio (sweeper / baseline)** | **{ratio:.1f}×** |
| slot suggestions via `GET /v1/matches/{{id}}/slots`, 4-week horizon, p50 | {f["slot_p50_ms"]:.2f} ms |
| · p95 / p99 / max | {f["slot_p95_ms"]:.2f} / {f["slot_p99_ms"]:.2f} / {f["slot_max_ms"]:.2f} ms |

Targets: sweep ≤ {TARGET_SWEEP_SECONDS:.0f} s for 100k: {"yes" if f["sweep_s"] <= TARGET_SWEEP_SECONDS else "no"};
slot suggestions ≤ {TARGET_SLOT_MS:.0f} ms (p99): {"yes" if f["slot_p99_ms"] <= TARGET_SLOT_MS else "no"}.
The gap to the baseline is the price of real contract events (pydantic validation, CloudEvents headers with
deterministic ids, trace context) built in Python; the baseline's rows are not valid envelopes.
Before the claim by primary-key array (the old `UPDATE ... FROM picked` hash-joined a full scan of the table per
batch), the overlapped encoding, the COPY into the outbox and the tuned collector, this sweep took 21.68 s
(4,612 check-ins/s, 2026-11-23, same machine under load); cProfile on 20k then showed 50–80 µs of sweeper CPU
per check-in, against about 40 µs now.
Slot latency includes token verification, two database reads and JSON encoding (in-process ASGI, no network).
Machine: {report.machine()} ({report.load_note()});
Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.
Run: `python -m benchmarks.scheduling_sweep`.
"""


def write_section(body: str) -> None:
    report.write_section(SECTION_TITLE.removeprefix("## "), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matches", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sched-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pgdata", fast_unsafe=True)
        redis = EmbeddedRedis(Path(tmp) / "redis")
        postgres.start()
        redis.start()
        try:
            postgres.create_database("scheduling_bench")
            url = postgres.url("scheduling_bench")
            upgrade_to_head(DEFINITION.migrations_dir, url)
            figures = asyncio.run(measure(url, redis.url, args.matches, postgres.proc.pid))
        finally:
            redis.stop()
            postgres.stop()
    body = markdown(args.matches, figures)
    print(body)
    if not args.no_write:
        write_section(body)
        print(f"wrote the {SECTION_TITLE!r} section of {DOC_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
