"""`mentorloom`: run the local stack, seed it, drive it and look inside it.

mentorloom up [--no-demo]                 start PostgreSQL, Redis, the broker and every service, run the demo,
                                          print where to look; Ctrl-C (or closing the terminal) stops all
mentorloom down                           stop a stack started from another terminal (or left by a launcher
                                          that is gone)
mentorloom status [--json]                what runs where
mentorloom demo [--json]                  seed a realistic program and drive it through its lifecycle
mentorloom token --role R [--tenant T]    mint a dev token (defaults: the demo's organisation and program)
mentorloom import FILE.csv [--program P]  upload participants; per-row error report
mentorloom match round|approve            run a program's cohort round, approve its proposals
mentorloom events tail [--type T]         follow the event stream (pretty lines or --json)
mentorloom dlq list|replay TOPIC          inspect or replay dead letters

Exit codes: 0 ok, 1 the operation failed (a service refused, an import had failed rows, a service of `up` was not
ready or exited, …), 2 usage error, 3 no running stack; `up` stopped by a signal before it was running: 128 + the
signal's number (130 for Ctrl-C), as a shell reports it. Once running, a stop signal is the normal end: 0. A `dlq`
command stopped by Ctrl-C: 130 (a replay says how many it replayed and how to go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from deploy.local.commands import (
    demo_command,
    events_app,
    import_command,
    kafka_settings,
    match_app,
    print_guide,
    reported_errors,
    run_demo_with_progress,
    token_command,
)
from deploy.local.invocation import command, tool_command
from deploy.local.output import cells
from deploy.local.stack import (
    LocalStack,
    StackState,
    StateFileError,
    StopRequested,
    StopSignals,
    default_data_dir,
    load_state,
    stop_leftover_processes,
    stop_running_stack,
)

if TYPE_CHECKING:
    from shared.messaging.dlq import Position

app = typer.Typer(help="Mentorloom local stack and tools.", no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(match_app, name="match")
app.add_typer(events_app, name="events")
# Help that names a command to type is written with the command the user ran the tool with (see invocation.py).
app.command(
    "token",
    help=f"Mint a dev token the local services accept: `export TOKEN=$({command('token --role coordinator')})`.",
)(token_command)
app.command("import")(import_command)
app.command("demo")(demo_command)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", resolve_path=True, help="Where the stack keeps data and logs (env MENTORLOOM_STACK_DIR)."
    ),
]


def _load_state(data_dir: Path) -> StackState | None:
    """The state file, or None; a damaged one is reported in a sentence (exit 1)."""
    try:
        return load_state(data_dir)
    except StateFileError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=1) from exc


def _require_state(data_dir: Path) -> dict[str, object]:
    state = _load_state(data_dir)
    if state is None or not state.launcher_running():
        leftovers = state.leftover_processes() if state is not None else []
        if state is not None and leftovers:
            err.print(
                f"[red]The launcher of the stack in {escape(str(data_dir))} (pid {state.launcher_pid}) is gone,[/red] "
                f"but {_names(leftovers)} still run; stop them with: {escape(command('down'))}"
            )
        else:
            err.print(_no_running_stack(data_dir))
        raise typer.Exit(code=3)
    return state.model_dump(mode="json")


def _no_running_stack(data_dir: Path) -> str:
    return f"[red]No running stack found in {escape(str(data_dir))}.[/red] Start one with: {escape(command('up'))}"


def _names(leftovers: Sequence[tuple[str, object]]) -> str:
    return ", ".join(name for name, _ in leftovers)


def _say(message: str) -> None:
    """Print, even to a terminal that was closed (SIGHUP): stopping must go on when no one can read it."""
    with contextlib.suppress(OSError):
        console.print(message)


def _step(message: str) -> None:
    _say(f"[dim]•[/dim] {message}")


def _warn(message: str) -> None:
    with contextlib.suppress(OSError):
        err.print(message)


@app.command(
    help=f"Start the whole platform locally, run the demo, and keep it running until Ctrl-C (or `{command('down')}`)."
)
def up(
    data_dir: DataDir = default_data_dir(),
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for services to become ready.")] = 180.0,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Seed the demo program once everything is up.")] = True,
) -> None:
    _refuse_a_second_stack(data_dir)
    stack = LocalStack(data_dir)
    signals = StopSignals()
    signals.install()
    running = threading.Event()
    try:
        code = _start_and_watch(stack, ready_timeout, demo, running, signals)
    except typer.Exit as exc:  # a command's own failure, already reported
        signals.stopping()
        code = exc.exit_code
    except StopRequested as stop:
        signals.stopping()
        # Cut short during start-up: a shell's code for a command ended by that signal. Once the stack runs, a stop
        # signal (Ctrl-C, `mentorloom down`) is how it is meant to end.
        code = 0 if running.is_set() else 128 + stop.signum
        _say(f"{signal.Signals(stop.signum).name} received: stopping everything")
    except Exception as exc:
        signals.stopping()
        _warn(f"[red]Start failed:[/red] {escape(str(exc))}")
        code = 1
    finally:
        signals.stopping()  # a second Ctrl-C must not cut the orderly stop short
        stack.stop(report=_step)
    _say("Stopped.")
    if code:
        raise typer.Exit(code=code)


def _refuse_a_second_stack(data_dir: Path) -> None:
    state = _load_state(data_dir)
    if state is None:
        return
    if state.launcher_running():
        _warn(
            f"[yellow]A stack is already running from {escape(str(data_dir))}[/yellow] "
            f"(see `{escape(command('status'))}`)."
        )
        raise typer.Exit(code=2)
    leftovers = state.leftover_processes()
    if leftovers:
        _warn(
            f"[yellow]The launcher of the stack in {escape(str(data_dir))} is gone, but {_names(leftovers)} still "
            f"run[/yellow]; stop them first with: {escape(command('down'))}"
        )
        raise typer.Exit(code=2)


def _start_and_watch(
    stack: LocalStack, ready_timeout: float, demo: bool, running: threading.Event, signals: StopSignals
) -> int:
    """Start everything, wait until the services are ready, run the demo, then watch the services; the exit code
    when one of them fails. A stop signal raises StopRequested from wherever this is (and from the waiting loops
    again, should its first raise have been lost in a finalizer)."""
    stack.start_infrastructure(report=_step)
    signals.raise_if_lost()
    stack.start_services(report=_step)
    ready = stack.wait_until_ready(ready_timeout, keep_going=signals.raise_if_lost) if stack.services else {}
    _print_status(stack.state(), ready)
    not_ready = [service for service, is_ready in ready.items() if not is_ready]
    for service in not_ready:
        _warn(
            f"[red]Service {service} was not ready within {ready_timeout:.0f} s[/red]; "
            f"see its log: {escape(str(stack.service_procs[service].log_path))}"
        )
    if not_ready:
        return 1
    if demo and {"profiles", "matching"} <= set(stack.services):
        try:
            run_demo_with_progress(stack.data_dir)
        except typer.Exit:  # reported_errors has said what failed
            _warn("The demo failed (see above); the platform itself runs.")
        except Exception as exc:  # the platform still runs; the demo is a bonus
            _warn(f"[red]The demo failed:[/red] {escape(str(exc))}; the platform itself runs.")
    print_guide(stack.data_dir)
    signals.raise_if_lost()  # a stop during the demo still ends start-up with 128 + the signal
    running.set()  # before saying so: a Ctrl-C prompted by the message is the normal end
    console.print(
        f"[bold green]Mentorloom is running.[/bold green] Ctrl-C (or `{escape(command('down'))}`) stops everything."
    )
    while True:
        for name, proc in stack.service_procs.items():
            if not proc.alive():
                status = proc.process.returncode if proc.process is not None else None
                _warn(
                    f"[red]Service {name} exited (status {status})[/red]; see its log: {escape(str(proc.log_path))}. "
                    "Stopping everything."
                )
                return 1
        signals.raise_if_lost()
        time.sleep(1.0)


@app.command(
    help=f"Stop a stack started by `{command('up')}` in another terminal, or the servers its launcher left running."
)
def down(
    data_dir: DataDir = default_data_dir(),
    timeout: Annotated[
        float, typer.Option(help="seconds the launcher gets to stop everything before its servers are stopped directly")
    ] = 90.0,
) -> None:
    state = _load_state(data_dir)
    launcher_killed = False
    if state is not None and state.launcher_running():
        if stop_running_stack(data_dir, timeout=timeout):
            console.print("Stopped.")
            return
        if not state.kill_launcher():  # an older state file: its launcher's identity cannot be confirmed
            err.print("[red]The stack did not stop in time.[/red]")
            raise typer.Exit(code=1)
        err.print(
            f"[yellow]The launcher (pid {state.launcher_pid}) did not stop within {timeout:.0f} s and was killed;"
            " stopping its servers directly.[/yellow]"
        )
        launcher_killed = True
    leftovers = state.leftover_processes() if state is not None else []
    if launcher_killed and not leftovers:  # it had stopped its servers and hung after that
        (data_dir / "state.json").unlink(missing_ok=True)
        console.print("Stopped.")
        return
    if state is None or not leftovers:
        unconfirmed = state.unconfirmed_pids() if state is not None else []
        if unconfirmed:
            err.print(
                f"[red]No running stack found in {escape(str(data_dir))},[/red] but its state file names running "
                "processes "
                f"without their start times (pids {', '.join(map(str, unconfirmed))}); stop them yourself if they "
                "are this stack's servers."
            )
        elif state is not None:
            (data_dir / "state.json").unlink(missing_ok=True)  # a stale file: nothing it names runs
        if not unconfirmed:
            err.print(_no_running_stack(data_dir))
        raise typer.Exit(code=3)
    if not launcher_killed:
        console.print(f"The launcher (pid {state.launcher_pid}) is gone; stopping what it left running.")
    killed = stop_leftover_processes(leftovers, data_dir, report=_step)
    if killed:
        err.print(f"[yellow]{', '.join(killed)} did not stop in time and were killed.[/yellow]")
    console.print("Stopped.")


@app.command()
def status(
    data_dir: DataDir = default_data_dir(),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stack's state (processes, addresses, URLs) as JSON on stdout.")
    ] = False,
) -> None:
    """Show where PostgreSQL, Redis, the broker and the services listen."""
    state = _require_state(data_dir)
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
        return
    _print_status(state, None)


def _print_status(state: dict[str, object], ready: dict[str, bool] | None) -> None:
    """The table of what runs where, then PostgreSQL's URLs under it, one a line: a user copies them, and no table
    cell of a terminal's width holds them whole."""
    table = Table(title="Mentorloom local stack")
    table.add_column("component")
    table.add_column("address", overflow="fold")  # too narrow a terminal splits an address, never cuts it short
    table.add_column("ready" if ready is not None else "pid")
    pg = state.get("postgres", {})
    assert isinstance(pg, dict)
    table.add_row(*cells("postgres", f"127.0.0.1:{pg.get('port')}", "" if ready is not None else pg.get("pid")))
    for name, key in (("redis", "url"), ("kafka", "bootstrap")):
        comp = state.get(name, {})
        assert isinstance(comp, dict)
        table.add_row(*cells(name, comp.get(key), "" if ready is not None else comp.get("pid")))
    services = state.get("services", {})
    assert isinstance(services, dict)
    for svc, info in services.items():
        mark = ("yes" if ready.get(svc) else "NO") if ready is not None else str(info.get("pid"))
        table.add_row(*cells(f"service/{svc}", f"{info['url']}  (docs: {info['url']}/docs)", mark))
    console.print(table)
    urls: dict[str, str] = pg.get("urls", {})
    if urls:
        console.print(
            f"PostgreSQL (psql -h 127.0.0.1 -p {pg.get('port')} -U postgres mentorloom_SERVICE):",
            markup=False,
            highlight=False,
        )
        for svc, url in urls.items():
            console.print(f"  {svc:<11} {url}", markup=False, highlight=False, soft_wrap=True)


def _kafka_bootstrap(data_dir: Path, bootstrap: str | None) -> str:
    if bootstrap:
        return bootstrap
    state = _require_state(data_dir)
    kafka = state["kafka"]
    assert isinstance(kafka, dict)
    return str(kafka["bootstrap"])


def _dead_letter_topic_argument(topic: str, bootstrap: str | None) -> None:
    from shared.events.registry import TOPICS, dead_letter_topic
    from shared.messaging.dlq import NotADeadLetterTopicError, require_dead_letter_topic

    try:
        require_dead_letter_topic(topic)
    except NotADeadLetterTopicError as error:
        raise typer.BadParameter(str(error), param_hint="TOPIC") from error
    known = [dead_letter_topic(t) for t in TOPICS]
    # The local stack has only these: another name is a typo that would list "0 dead letters" as if all were well.
    # Another broker (--bootstrap) may have dead-letter topics of its own.
    if bootstrap is None and topic not in known:
        raise typer.BadParameter(
            f"the local stack has no dead-letter topic {topic!r}; it has {', '.join(known)}", param_hint="TOPIC"
        )


@contextlib.contextmanager
def _dead_letter_tool_errors(on_interrupt: Callable[[], str] = lambda: "interrupted (Ctrl-C)") -> Iterator[None]:
    """The dead-letter tool's failures in one line, exit 1 (Ctrl-C: what ``on_interrupt`` says, exit 130), as
    `python -m shared.messaging.dlq` says them; aiokafka's own log stays off the terminal meanwhile."""
    from shared.messaging.dlq import (
        BROKER_ERRORS,
        EXIT_INTERRUPTED,
        EXIT_STDOUT_CLOSED,
        NoSuchDeadLetterTopicError,
        ReplayStoppedError,
        UnknownDeadLetterError,
        broker_failure,
        client_logs_quiet,
        stdout_closed,
    )

    try:
        with client_logs_quiet():
            yield
    except (UnknownDeadLetterError, NoSuchDeadLetterTopicError, ReplayStoppedError) as error:
        _fail(str(error))
    except BrokenPipeError as error:  # an OSError, but no broker's: the reader of stdout went away (`| head`)
        stdout_closed()
        raise typer.Exit(code=EXIT_STDOUT_CLOSED) from error
    except BROKER_ERRORS as error:  # before reported_errors, whose TimeoutError is the demo's
        _fail(broker_failure(error))
    except KeyboardInterrupt:
        _fail(on_interrupt(), EXIT_INTERRUPTED)


def _fail(message: str, code: int = 1) -> NoReturn:
    sys.stdout.flush()  # what was listed before the failure, then why it stopped
    err.print(f"[red]{escape(message)}[/red]", soft_wrap=True)  # one line, however long: scripts grep it
    raise typer.Exit(code=code)


def _dlq_options(command: str, *, at: bool, start: bool, page: bool) -> None:
    from shared.messaging.dlq import option_conflict

    conflict = option_conflict(command, at=at, start=start, page=page)
    if conflict:
        raise typer.BadParameter(conflict, param_hint="--at" if at else "--from")  # a usage error: exit 2


def _positions_argument(texts: list[str] | None, option: str) -> list[Position] | None:
    from shared.messaging.dlq import parse_position

    try:
        return None if texts is None else [parse_position(text) for text in texts]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from error


def _cursor_argument(text: str | None) -> tuple[Position, ...]:
    from shared.messaging.dlq import parse_cursor

    try:
        return () if text is None else parse_cursor(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--from") from error


AtOption = Annotated[
    list[str] | None,
    typer.Option(
        "--at",
        metavar="PARTITION:OFFSET",
        help="only the dead letters at these positions, as `dlq list` shows them (repeatable)",
    ),
]


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[str, typer.Argument(help="dead-letter topic, e.g. mentorloom.profiles.v1.dlq")],
    data_dir: DataDir = default_data_dir(),
    bootstrap: Annotated[
        str | None,
        typer.Option(help="broker address (default: the local stack's); MENTORLOOM_KAFKA_SECURITY_PROTOCOL etc. apply"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the dead letters as a JSON array on stdout (a page note, if any, goes to stderr)."
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many, in partition:offset order (default 1000).")
    ] = None,
    offset: Annotated[
        int | None, typer.Option(min=0, help="Skip this many first (the next page is --from, as the note names it).")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show every one from --offset on (no --limit).")] = False,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="PARTITION:OFFSET[,…]",
            help="Show those from these positions on, one per partition: the next page, as a listing's note names it.",
        ),
    ] = None,
    at: AtOption = None,
) -> None:
    """List dead letters with their error headers (the first 1,000 unless told otherwise; it says so)."""
    from deploy.local.dead_letter_table import TablePrinter, WidestCells, row, table
    from shared.messaging.dlq import CHUNK_SIZE, PAGE_SIZE, DeadLetter, JsonArrayWriter, at_heading, find_dead_letters
    from shared.messaging.dlq import show_dead_letters as show_letters

    _dlq_options(
        "list", at=at is not None, start=start is not None, page=limit is not None or offset is not None or show_all
    )
    _dead_letter_topic_argument(topic, bootstrap)
    positions = _positions_argument(at, "--at")
    cursor = _cursor_argument(start)
    page_size = None if show_all else (limit or PAGE_SIZE)
    writer = JsonArrayWriter(sys.stdout)
    rows: list[tuple[Text, ...]] = []  # a page of at most PAGE_SIZE (or --at) rows for the table

    def show(d: DeadLetter) -> None:
        if as_json:  # written as read, so memory does not grow with the topic
            writer.write(d.summary())
        else:
            rows.append(row(d))

    streamed = False  # the table printed as read
    with reported_errors():
        settings = kafka_settings(bootstrap)
        broker = _kafka_bootstrap(data_dir, bootstrap)
        with _dead_letter_tool_errors():
            if positions is not None:
                found = asyncio.run(find_dead_letters(broker, topic, positions, settings=settings))
                for d in found:
                    show(d)
                heading, note = at_heading(topic, found), None
            elif as_json or (page_size is not None and page_size <= PAGE_SIZE):
                listing = asyncio.run(  # counts them all while streaming
                    show_letters(
                        broker, topic, show, offset=offset or 0, limit=page_size, settings=settings, start=cursor
                    )
                )
                heading, note = listing.heading(), listing.note()
            else:  # a table of any length: measured and counted by a first reading, printed by a second
                widest = WidestCells(console)
                listing = asyncio.run(
                    show_letters(
                        broker,
                        topic,
                        lambda d: widest.add(row(d)),
                        offset=offset or 0,
                        limit=page_size,
                        settings=settings,
                        start=cursor,
                    )
                )
                heading, note = listing.heading(), listing.note()
                if listing.shown:  # (else the empty table below)
                    printer = TablePrinter(console, heading, widest.widths(heading))
                    asyncio.run(
                        show_letters(
                            broker,
                            topic,
                            lambda d: printer.add(row(d), CHUNK_SIZE),
                            offset=offset or 0,
                            limit=page_size,
                            settings=settings,
                            until=listing.ends,  # the letters counted, not those added since
                            start=cursor,
                        )
                    )
                    printer.close()
                    streamed = True
            if as_json:
                writer.close()
            elif not streamed:
                console.print(table(heading, rows))
    if note:
        err.print(escape(note))


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="dead-letter topic")],
    at: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PARTITION:OFFSET",
            help="replay only the dead letters at these positions, as `dlq list` shows them (repeatable)",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="PARTITION:OFFSET",
            help="replay every dead letter from this position on, in partition:offset order (to go on after a stop)",
        ),
    ] = None,
    data_dir: DataDir = default_data_dir(),
    bootstrap: Annotated[
        str | None,
        typer.Option(help="broker address (default: the local stack's); MENTORLOOM_KAFKA_SECURITY_PROTOCOL etc. apply"),
    ] = None,
) -> None:
    """Republish dead letters to their original topic (safe to repeat: consumers are idempotent).

    Stopped by an error, it says how many it replayed and how to replay the rest."""
    from shared.messaging.dlq import ReplayProgress, interrupted, replay_dead_letters

    _dlq_options("replay", at=at is not None, start=start is not None, page=False)
    _dead_letter_topic_argument(topic, bootstrap)
    positions = _positions_argument(at, "--at")
    first = _positions_argument(None if start is None else [start], "--from")
    progress = ReplayProgress()
    with reported_errors():
        settings = kafka_settings(bootstrap)
        broker = _kafka_bootstrap(data_dir, bootstrap)
        with _dead_letter_tool_errors(on_interrupt=lambda: interrupted(topic, progress)):
            replayed = asyncio.run(
                replay_dead_letters(
                    broker, topic, positions, start=first[0] if first else None, settings=settings, progress=progress
                )
            )
    console.print(f"replayed {replayed} dead letter(s) from {escape(topic)}")


def main() -> None:
    app(prog_name=tool_command())  # "Usage: ./dev mentorloom …" when run through ./dev


if __name__ == "__main__":
    main()
