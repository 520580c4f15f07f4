"""The `mentorloom` commands that talk to a running stack: token, import, match, events, demo (see `cli.py`).

Errors map to exit codes scripts can trust: 1 when a service refuses or the operation failed, 2 for usage errors
(typer's own, and missing defaults), 3 when no stack runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.local.client import ApiClient, ServiceError, StackEndpoints, StackNotRunningError, mint_token
from deploy.local.demo import DemoError, DemoProgram, import_csv, run_demo
from deploy.local.events_tail import data_highlights, follow
from deploy.local.invocation import command
from deploy.local.output import cells
from deploy.local.stack import PROJECT_ROOT, StateFileError, default_data_dir
from shared.auth import Role
from shared.events.registry import BY_TYPE, CE_TYPE_PREFIX, TOPICS
from shared.settings import KafkaSettings, describe_settings_error

console = Console()
err = Console(stderr=True)

SAMPLE_IMPORT = (
    PROJECT_ROOT / "docs" / "profiles" / "sample-import.csv"
)  # a mentee, a mentor and one both, of the demo's campuses

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_STACK = 3

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", resolve_path=True, help="Where the stack keeps data and logs (env MENTORLOOM_STACK_DIR)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TenantOption = Annotated[
    uuid.UUID | None, typer.Option("--tenant", help="Organisation (tenant) id; default: the demo's.")
]
ProgramOption = Annotated[uuid.UUID | None, typer.Option("--program", help="Program id; default: the demo's.")]

match_app = typer.Typer(help="Cohort rounds: run one, approve its proposals.", no_args_is_help=True)
events_app = typer.Typer(help="The event stream.", no_args_is_help=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(message)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the client's exceptions into a clear message and the documented exit code."""
    try:
        yield
    except StackNotRunningError as exc:
        fail(f"[red]{escape(str(exc))}[/red]", EXIT_NO_STACK)
    except ServiceError as exc:
        body = exc.body if isinstance(exc.body, str) else json.dumps(exc.body, indent=2)
        fail(f"[red]The service refused ({exc.status_code}):[/red]\n{escape(body)}", EXIT_FAILED)
    except KafkaError as exc:  # the broker unreachable (a stopped stack, a wrong --bootstrap) or refusing
        fail(f"[red]The Kafka broker failed:[/red] {escape(str(exc))}", EXIT_FAILED)
    except StateFileError as exc:  # state.json or demo.json cut short or edited
        fail(f"[red]{escape(str(exc))}[/red]", EXIT_FAILED)
    except (DemoError, TimeoutError) as exc:  # a wait for the services gave up, or they answered with nothing to use
        fail(f"[red]The demo failed:[/red] {escape(str(exc))}", EXIT_FAILED)


def kafka_settings(bootstrap: str | None) -> KafkaSettings | None:
    """The TLS/SASL settings for a broker named by --bootstrap: the MENTORLOOM_KAFKA_* variables the services read.
    None for the local stack's own broker, which speaks PLAINTEXT whatever the environment says."""
    if bootstrap is None:
        return None
    try:
        return KafkaSettings()
    except ValidationError as error:
        fail(f"[red]Invalid Kafka settings:[/red]\n{escape(describe_settings_error(error))}", EXIT_USAGE)


def write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def endpoints(data_dir: Path) -> StackEndpoints:
    with reported_errors():
        return StackEndpoints.of_running_stack(data_dir)
    raise AssertionError("unreachable")  # pragma: no cover - reported_errors exits


def tenant_and_program(
    data_dir: Path, tenant: uuid.UUID | None, program: uuid.UUID | None, *, need_program: bool = True
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """Explicit ids, else the demo's (saved by `mentorloom demo`)."""
    with reported_errors():
        seeded = DemoProgram.load(data_dir)
    tenant = tenant or (seeded.tenant if seeded else None)
    program = program or (seeded.program if seeded and seeded.tenant == tenant else None)
    if tenant is None or (need_program and program is None):
        fail(
            f"[red]Give --tenant and --program[/red] (or run `{escape(command('demo'))}` first to use its program).",
            EXIT_USAGE,
        )
    return tenant, program


def coordinator_client(data_dir: Path, tenant: uuid.UUID | None, program: uuid.UUID | None) -> ApiClient:
    # The stack first: with none running, "no running stack" (exit 3) is the news, not the missing demo ids.
    found = endpoints(data_dir)
    found_tenant, found_program = tenant_and_program(data_dir, tenant, program)
    programs = [found_program] if found_program else []
    return ApiClient(found, mint_token(found_tenant, [Role.COORDINATOR], programs=programs))


# --- token ---------------------------------------------------------------------------------------------------------


def token_command(
    role: Annotated[list[Role], typer.Option("--role", help="Role; repeat for several.")] = [Role.COORDINATOR],  # noqa: B006 - typer reads the default, never mutates it
    tenant: TenantOption = None,
    program: Annotated[
        list[uuid.UUID] | None, typer.Option("--program", help="Program the token may act on; repeat. Default: demo's.")
    ] = None,
    person: Annotated[uuid.UUID | None, typer.Option("--person", help="The participant's person id.")] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 8 * 3600,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Mint a dev token the local services accept (its --help: cli.py, which names the command to type)."""
    found_tenant, demo_program = tenant_and_program(data_dir, tenant, None, need_program=False)
    programs = program if program is not None else ([demo_program] if demo_program else [])
    if Role.PARTICIPANT in role and person is None:
        fail(
            "[red]A participant token needs --person:[/red] a participant's person id (the demo's mentees and mentors "
            f"are in {escape(str(data_dir / 'demo.json'))}).",
            EXIT_USAGE,
        )
    try:
        token = mint_token(found_tenant, role, programs=programs, person_id=person, ttl=timedelta(seconds=ttl))
    except ValueError as exc:
        fail(f"[red]{escape(str(exc))}[/red]", EXIT_USAGE)
    if as_json:
        write_json(
            {
                "token": token,
                "tenant": str(found_tenant),
                "roles": [r.value for r in role],
                "programs": [str(p) for p in programs],
                "person_id": str(person) if person else None,
                "ttl_seconds": ttl,
            }
        )
    else:
        sys.stdout.write(token + "\n")


# --- import --------------------------------------------------------------------------------------------------------


def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV of participants.")],
    program: ProgramOption = None,
    tenant: TenantOption = None,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Upload a participants CSV (docs/profiles/csv-import.md) with a progress bar; print the per-row errors.

    Exit code 1 when any row failed or the import as a whole failed.
    """
    body = file.read_bytes()
    with coordinator_client(data_dir, tenant, program) as client, reported_errors():
        _, program_id = tenant_and_program(data_dir, tenant, program)
        with upload_progress(file.name, quiet=as_json) as advance:
            report = import_csv(client, str(program_id), body, advance)
        errors: list[dict[str, Any]] = report.get("errors", [])
        if report.get("errors_truncated") or len(errors) < report["rows_failed"]:
            errors = list(client.pages("profiles", f"/v1/imports/{report['id']}/errors", limit=1000))
    if as_json:
        write_json({**report, "errors": errors})
    else:
        console.print(
            f"import {escape(str(report['id']))}: [bold]{escape(str(report['status']))}[/bold], "
            f"{report['rows_processed']} rows: "
            f"{report['rows_imported']} imported, {report['rows_unchanged']} unchanged, "
            f"[{'red' if report['rows_failed'] else 'green'}]{report['rows_failed']} failed[/]"
            # People of another program a coordinator enrolled without changing their profile (profiles' import rule).
            + (
                f", {report['rows_profile_kept']} enrolled with their profile kept (also in another program)"
                if report.get("rows_profile_kept")
                else ""
            )
        )
        if errors:
            table = Table(title="rows that were not imported")
            for column in ("row", "column", "message"):
                table.add_column(column, overflow="fold")  # a long word goes on in the next line, never cut short
            for error in errors:
                table.add_row(*cells(error["row_number"], error.get("column") or "-", error["message"]))
            console.print(table)
    if report["rows_failed"] or report["status"] == "failed":
        raise typer.Exit(code=EXIT_FAILED)


@contextlib.contextmanager
def upload_progress(name: str, *, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet:
        yield None
        return
    with Progress(
        TextColumn(f"uploading {escape(name)}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("upload", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


# --- match ---------------------------------------------------------------------------------------------------------


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_round(found: dict[str, Any]) -> None:
    report = found["report"]
    # On its own line: a table title wraps at the table's width, splitting the id a reader copies into `match approve`.
    console.print(
        f"cohort round {escape(str(found['round_id']))} ({escape(str(found['status']))})",
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("mentees", report["mentee_count"]),
        ("mentors / capacity", f"{report['mentor_count']} / {report['capacity_total']}"),
        ("proposals", report["proposal_count"]),
        ("unmatched mentees", report["unmatched_count"]),
        ("total score", f"{report['total_score']:.2f}"),
        ("mean / min / max", " / ".join(_score(report[k]) for k in ("mean_score", "min_score", "max_score"))),
        ("proven optimal", "yes" if report["certificate"]["proven_optimal"] else "no"),
    ):
        table.add_row(*cells(label, value))
    console.print(table)
    reasons: dict[str, int] = {}
    for unmatched in report["unmatched"]:
        reasons[unmatched["reason"]] = reasons.get(unmatched["reason"], 0) + 1
    if reasons:
        console.print("unmatched because: " + ", ".join(f"{escape(r)} ({n})" for r, n in sorted(reasons.items())))


@match_app.command("round")
def match_round(
    program: ProgramOption = None,
    tenant: TenantOption = None,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Run the program's cohort round over all unmatched mentees; proposals wait for `match approve`."""
    with coordinator_client(data_dir, tenant, program) as client, reported_errors():
        _, program_id = tenant_and_program(data_dir, tenant, program)
        found = client.post("matching", f"/v1/programs/{program_id}/rounds")
    if as_json:
        write_json(found)
        return
    print_round(found)
    console.print(
        f"approve with: {escape(command('match approve'))} {escape(str(found['round_id']))}",
        highlight=False,
        soft_wrap=True,
    )


@match_app.command("approve")
def match_approve(
    round_id: Annotated[uuid.UUID, typer.Argument(help="The round to approve.")],
    proposal: Annotated[
        list[uuid.UUID] | None, typer.Option("--proposal", help="Send only these proposals (repeat); default: all.")
    ] = None,
    program: ProgramOption = None,
    tenant: TenantOption = None,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Send the round's proposals (all, or those given) to the mentees and mentors."""
    body = {"proposal_ids": [str(p) for p in proposal]} if proposal else {}
    with coordinator_client(data_dir, tenant, program) as client, reported_errors():
        found = client.post("matching", f"/v1/rounds/{round_id}/approve", body)
    if as_json:
        write_json(found)
        return
    print_round(found)
    # The approval's own counts: the round's proposals also list those the re-check skipped or the coordinator left out.
    approval = found["report"].get("approval") or {}
    console.print(
        f"{approval.get('sent_count', 0)} proposal(s) sent; {approval.get('skipped_count', 0)} skipped by the re-check "
        f"against the current program, {approval.get('dropped_by_coordinator_count', 0)} left out."
    )


# --- events --------------------------------------------------------------------------------------------------------


@events_app.command("tail")
def events_tail(
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help=f"Topic to follow (repeat); default: all of {', '.join(TOPICS)}."),
    ] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only these types; a full ce_type or a part of it, e.g. match.accepted."),
    ] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest record.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many records.")] = None,
    seconds: Annotated[float | None, typer.Option("--for", min=0.1, help="Stop after this many seconds.")] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            help="Broker address (default: the local stack's); MENTORLOOM_KAFKA_SECURITY_PROTOCOL etc. apply."
        ),
    ] = None,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Follow the event stream (one line per event, or one JSON object per line with --json); Ctrl-C stops."""
    topics = topic or list(TOPICS)
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        fail(f"[red]Unknown topic(s) {escape(', '.join(unknown))}[/red]; known: {', '.join(TOPICS)}", EXIT_USAGE)
    # The local stack runs this checkout's catalogue, so a type none of it matches is a typo that would show nothing;
    # another broker (--bootstrap) may carry types of a newer catalogue.
    unmatched = [t for t in event_type or [] if not any(t in ce_type for ce_type in BY_TYPE)]
    if unmatched and bootstrap is None:
        known = ", ".join(ce_type.removeprefix(CE_TYPE_PREFIX) for ce_type in BY_TYPE)
        fail(
            f"[red]No event type of the local stack matches {escape(', '.join(unmatched))}[/red]; the types: {known}",
            EXIT_USAGE,
        )
    settings = kafka_settings(bootstrap)
    broker = bootstrap or endpoints(data_dir).kafka_bootstrap
    with contextlib.suppress(KeyboardInterrupt), reported_errors():
        asyncio.run(_tail(broker, settings, topics, event_type or [], from_beginning, limit, seconds, as_json))


async def _tail(
    bootstrap: str,
    settings: KafkaSettings | None,
    topics: list[str],
    types: list[str],
    from_beginning: bool,
    limit: int | None,
    seconds: float | None,
    as_json: bool,
) -> None:
    stop = asyncio.Event()
    if seconds is not None:
        asyncio.get_running_loop().call_later(seconds, stop.set)
    shown = 0
    if not as_json:
        err.print(f"[dim]following {', '.join(topics)} on {escape(bootstrap)} (Ctrl-C stops)[/dim]")
    async for record in follow(bootstrap, topics, from_beginning=from_beginning, stop=stop, settings=settings):
        if types and not any(t in record.ce_type for t in types):
            continue
        if as_json:
            sys.stdout.write(json.dumps(record.summary(), default=str) + "\n")
            sys.stdout.flush()
        else:
            when = record.envelope.time.strftime("%H:%M:%S") if record.envelope else "--:--:--"
            short_type = record.ce_type.removeprefix("org.mentorloom.")
            style = "red" if record.error else "cyan"
            console.print(
                f"[dim]{when}[/dim] [{style}]{escape(short_type):<28}[/{style}] "
                f"[dim]{record.topic.split('.')[1]}:{record.partition}:{record.offset}[/dim] "
                f"{escape(data_highlights(record))}",
                highlight=False,
                soft_wrap=True,
            )
        shown += 1
        if limit is not None and shown >= limit:
            return


# --- demo ----------------------------------------------------------------------------------------------------------


def run_demo_with_progress(data_dir: Path, mentors: int = 120, mentees: int = 240, quiet: bool = False) -> DemoProgram:
    found = endpoints(data_dir)
    say: Callable[[str], None] = (
        (lambda _: None) if quiet else (lambda m: console.print(f"[green]✓[/green] {escape(m)}"))
    )
    if not quiet:
        console.rule("[bold]demo: a peer-mentoring program through its lifecycle")
    with reported_errors():
        outcome = run_demo(
            found,
            mentors=mentors,
            mentees=mentees,
            report=say,
            upload_display=lambda: upload_progress("participants.csv", quiet=quiet),
        )
    path = outcome.seeded.save(data_dir)
    if not quiet:
        states = ", ".join(f"{n} {s}" for s, n in sorted(outcome.matches_by_state.items()))
        say(f"matches now: {states}")
        say(f"ids saved to {path} (later commands use this program by default)")
    return outcome.seeded


def demo_command(
    mentors: Annotated[int, typer.Option(min=2, max=5000, help="How many mentors to import.")] = 120,
    mentees: Annotated[int, typer.Option(min=2, max=10000, help="How many mentees to import.")] = 240,
    data_dir: DataDir = default_data_dir(),
    as_json: AsJson = False,
) -> None:
    """Seed a realistic program through the public APIs and drive it: short list, request, round, approvals."""
    seeded = run_demo_with_progress(data_dir, mentors, mentees, quiet=as_json)
    if as_json:
        write_json(asdict(seeded))
    else:
        print_guide(data_dir)


def print_guide(data_dir: Path) -> None:
    """Where to look: API docs, example calls with a fresh token, the event tail."""
    found = endpoints(data_dir)
    try:
        seeded = DemoProgram.load(data_dir)
    except StateFileError as exc:  # the guide still helps without the example calls
        err.print(f"[yellow]{escape(str(exc))}[/yellow]")
        seeded = None
    console.rule("[bold]where to look")
    for service, url in found.services.items():
        console.print(f"  {service:<11} API docs: [link={url}/docs]{escape(url)}/docs[/link]")
    if seeded is not None:
        token = mint_token(seeded.tenant, [Role.COORDINATOR], programs=[seeded.program])
        profiles, matching = found.services.get("profiles", ""), found.services.get("matching", "")
        scheduling, feedback = found.services.get("scheduling", ""), found.services.get("feedback", "")
        program = seeded.program_id
        console.print("\n  Example calls (the token is a coordinator's of the demo program, valid 8 hours):")
        console.print(f"  export TOKEN={escape(token)}", highlight=False, soft_wrap=True)
        calls = [
            f"{profiles}/v1/programs/{program}",
            f'"{matching}/v1/programs/{program}/matches?state=active"',
            *([f"{matching}/v1/rounds/{seeded.round_id}"] if seeded.round_id else []),
            *([f"{scheduling}/v1/matches/{seeded.match_id}/check-ins"] if seeded.match_id else []),
            f"{feedback}/v1/programs/{program}/report",
        ]
        for url in calls:
            console.print(f'  curl -s -H "Authorization: Bearer $TOKEN" {escape(url)}', highlight=False, soft_wrap=True)
        console.print(f"  (new tokens: {escape(command('token --role coordinator'))})", highlight=False)
    console.print(f"\n  Follow the events:   {escape(command('events tail --from-beginning'))}", highlight=False)
    console.print(f"  Dead letters:        {escape(command('dlq list mentorloom.matching.v1.dlq'))}", highlight=False)
    if seeded is not None:
        print_next_round_hint()


def print_next_round_hint() -> None:
    """Another cohort round, right after the demo's, has no one to match (its proposals hold the mentors' slots until
    answered): say so, and what to do first, rather than suggest a round that reports no free mentor."""
    sample = Path(os.path.relpath(SAMPLE_IMPORT)) if SAMPLE_IMPORT.exists() else Path("people.csv")
    for line in (
        "\n  Another cohort round: right after the demo's it finds no one new to match",
        "  (the demo's proposals hold the mentors' slots until answered); import",
        "  participants first, then run it:",
    ):
        console.print(line, highlight=False)
    console.print(f"    {escape(command('import ' + shlex.quote(str(sample))))}", highlight=False, soft_wrap=True)
    console.print(f"    {escape(command('match round'))}", highlight=False)
