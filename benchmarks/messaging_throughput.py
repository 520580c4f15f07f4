"""Events through outbox → Kafka → consumer with inbox, against raw aiokafka on the same broker, same run.

    python -m benchmarks.messaging_throughput [--events 100000] [--rounds 3] [--no-write]

Real servers (embedded PostgreSQL 18 with its default durable settings, reached over its Unix socket as the local
stack's services reach it; the Tansu broker), real events
(MatchProposed from the contract, ~1 KB encoded). Every round runs, one after the other:
1. raw aiokafka: produce N pre-encoded records as fast as the producer allows, then consume them in a group
   committing per batch: the ceiling the broker and client give us;
2. end to end, sustained: a writer process commits events into the outbox (500 per transaction) while a relay
   process publishes them and a consumer group of CONSUMERS processes applies them (inbox + one batch statement per
   transaction); then the same with a single consumer process (the two in alternating order from round to round);
   throughput = N / (first commit → last event handled);
3. the backbone alone: the outbox filled first, then relay → Kafka → consumers.
The report gives the best end-to-end round against the best raw round (best of --rounds), the median against the
median, and each round against the raw round run just before it (the machine's speed drifts by tens of per cent over
minutes, and a round's own raw baseline was measured at the same speed). Last, the latency: the writer paced at
1,000 events/s; per event, commit time → handled time (same machine clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks.report import machine_line, percentile, write_section
from deploy.local.servers import EmbeddedKafka, EmbeddedPostgres
from shared.db import create_engine, new_metadata, session_factory
from shared.events import samples
from shared.events.envelope import EventEnvelope, decode, encode
from shared.events.models import EventData
from shared.ids import id_text, new_id
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.kafka import ensure_topics, make_producer
from shared.messaging.outbox import OutboxRelay, OutgoingMessage, add_messages, message_for
from shared.messaging.tables import OUTBOX_NOTIFY_DDL, messaging_tables
from shared.service import tune_garbage_collector

CONSUMER = "bench.projection"
# Larger than the services' default of 500 (MENTORLOOM_OUTBOX_BATCH_SIZE, MENTORLOOM_CONSUMER_BATCH_SIZE): tuned for
# throughput, as an operator expecting a backlog would; the report says so.
RELAY_BATCH = 1000
CONSUMER_BATCH = 1000
# Consumer group members, one per core of this machine: the services run consumers as replicas (3 per service in the
# prod overlay). With one member, the consumer drains the backlog alone on one core once the writer is done.
CONSUMERS = 2


_TEMPLATE = samples.match_proposed()


def sample_event() -> EventData:
    """A realistic MatchProposed for a new match: a fresh id minted as the matching service mints it (copying a
    template keeps the rest of the data generation out of the timing)."""
    return _TEMPLATE.model_copy(update={"match_id": new_id()})


async def raw_aiokafka(
    bootstrap: str, topic: str, n: int, *, client_defaults: bool = False
) -> tuple[float, float, int]:
    """Produce n events, then consume them with a commit per batch: the raw rates of this broker and client.

    The producer is the platform's own (`make_producer`: acks=all, zstd), or with `client_defaults` aiokafka as it
    comes (acks=1, no compression, 16 KB batches)."""
    _, _, value, headers = encode(EventEnvelope.wrap(sample_event()))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap) if client_defaults else make_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    for i in range(n):
        await producer.send(topic, value, key=str(i).encode(), headers=headers)
    await producer.flush()
    produce_rate = n / (time.perf_counter() - started)
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got = 0
    started = time.perf_counter()
    while got < n:
        batch = await consumer.getmany(timeout_ms=1000, max_records=500)
        got += sum(len(r) for r in batch.values())
        if batch:
            await consumer.commit()
    consume_rate = n / (time.perf_counter() - started)
    await consumer.stop()
    return produce_rate, consume_rate, len(value)


async def raw_round(bootstrap: str, n: int, *, client_defaults: bool = False) -> tuple[float, float, int]:
    """One raw round on a fresh topic: (produce events/s, consume events/s, bytes per event)."""
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [topic])
    return await raw_aiokafka(bootstrap, topic, n, client_defaults=client_defaults)


async def best_raw_aiokafka(
    bootstrap: str, n: int, runs: int, *, client_defaults: bool = False
) -> tuple[float, float, int, list[float]]:
    """The best of `runs` raw rounds back to back: (produce, consume, bytes per event, every round's produce)."""
    rounds = [await raw_round(bootstrap, n, client_defaults=client_defaults) for _ in range(runs)]
    return max(r[0] for r in rounds), max(r[1] for r in rounds), rounds[0][2], [r[0] for r in rounds]


async def prepare_database(url: str) -> None:
    engine = create_engine(url)
    metadata = new_metadata()
    messaging_tables(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for ddl in OUTBOX_NOTIFY_DDL:
            await conn.execute(text(ddl))
        await conn.execute(
            text(
                "CREATE TABLE proposals (match_id uuid PRIMARY KEY, score double precision, event_id text, handled_at timestamptz)"
            )
        )
    await engine.dispose()


def record_cpu(path: str, since: float) -> None:
    """Write the CPU seconds this process spent since `since` (after its imports: steady-state work only)."""
    Path(path).write_text(str(time.process_time() - since))


def record_batches(cpu_out: str, metric: str, labels: dict[str, str]) -> None:
    """Write, beside the process's CPU file, its batch count and summed batch sizes from its own histogram."""
    total = REGISTRY.get_sample_value(f"{metric}_sum", labels) or 0.0
    count = REGISTRY.get_sample_value(f"{metric}_count", labels) or 0.0
    Path(f"{cpu_out}.batches").write_text(json.dumps([count, total]))


def mean_batch(cpu_outs: Sequence[str]) -> float:
    """The mean batch size over the processes (named by their CPU files) that each wrote `record_batches`."""
    pairs = [json.loads(Path(f"{cpu_out}.batches").read_text()) for cpu_out in cpu_outs]
    batches = sum(count for count, _ in pairs)
    return sum(total for _, total in pairs) / batches if batches else float("nan")


def record_now(path: str) -> None:
    Path(path).write_text(str(time.time()))


def writer_process(url: str, topic: str, n: int, per_second: float | None, out: str, cpu_out: str) -> None:
    async def run() -> list[tuple[float, list[str]]]:
        # The test data is made before the clock and the CPU count start: generating it is not the platform's work
        # (wrapping it in envelopes and encoding it is, below).
        data = [sample_event() for _ in range(n)]
        cpu_started = time.process_time()
        engine = create_engine(url)
        sessions = session_factory(engine)
        batch = 500 if per_second is None else 50
        commits: list[tuple[float, list[str]]] = []
        started = time.perf_counter()
        for start in range(0, n, batch):
            envelopes = [EventEnvelope.wrap(event) for event in data[start : start + batch]]
            async with sessions() as session, session.begin():
                # The real encoding path (message_for), sent to this run's own topic.
                messages = [message_for(e) for e in envelopes]
                await add_messages(session, [OutgoingMessage(topic, m.key, m.value, m.headers) for m in messages])
            commits.append((time.time(), [m.headers["ce_id"] for m in messages]))
            if per_second is not None:
                due = started + (start + batch) / per_second
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
        record_cpu(cpu_out, cpu_started)
        await engine.dispose()
        return commits

    tune_garbage_collector()  # as shared.service.run_roles does for every service process
    Path(out).write_text(json.dumps(asyncio.run(run())))


def relay_process(url: str, bootstrap: str, stop_after: int, cpu_out: str, started_out: str) -> None:
    async def run() -> None:
        cpu_started = time.process_time()
        engine = create_engine(url)
        producer = make_producer(bootstrap)
        await producer.start()
        relay = OutboxRelay(engine, producer, service="bench", batch_size=RELAY_BATCH, poll_interval=0.05)
        record_now(started_out)
        task = asyncio.create_task(relay.run())
        # The relay's own metric says when it is done: polling count(*) would add database load to the measurement.
        while True:
            if (
                REGISTRY.get_sample_value("mentorloom_outbox_published_total", {"service": "bench"}) or 0
            ) >= stop_after:
                break
            await asyncio.sleep(0.2)
        relay.stop()
        await task
        await producer.stop()
        await engine.dispose()
        record_cpu(cpu_out, cpu_started)
        record_batches(cpu_out, "mentorloom_outbox_batch_rows", {"service": "bench"})

    tune_garbage_collector()  # as shared.service.run_roles does for every service process
    asyncio.run(run())


_UPSERT_PROPOSALS = text(
    "INSERT INTO proposals (match_id, score, event_id, handled_at)"
    " SELECT unnest(CAST(:m AS uuid[])), unnest(CAST(:s AS float8[])), unnest(CAST(:e AS text[])), clock_timestamp()"
    " ON CONFLICT (match_id) DO UPDATE SET score = excluded.score"
)


async def apply_proposals(session: AsyncSession, events: Sequence[EventEnvelope[Any]]) -> None:
    """One statement per batch: the projection upsert a real batch handler would do."""
    await session.execute(
        _UPSERT_PROPOSALS,
        {
            "m": [e.data.match_id for e in events],
            "s": [e.data.score for e in events],
            "e": [id_text(e.id) for e in events],
        },
    )


def consumer_process(
    url: str, bootstrap: str, topic: str, stop_after: int, ready: Any, cpu_out: str, counter: Any
) -> None:
    async def run() -> None:
        cpu_started = time.process_time()
        engine = create_engine(url)

        async def apply_and_count(session: AsyncSession, events: Sequence[EventEnvelope[Any]]) -> None:
            await apply_proposals(session, events)
            with counter.get_lock():  # all consumer processes of the run count together, in shared memory
                counter.value += len(events)

        runner: ConsumerRunner[EventEnvelope[Any]] = ConsumerRunner(
            name=f"{CONSUMER}.{topic}",
            topics=[topic],
            bootstrap=bootstrap,
            sessions=session_factory(engine),
            handler=None,
            batch_handler=apply_and_count,
            decode=decode,
            batch_size=CONSUMER_BATCH,
        )
        task = asyncio.create_task(runner.run())
        await runner.assigned.wait()
        ready.set()
        while counter.value < stop_after:  # noqa: ASYNC110  # another process counts too: no event to await
            await asyncio.sleep(0.02)  # a read of shared memory every 20 ms, no queries during the run
        runner.stop()
        await task
        await engine.dispose()
        record_cpu(cpu_out, cpu_started)
        record_batches(cpu_out, "mentorloom_consumer_batch_records", {"consumer": runner.name})

    tune_garbage_collector()  # as shared.service.run_roles does for every service process
    asyncio.run(run())


async def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    async with engine.connect() as conn:
        value = int((await conn.execute(text(sql))).scalar_one())
    await engine.dispose()
    return value


async def handled_times(url: str) -> dict[str, float]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT event_id, extract(epoch FROM handled_at) FROM proposals"))).all()
    await engine.dispose()
    return {r[0]: float(r[1]) for r in rows}


def tree_cpu_seconds(root_pid: int | None) -> float:
    """CPU seconds of a server process and all its descendants, including ones already exited and reaped
    (PostgreSQL forks a backend per connection; when a benchmark process disconnects, its backend's CPU
    moves into the postmaster's children times)."""
    if root_pid is None:
        return 0.0
    root = psutil.Process(root_pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


# pg_stat_statements' view of a run (`--pg-statements`): which statement of the pipeline its PostgreSQL time went to.
_STATEMENT_KINDS = (
    ('COPY "outbox"', "writer: outbox rows (COPY)"),
    ("INSERT INTO outbox", "writer: outbox rows (INSERT)"),
    ("DELETE FROM outbox", "relay: claim and delete"),
    ("INSERT INTO inbox", "consumers: inbox rows"),
    ("INSERT INTO proposals", "consumers: handler's upsert"),
    ("COMMIT", "COMMIT (all parties)"),
)
_OTHER_STATEMENTS = "other (BEGIN, pool pings, backlog count, …)"
STATEMENT_LABELS = (*(label for _, label in _STATEMENT_KINDS), _OTHER_STATEMENTS)


def statement_times(pg: EmbeddedPostgres, database: str) -> dict[str, float]:
    """Execution time in ms of the run's statements in `database`, by kind (pg_stat_statements, reset before)."""
    rows = pg.psql(
        # One line per statement: its whitespace (newlines included) collapsed, its start is enough to tell its kind.
        r"SELECT s.total_exec_time, left(regexp_replace(s.query, '\s+', ' ', 'g'), 40)"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        f" WHERE d.datname = '{database}'"
    )
    times = dict.fromkeys(STATEMENT_LABELS, 0.0)
    for line in rows.splitlines():
        milliseconds, _, query = line.partition("|")
        query = query.lstrip()
        label = next((label for prefix, label in _STATEMENT_KINDS if query.startswith(prefix)), _OTHER_STATEMENTS)
        times[label] += float(milliseconds)
    return times


def end_to_end(
    pg: EmbeddedPostgres,
    kafka: EmbeddedKafka,
    n: int,
    per_second: float | None,
    tmp: Path,
    *,
    prefilled: bool = False,
    consumers: int = CONSUMERS,
    statement_stats: bool = False,
) -> dict[str, float]:
    """One run of writer, relay and consumer processes; returns throughput, latencies and CPU per event.

    With `prefilled`, the writer fills the outbox before the relay starts, and the clock runs from the relay's
    start to the last event handled: the capacity of the backbone itself (relay → Kafka → consumer), without
    the writer competing for the same two cores. With `statement_stats` (PostgreSQL started with pg_stat_statements),
    the result also holds each kind of statement's execution time per event, keyed `pg: <kind>`.
    """
    bootstrap = kafka.bootstrap
    server_pids = {"postgres": pg.proc.pid, "broker": kafka.proc.pid}
    db = f"bench_{uuid.uuid4().hex[:8]}"
    pg.create_database(db)
    # Every run starts from a checkpoint, so it reuses the WAL segments earlier runs filled, as a long-running
    # server does; a cold cluster instead creates and zero-fills a new 16 MB segment every ~6,500 events.
    pg.psql("CHECKPOINT")
    # Over the server's Unix socket, as the local stack's services connect to it (EmbeddedPostgres.local_url).
    url = pg.local_url(db)
    asyncio.run(prepare_database(url))
    topic = f"bench.e2e.{db}"  # a topic and a consumer group per run: runs never see each other's events
    asyncio.run(ensure_topics(bootstrap, [topic]))
    commits_file = tmp / f"{db}.json"
    ctx = mp.get_context("spawn")

    def cpu_file(role: str) -> str:
        return str(tmp / f"{db}.{role}.cpu")

    counter = ctx.Value("q", 0)
    consumers_ready = [ctx.Event() for _ in range(consumers)]
    consumer_procs = [
        ctx.Process(
            target=consumer_process,
            args=(url, bootstrap, topic, n, ready, cpu_file(f"consumer{i}"), counter),
        )
        for i, ready in enumerate(consumers_ready)
    ]
    relay = ctx.Process(target=relay_process, args=(url, bootstrap, n, cpu_file("relay"), str(tmp / f"{db}.relay")))
    writer = ctx.Process(target=writer_process, args=(url, topic, n, per_second, str(commits_file), cpu_file("writer")))
    for consumer in consumer_procs:
        consumer.start()
    if not prefilled:
        relay.start()
    for ready in consumers_ready:  # timing starts once every consumer owns partitions (group join takes seconds)
        ready.wait(120)
    time.sleep(0.5)
    if prefilled:  # the whole outbox is written first, untimed; then the relay starts on it
        writer.start()
        writer.join(timeout=600)
    if statement_stats:
        pg.psql("SELECT pg_stat_statements_reset()")
    servers_cpu_before = {name: tree_cpu_seconds(pid) for name, pid in server_pids.items()}
    (relay if prefilled else writer).start()
    for p in (writer, relay, *consumer_procs):
        p.join(timeout=600)
    servers_cpu = {name: tree_cpu_seconds(pid) - servers_cpu_before[name] for name, pid in server_pids.items()}
    statements = statement_times(pg, db) if statement_stats else {}
    commits: list[tuple[float, list[str]]] = json.loads(commits_file.read_text())
    handled = asyncio.run(handled_times(url))
    first_commit = commits[0][0]
    started = float((tmp / f"{db}.relay").read_text()) if prefilled else first_commit
    last_handled = max(handled.values())
    latencies = [(handled[i] - t) * 1000 for t, ids in commits for i in ids if i in handled]
    written = {i for _, ids in commits for i in ids}
    if set(handled) != written:
        raise RuntimeError(f"handled {len(handled)} events but {len(written)} were written: the benchmark is broken")
    writer_rate = n / (commits[-1][0] - first_commit) if len(commits) > 1 else float("nan")
    return {
        "events": n,
        "handled": len(handled),
        "throughput": len(handled) / (last_handled - started),
        "writer_rate": writer_rate,
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        **{
            f"{role}_cpu_us": float(Path(cpu_file(role)).read_text()) / n * 1e6
            for role in (("relay",) if prefilled else ("writer", "relay"))
        },
        "consumer_cpu_us": sum(float(Path(cpu_file(f"consumer{i}")).read_text()) for i in range(consumers)) / n * 1e6,
        "relay_batch": mean_batch([cpu_file("relay")]),
        "consumer_batch": mean_batch([cpu_file(f"consumer{i}") for i in range(consumers)]),
        **{f"{name}_cpu_us": seconds / n * 1e6 for name, seconds in servers_cpu.items()},
        **{f"pg: {label}": milliseconds / n * 1e3 for label, milliseconds in statements.items()},
    }


def cpu_table(runs: dict[str, dict[str, float]]) -> str:
    """CPU per event of every party, per run: where the two cores go."""
    parties = [("writer", "writer process"), ("relay", "relay process"), ("consumer", "consumer process")]
    parties += [("postgres", "PostgreSQL (all backends)"), ("broker", "broker (Tansu)")]
    lines = ["| CPU µs per event | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for key, label in parties:
        cells = [f"{run[f'{key}_cpu_us']:.0f}" if f"{key}_cpu_us" in run else "—" for run in runs.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    totals = [sum(v for k, v in run.items() if k.endswith("_cpu_us")) for run in runs.values()]
    lines.append("| **total** | " + " | ".join(f"**{t:.0f}**" for t in totals) + " |")
    lines.append(
        "| ceiling on 2 cores (2 s ÷ total), events/s | " + " | ".join(f"{2e6 / t:,.0f}" for t in totals) + " |"
    )
    lines.append(
        f"| mean batch: rows per relay batch / records per consumer batch (of {RELAY_BATCH:,} / {CONSUMER_BATCH:,} at most) | "
        + " | ".join(f"{run['relay_batch']:,.0f} / {run['consumer_batch']:,.0f}" for run in runs.values())
        + " |"
    )
    return "\n".join(lines)


def statement_table(runs: dict[str, dict[str, float]]) -> str:
    """PostgreSQL execution time per event by kind of statement, per run (wall time inside the server: CPU, and
    waits for locks, the WAL flush or, for COPY, the client's data)."""
    lines = ["| PostgreSQL execution µs per event | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for label in STATEMENT_LABELS:
        lines.append(
            f"| {label} | " + " | ".join(f"{run.get(f'pg: {label}', 0.0):.1f}" for run in runs.values()) + " |"
        )
    totals = [sum(v for k, v in run.items() if k.startswith("pg: ")) for run in runs.values()]
    lines.append("| **total** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of raw aiokafka, end to end (a consumer group, one consumer) and backbone alone, interleaved",
    )
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="preload pg_stat_statements and report PostgreSQL's time per event by statement (adds its own overhead)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mentorloom-bench-"))
    settings = {"shared_preload_libraries": "pg_stat_statements"} if args.pg_statements else {}
    pg = EmbeddedPostgres(tmp / "pg" / "data", settings=settings)
    kafka = EmbeddedKafka(tmp / "kafka")
    pg.start()
    kafka.start()
    try:
        if args.pg_statements:
            pg.psql("CREATE EXTENSION pg_stat_statements")
        defaults_rate, _, _, defaults_rounds = asyncio.run(
            best_raw_aiokafka(kafka.bootstrap, args.events, args.rounds, client_defaults=True)
        )
        print(f"raw aiokafka with the client's defaults: produce {defaults_rate:,.0f}/s")
        # Each round measures its own raw baseline just before its end-to-end rounds: the shared machine's speed
        # drifts over minutes, and a raw round next to an end-to-end one ran at the same speed. The end-to-end rounds
        # alternate a consumer group with a single consumer member: what the second member is worth, same noise.
        raw_rounds: list[tuple[float, float, int]] = []
        sustained_rounds: list[dict[str, float]] = []
        single_rounds: list[dict[str, float]] = []
        backbone_rounds: list[dict[str, float]] = []
        for i in range(args.rounds):
            raw_rounds.append(asyncio.run(raw_round(kafka.bootstrap, args.events)))
            print(f"round {i + 1}: raw aiokafka produce {raw_rounds[-1][0]:,.0f}/s, consume {raw_rounds[-1][1]:,.0f}/s")
            for consumers in (CONSUMERS, 1) if i % 2 == 0 else (1, CONSUMERS):
                result = end_to_end(
                    pg, kafka, args.events, None, tmp, consumers=consumers, statement_stats=args.pg_statements
                )
                (sustained_rounds if consumers == CONSUMERS else single_rounds).append(result)
                print(f"end to end, {consumers} consumer(s): {result}")
            backbone_rounds.append(
                end_to_end(pg, kafka, args.events, None, tmp, prefilled=True, statement_stats=args.pg_statements)
            )
            print(f"backbone, outbox prefilled: {backbone_rounds[-1]}")
        paced_n = int(1000 * args.latency_seconds)
        paced = end_to_end(pg, kafka, paced_n, 1000.0, tmp)
        print(f"paced 1,000/s: {paced}")
    finally:
        kafka.stop()
        pg.stop()

    produce_rounds = [r[0] for r in raw_rounds]
    produce_rate = max(produce_rounds)
    consume_rate = max(r[1] for r in raw_rounds)
    size = raw_rounds[0][2]
    rounds_text = ", ".join(f"{rate:,.0f}" for rate in produce_rounds)
    defaults_rounds_text = ", ".join(f"{rate:,.0f}" for rate in defaults_rounds)
    sustained = max(sustained_rounds, key=lambda run: run["throughput"])
    backbone = max(backbone_rounds, key=lambda run: run["throughput"])
    ratio = sustained["throughput"] / produce_rate
    backbone_ratio = backbone["throughput"] / produce_rate
    sustained_rates = [run["throughput"] for run in sustained_rounds]
    single = max(single_rounds, key=lambda run: run["throughput"])
    single_rates = [run["throughput"] for run in single_rounds]
    single_text = ", ".join(f"{rate:,.0f}" for rate in single_rates)
    member_gain = statistics.median(sustained_rates) / statistics.median(single_rates)
    median_ratio = statistics.median(sustained_rates) / statistics.median(produce_rounds)
    sustained_text = ", ".join(f"{rate:,.0f}" for rate in sustained_rates)
    backbone_text = ", ".join(f"{run['throughput']:,.0f}" for run in backbone_rounds)
    # Each end-to-end round against the raw round of the same round (run just before it, at the same speed).
    paired = [run["throughput"] / raw for run, raw in zip(sustained_rounds, produce_rounds, strict=True)]
    paired_text = ", ".join(f"{r:.1%}" for r in paired)  # one decimal everywhere: 24.7 % must not read as 25 %
    single_paired = [run["throughput"] / raw for run, raw in zip(single_rounds, produce_rounds, strict=True)]
    best_runs = {"end to end": sustained, "backbone alone": backbone, "end to end, one consumer": single}
    statements_md = (
        "\nWhere PostgreSQL's time goes in the same rounds (`--pg-statements`: pg_stat_statements loaded, whose own"
        " overhead is in every figure of this run):\n\n" + statement_table(best_runs) + "\n"
        if args.pg_statements
        else ""
    )
    md = f"""{machine_line()}
Broker (Tansu, memory storage) and PostgreSQL 18 (default durable settings) on the same machine as the
benchmark processes (writer, relay, {CONSUMERS} consumers), which reach PostgreSQL over its Unix socket as the local stack's
services do (the broker over loopback TCP: Kafka has no other transport). Event: MatchProposed from the contract, {size} bytes of JSON plus
CloudEvents headers; every producer, the raw baseline's included, is `make_producer`'s (zstd-compressed batches).
The relay publishes up to {RELAY_BATCH:,} rows per transaction and the consumer fetches up to {CONSUMER_BATCH:,} records per
transaction (`MENTORLOOM_OUTBOX_BATCH_SIZE` and `MENTORLOOM_CONSUMER_BATCH_SIZE`; the services' default is 500).
Each run gets a fresh database and starts from a CHECKPOINT, so it reuses WAL segments as a long-running server does
(on the cold cluster the first run instead zero-fills a new 16 MB segment every ~6,500 events).
Command: `python -m benchmarks.messaging_throughput --events {args.events} --rounds {args.rounds}{" --pg-statements" if args.pg_statements else ""}`.

| path | events/s | ÷ raw produce |
|---|---:|---:|
| raw aiokafka produce (baseline, same broker, same run; best of {len(produce_rounds)} rounds, one at the start of each round: {rounds_text}) | {produce_rate:,.0f} | 100 % |
| raw aiokafka consume, commit per batch (baseline, best round) | {consume_rate:,.0f} | |
| for comparison, raw aiokafka produce with the client's defaults (acks=1, uncompressed; best of {len(defaults_rounds)}: {defaults_rounds_text}); end to end is {sustained["throughput"] / defaults_rate:.1%} of it | {defaults_rate:,.0f} | {defaults_rate / produce_rate:.1%} |
| **end to end, sustained: writer → outbox → relay → Kafka → consumer group of {CONSUMERS} (inbox + batch upsert), all running at once (best of {len(sustained_rates)} rounds: {sustained_text})** | **{sustained["throughput"]:,.0f}** | **{ratio:.1%}** |
| · median round against the median raw round | {statistics.median(sustained_rates):,.0f} | {median_ratio:.1%} |
| · each round against its own raw round, run just before it ({paired_text}): the median | | {statistics.median(paired):.1%} |
| · the writer's own rate in the best round (500 events per transaction) | {sustained["writer_rate"]:,.0f} | |
| · the same with a single consumer member, rounds alternating with the above (best of {len(single_rates)}: {single_text}); {CONSUMERS} members' median round is {member_gain:.2f}× one member's | {single["throughput"]:,.0f} | {single["throughput"] / produce_rate:.1%} (each round against its own raw round, median: {statistics.median(single_paired):.1%}) |
| backbone alone: outbox filled first, then relay → Kafka → consumer (best of {len(backbone_rounds)}: {backbone_text}) | {backbone["throughput"]:,.0f} | {backbone_ratio:.1%} |

Where the CPU goes in the best rounds ({args.events:,} events; each process measured after its imports, PostgreSQL
and the broker over the run; with everything on two cores the throughput cannot exceed 2 s of CPU ÷ the total per event):

{cpu_table(best_runs)}
{statements_md}
Latency at a paced 1,000 events/s ({paced["handled"]:,} events), commit of the business transaction → handler
transaction committed: p50 {paced["p50"]:.0f} ms, p95 {paced["p95"]:.0f} ms, p99 {paced["p99"]:.0f} ms, max {paced["max"]:.0f} ms.

Why {CONSUMERS} consumer members: with one, the consumer shares the two cores with the writer, the relay and their
PostgreSQL backends and falls behind while the writer runs; once the writer is done it drains the backlog alone, one
process on one core while the other core is mostly idle. A second member of the group takes half the partitions and
uses that core, and the run is then bound by the two cores alone: it reaches the ceiling row above (2 s of CPU ÷ the
CPU per event of all parties), with the writer slowed to the pipeline's pace. Two processes cost more consumer CPU
per event than one (table above), so the gain is the idle core, not less work: 2-16 % more events/s in alternating
rounds of 2026-12-06, the median ratio above in this run. What keeps the ratio below its target is the CPU per
event, the largest part the consumers' decoding of the contract's models (section below). Tried on 2026-12-06 and left out: uvloop as the services' event loop (14
alternating pairs of rounds, no consistent gain; the last 7: median 17.5k against 18.6k/s on asyncio's loop) and
lingering to fill batches (below).

While the writer runs, the relay and the consumers keep up with it, so their batches run short (the mean batch row
above; in the backbone rounds they are full). Why the end-to-end rounds cost more CPU per event than the backbone's
is contention for the two cores, not batch size: on 2026-12-06 a 30 ms linger in the relay and the consumers (top a
short batch up when it held at least 100 records) filled the consumers' batches (~930 records instead of ~370) and
left the CPU per event where it was (3 alternating pairs of rounds: 220, 172, 222 µs against 242, 215, 212), while
doubling the latency under load (p99 of those rounds 623–839 against 325–426 ms); it was not adopted. Letting the
broker fill the fetches instead (`fetch_min_bytes` 256 KiB, 2026-12-07) did the same: consumer batches of 625–706
records instead of 324–455, median CPU per event 220 against 221 µs over 5 alternating pairs of rounds, and up to
`fetch_max_wait_ms` more latency at low rates; not adopted either.

Targets (issue 2): ≥ 15,000 events/s end to end and ≥ 25% of raw produce; p99 ≤ 250 ms at 1,000 events/s.
"""
    print(md)
    if not args.no_write:
        write_section("Messaging: outbox → Kafka → inbox", md)


if __name__ == "__main__":
    main()
