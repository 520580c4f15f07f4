"""`mentorloom`: run the local stack, seed it, drive it and look inside it.

mentorloom up [--no-demo]                 start PostgreSQL, Redis, the broker and every service, run the demo,
                                          print where to look; Ctrl-C stops all
mentorloom down                           stop a stack started from another terminal
mentorloom status [--json]                what runs where
mentorloom demo [--json]                  seed a realistic program and drive it through its lifecycle
mentorloom token --role R [--tenant T]    mint a dev token (defaults: the demo's organisation and program)
mentorloom import FILE.csv [--program P]  upload participants; per-row error report
mentorloom match round|approve            run a program's cohort round, approve its proposals
mentorloom events tail [--type T]         follow the event stream (pretty lines or --json)
mentorloom dlq list|replay TOPIC          inspect or replay dead letters

Exit codes: 0 ok, 1 the operation failed (a service refused, an import had failed rows, …), 2 usage error,
3 no running stack.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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
from deploy.local.stack import LocalStack, default_data_dir, read_state, stop_running_stack

app = typer.Typer(help="Mentorloom local stack and tools.", no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(match_app, name="match")
app.add_typer(events_app, name="events")
app.command("token")(token_command)
app.command("import")(import_command)
app.command("demo")(demo_command)
console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="Where the stack keeps data and logs (env MENTORLOOM_STACK_DIR).")
]


def _require_state(data_dir: Path) -> dict[str, object]:
    state = read_state(data_dir)
    if state is None:
        err.print(f"[red]No running stack found in {data_dir}.[/red] Start one with: mentorloom up")
        raise typer.Exit(code=3)
    return state


@app.command()
def up(
    data_dir: DataDir = default_data_dir(),
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for services to become ready.")] = 180.0,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Seed the demo program once everything is up.")] = True,
) -> None:
    """Start the whole platform locally, run the demo, and keep it running until Ctrl-C (or `mentorloom down`)."""
    if read_state(data_dir) is not None:
        err.print(f"[yellow]A stack is already running from {data_dir}[/yellow] (see `mentorloom status`).")
        raise typer.Exit(code=2)
    stack = LocalStack(data_dir)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        stack.start_infrastructure(report=lambda m: console.print(f"[dim]•[/dim] {m}"))
        stack.start_services(report=lambda m: console.print(f"[dim]•[/dim] {m}"))
        stack.write_state()
        ready = stack.wait_until_ready(ready_timeout) if stack.services else {}
        _print_status(read_state(data_dir) or {}, ready)
        if demo and all(ready.values()) and {"profiles", "matching"} <= set(stack.services):
            try:
                run_demo_with_progress(data_dir)
            except Exception as exc:  # the platform still runs; the demo is a bonus
                err.print(f"[red]The demo failed:[/red] {exc}")
        if all(ready.values()):
            print_guide(data_dir)
        console.print("[bold green]Mentorloom is running.[/bold green] Ctrl-C (or `mentorloom down`) stops everything.")
        while not stopping.wait(1.0):
            for name, proc in stack.service_procs.items():
                if not proc.alive():
                    err.print(f"[red]service {name} exited[/red]; see {proc.log_path}")
                    stopping.set()
    except Exception as exc:
        err.print(f"[red]Start failed:[/red] {exc}")
        stack.stop(report=lambda m: console.print(f"[dim]•[/dim] {m}"))
        raise typer.Exit(code=1) from exc
    stack.stop(report=lambda m: console.print(f"[dim]•[/dim] {m}"))
    console.print("Stopped.")


@app.command()
def down(data_dir: DataDir = default_data_dir()) -> None:
    """Stop a stack started by `mentorloom up` in another terminal."""
    _require_state(data_dir)
    if stop_running_stack(data_dir):
        console.print("Stopped.")
    else:
        err.print("[red]The stack did not stop in time.[/red]")
        raise typer.Exit(code=1)


@app.command()
def status(data_dir: DataDir = default_data_dir(), as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show where PostgreSQL, Redis, the broker and the services listen."""
    state = _require_state(data_dir)
    if as_json:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
        return
    _print_status(state, None)


def _print_status(state: dict[str, object], ready: dict[str, bool] | None) -> None:
    table = Table(title="Mentorloom local stack")
    table.add_column("component")
    table.add_column("address")
    table.add_column("ready" if ready is not None else "pid")
    pg = state.get("postgres", {})
    assert isinstance(pg, dict)
    for svc, url in pg.get("urls", {}).items():
        table.add_row(f"postgres/{svc}", url, "" if ready is not None else str(pg.get("pid")))
    for name, key in (("redis", "url"), ("kafka", "bootstrap")):
        comp = state.get(name, {})
        assert isinstance(comp, dict)
        table.add_row(name, str(comp.get(key)), "" if ready is not None else str(comp.get("pid")))
    services = state.get("services", {})
    assert isinstance(services, dict)
    for svc, info in services.items():
        mark = ("yes" if ready.get(svc) else "NO") if ready is not None else str(info.get("pid"))
        table.add_row(f"service/{svc}", f"{info['url']}  (docs: {info['url']}/docs)", mark)
    console.print(table)


def _kafka_bootstrap(data_dir: Path, bootstrap: str | None) -> str:
    if bootstrap:
        return bootstrap
    state = _require_state(data_dir)
    kafka = state["kafka"]
    assert isinstance(kafka, dict)
    return str(kafka["bootstrap"])


def _dead_letter_topic_argument(topic: str) -> None:
    from shared.messaging.dlq import NotADeadLetterTopicError, require_dead_letter_topic

    try:
        require_dead_letter_topic(topic)
    except NotADeadLetterTopicError as error:
        raise typer.BadParameter(str(error), param_hint="TOPIC") from error


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[str, typer.Argument(help="dead-letter topic, e.g. mentorloom.profiles.v1.dlq")],
    data_dir: DataDir = default_data_dir(),
    bootstrap: Annotated[
        str | None,
        typer.Option(help="broker address (default: the local stack's); MENTORLOOM_KAFKA_SECURITY_PROTOCOL etc. apply"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List dead letters with their error headers."""
    from shared.messaging.dlq import read_dead_letters

    _dead_letter_topic_argument(topic)
    with reported_errors():
        settings = kafka_settings(bootstrap)
        letters = asyncio.run(read_dead_letters(_kafka_bootstrap(data_dir, bootstrap), topic, settings=settings))
    if as_json:
        sys.stdout.write(json.dumps([d.summary() for d in letters], indent=2) + "\n")
        return
    table = Table(title=f"{len(letters)} dead letter(s) in {topic}")
    for col in ("partition:offset", "reason", "type", "event id", "error"):
        table.add_column(col)
    for d in letters:
        table.add_row(
            f"{d.partition}:{d.offset}",
            d.reason,
            d.event_type or "-",
            d.event_id or "-",
            f"{d.error_type}: {d.error[:80]}",
        )
    console.print(table)


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
    data_dir: DataDir = default_data_dir(),
    bootstrap: Annotated[
        str | None,
        typer.Option(help="broker address (default: the local stack's); MENTORLOOM_KAFKA_SECURITY_PROTOCOL etc. apply"),
    ] = None,
) -> None:
    """Republish dead letters to their original topic (safe to repeat: consumers are idempotent)."""
    from shared.messaging.dlq import UnknownDeadLetterError, parse_position, replay_dead_letters

    _dead_letter_topic_argument(topic)

    try:
        positions = None if at is None else [parse_position(text) for text in at]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--at") from error
    try:
        with reported_errors():
            settings = kafka_settings(bootstrap)
            broker = _kafka_bootstrap(data_dir, bootstrap)
            letters = asyncio.run(replay_dead_letters(broker, topic, positions, settings=settings))
    except UnknownDeadLetterError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(code=1) from error
    console.print(f"replayed {len(letters)} dead letter(s) from {topic}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
