"""The `mentorloom` tool's hints name a command the user can type (`./dev mentorloom …` when run through ./dev), and
what a user copies from its output (addresses, ids) is printed whole."""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from deploy.local import cli, dead_letter_table
from deploy.local.cli import app as mentorloom
from deploy.local.invocation import DEV_SCRIPT_VARIABLE, tool_command
from deploy.local.output import cells
from deploy.local.stack import LocalStack, StopSignals
from tests.local_stack.test_cli_errors import (
    PROJECT_ROOT,
    DemoServices,
    ProfilesWithoutParticipants,
    demo_services,
    gone_launcher,
    run_dev,
    state,
    this_process,
    words,
)

THROUGH_DEV: dict[str, str | None] = {DEV_SCRIPT_VARIABLE: "./dev"}
SOME_PROGRAM = ["--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4())]
ON_PATH: dict[str, str | None] = {DEV_SCRIPT_VARIABLE: None}  # unset, whatever the test run's environment has
WAYS = pytest.mark.parametrize(
    ("env", "tool"), [(THROUGH_DEV, "./dev mentorloom"), (ON_PATH, "mentorloom")], ids=["dev", "path"]
)


def run_with(env: dict[str, str | None], data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(mentorloom, [*args, "--data-dir", str(data_dir)], env=env)


# --- hints name the command the user typed -------------------------------------------------------------------------


def no_stack(_: Path) -> None:
    pass


def a_running_stack(data_dir: Path) -> None:
    (data_dir / "state.json").write_text(json.dumps(state(this_process())))


def a_launcher_gone_leaving_servers(data_dir: Path) -> None:
    # This test process stands in for the servers: it runs, with the start time recorded.
    servers = dict.fromkeys(("postgres", "redis", "kafka"), this_process())
    (data_dir / "state.json").write_text(json.dumps(state(gone_launcher(), servers)))


HINTS = {
    "status without a stack": (no_stack, ["status"], 3, "Start one with: {tool} up"),
    "down without a stack": (no_stack, ["down"], 3, "Start one with: {tool} up"),
    "match round without a stack": (
        no_stack,
        ["match", "round", "--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4())],
        3,
        "start one with: {tool} up",
    ),
    "status of a gone launcher": (a_launcher_gone_leaving_servers, ["status"], 3, "stop them with: {tool} down"),
    "up over a gone launcher's servers": (
        a_launcher_gone_leaving_servers,
        ["up"],
        2,
        "stop them first with: {tool} down",
    ),
    "up while a stack runs": (a_running_stack, ["up"], 2, "(see `{tool} status`)"),
    "match round without the demo's ids": (a_running_stack, ["match", "round"], 2, "run `{tool} demo` first"),
}


@WAYS
@pytest.mark.parametrize("case", HINTS)
def test_every_hint_names_the_command_the_user_ran_the_tool_with(
    tmp_path: Path, case: str, env: dict[str, str | None], tool: str
) -> None:
    arrange, args, code, hint = HINTS[case]
    arrange(tmp_path)

    result = run_with(env, tmp_path, *args)

    assert result.exit_code == code, result.output
    said = words(result.output)
    assert hint.format(tool=tool) in said
    if tool == "mentorloom":
        assert "./dev" not in said


class StackRunningUntilAServiceExits:
    """What `up` drives once the servers run: no service to wait for, one service process that has exited."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.services: list[str] = []
        exited = subprocess.Popen(["true"])
        exited.wait()
        self.service_procs = {"profiles": ServiceProcess(exited, data_dir / "profiles.log")}

    def start_infrastructure(self, report: Any) -> None:
        pass

    def start_services(self, report: Any) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return state(this_process())


class ServiceProcess:
    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process, self.log_path = process, log_path

    def alive(self) -> bool:
        return False


@WAYS
def test_up_says_it_runs_naming_the_down_command_the_user_can_type(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str | None],
    tool: str,
) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "print_guide", lambda _: None)

    stack = cast(LocalStack, StackRunningUntilAServiceExits(tmp_path))
    code = cli._start_and_watch(stack, 1.0, False, threading.Event(), StopSignals())

    assert code == 1
    assert f"Mentorloom is running. Ctrl-C (or `{tool} down`) stops everything." in words(capsys.readouterr().out)


@pytest.mark.parametrize("dev", ["./dev", str(PROJECT_ROOT / "dev")], ids=["relative", "absolute"])
def test_dev_tells_the_tool_how_it_was_run_so_its_hints_name_dev(tmp_path: Path, dev: str) -> None:
    result = run_dev("mentorloom", "status", "--data-dir", str(tmp_path), cwd=PROJECT_ROOT, dev=dev)

    assert result.returncode == 3, result.stdout + result.stderr
    assert words(result.stderr).endswith(f"Start one with: {dev} mentorloom up")


def test_an_installed_tool_run_by_its_name_names_itself_and_one_run_by_its_path_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEV_SCRIPT_VARIABLE, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mentorloom"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)

    monkeypatch.setattr(sys, "argv", [str(script), "status"])  # found on PATH: the shell hands its full path
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    on_path = tool_command()
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", ["venv dir/bin/mentorloom", "status"])  # typed as a path
    by_path = tool_command()

    assert (on_path, by_path) == ("mentorloom", "'venv dir/bin/mentorloom'")


def test_help_run_through_dev_names_dev_in_its_usage_and_in_the_commands_it_quotes() -> None:
    shown = run_dev("mentorloom", "down", "--help", cwd=PROJECT_ROOT, env={"COLUMNS": "200"}, dev="./dev").stdout

    assert "Usage: ./dev mentorloom down [OPTIONS]" in shown
    assert "Stop a stack started by `./dev mentorloom up` in another terminal" in shown


# --- text from users and services is shown as it is, never read as rich markup ------------------------------------

# "[/]" ended a command with a MarkupError traceback; "[type=missing]" and "[x]" vanished from what was shown.
BRACKETED = ["list [/] bad", "Field required [type=missing]", "[x]"]


def shown(result: Result) -> str:
    return words(result.output.replace("│", " "))


class ProfilesRefusingRows(ProfilesWithoutParticipants):
    """An import whose rows all failed, a row per message (its column named the same), by default bracketed ones
    as pydantic writes them."""

    messages: ClassVar[list[str]] = BRACKETED

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.drain_body()
        errors = [{"row_number": n, "column": text, "message": text} for n, text in enumerate(self.messages, start=2)]
        failed = len(errors)
        report = {"id": str(uuid.uuid4()), "status": "completed", "rows_processed": failed, "rows_imported": 0}
        self.answer({**report, "rows_unchanged": 0, "rows_failed": failed, "errors": errors, "errors_truncated": False})


class DemoServicesExplainingInBrackets(DemoServices):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if urlsplit(self.path).path.endswith("/shortlist"):
            top = {"mentor_person_id": self.person_id("M-00001"), "score": 0.8, "explanation": " ".join(BRACKETED)}
            self.answer({"entries": [top]})
        else:
            super().do_GET()


def test_the_import_error_table_shows_bracketed_messages_and_columns_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("external_id\n")
    with demo_services([(1, 1)], ProfilesRefusingRows) as (url, _):  # type: ignore[arg-type]
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"profiles": url})))
        result = run_with(ON_PATH, tmp_path, "import", str(tmp_path / "people.csv"), *SOME_PROGRAM)

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    for text in BRACKETED:
        assert f"{text} {text}" in shown(result)


class ProfilesKeepingTheUpload(ProfilesWithoutParticipants):
    """An import that took every row, keeping the bytes and content type it received."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = b""
        if self.headers.get("Transfer-Encoding") != "chunked":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        else:
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size + 2)[:size]
            self.rfile.readline()
        self.received.append((self.headers.get("Content-Type", ""), body))
        report = {"id": str(uuid.uuid4()), "status": "completed", "rows_processed": 1, "rows_imported": 1}
        self.answer({**report, "rows_unchanged": 0, "rows_failed": 0, "errors": [], "errors_truncated": False})


@pytest.mark.parametrize(
    "saved",
    [
        codecs.BOM_UTF8 + "email;display_name\r\nzoë@example.org;Zoë\r\n".encode(),
        codecs.BOM_UTF16_LE + "email\tdisplay_name\r\nli@example.org\t李\r\n".encode("utf-16-le"),
        b"email,display_name\rold@example.org,Old\r",
    ],
    ids=["excel csv utf-8 semicolons", "excel unicode text", "old mac"],
)
def test_the_import_uploads_the_file_byte_for_byte_whatever_its_encoding_and_separator(
    tmp_path: Path, saved: bytes
) -> None:
    # The service recognises the encoding, separator and line ending (docs/profiles/csv-import.md): the command
    # must not decode or re-encode the file on its way.
    (tmp_path / "people.csv").write_bytes(saved)
    with demo_services([(1, 1)], ProfilesKeepingTheUpload) as (url, _):  # type: ignore[arg-type]
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"profiles": url})))
        ProfilesKeepingTheUpload.received.clear()
        result = run_with(ON_PATH, tmp_path, "import", str(tmp_path / "people.csv"), *SOME_PROGRAM)

    assert result.exit_code == 0, result.output
    assert ProfilesKeepingTheUpload.received == [("text/csv", saved)]


def test_the_demo_shows_a_short_list_explanation_with_brackets_as_it_is(tmp_path: Path) -> None:
    with demo_services([(3, 2)], DemoServicesExplainingInBrackets) as (url, _):
        (tmp_path / "state.json").write_text(
            json.dumps(state(this_process(), services={"profiles": url, "matching": url}))
        )
        result = run_with(ON_PATH, tmp_path, "demo", "--mentors", "2", "--mentees", "3")

    assert result.exit_code == 0, result.output
    assert f"why: {' '.join(BRACKETED)}" in shown(result)


@pytest.mark.parametrize(
    ("args", "typed", "code"),
    [
        (["events", "tail", "--topic", "x[/]"], "x[/]", 2),
        (["events", "tail", "--type", "[/]"], "[/]", 2),
        (["status"], "stack [bold]", 3),
        (["down"], "stack [bold]", 3),
    ],
    ids=["a topic", "a type", "status's data dir", "down's data dir"],
)
def test_what_the_user_typed_is_echoed_as_it_is(tmp_path: Path, args: list[str], typed: str, code: int) -> None:
    data_dir = tmp_path / "stack [bold]"  # a directory's name: "[bold]" is no rich style here
    data_dir.mkdir()

    result = run_with(ON_PATH, data_dir, *args)

    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    assert typed in shown(result)


# --- what a user copies is printed whole ---------------------------------------------------------------------------


def a_whole_stack() -> dict[str, Any]:
    """A state file of a stack of four services, its PostgreSQL on a five-digit port (the longest URLs)."""
    services = ("profiles", "matching", "scheduling", "feedback")
    running = state(this_process(), services={s: f"http://127.0.0.1:{8101 + n}" for n, s in enumerate(services)})
    urls = {s: f"postgresql+asyncpg://postgres@127.0.0.1:54321/mentorloom_{s}" for s in services}
    return {**running, "postgres": {**running["postgres"], "port": 54321, "urls": urls}}


def copyable(whole: dict[str, Any]) -> list[str]:
    return [
        *whole["postgres"]["urls"].values(),
        whole["redis"]["url"],
        *(f"{s['url']}/docs" for s in whole["services"].values()),
    ]


def test_status_prints_every_url_whole_on_one_line_in_an_80_column_terminal(tmp_path: Path) -> None:
    whole = a_whole_stack()
    (tmp_path / "state.json").write_text(json.dumps(whole))

    result = run_with(ON_PATH, tmp_path, "status")  # not a terminal: rich's 80 columns

    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for url in copyable(whole):
        assert url in result.output  # in one piece: neither cut short nor wrapped
    assert "psql -h 127.0.0.1 -p 54321 -U postgres" in result.output


def test_ups_table_of_ready_services_prints_every_url_whole(capsys: pytest.CaptureFixture[str]) -> None:
    whole = a_whole_stack()

    cli._print_status(whole, dict.fromkeys(whole["services"], True))

    printed = capsys.readouterr().out
    assert "…" not in printed
    for url in copyable(whole):
        assert url in printed


@pytest.mark.parametrize("width", [80, 120])
def test_the_dead_letter_table_keeps_positions_and_event_ids_whole_and_cuts_no_cell_short(width: int) -> None:
    event_id = str(uuid.uuid4())
    letter = cells(
        "12:3456", "handler_failed", "org.mentorloom.profile.updated.v1", event_id, "ValueError: " + "x" * 90
    )
    out = io.StringIO()

    Console(file=out, width=width).print(dead_letter_table.table("1 dead letter in t.dlq", [letter]))

    assert "…" not in out.getvalue()
    assert event_id in out.getvalue()
    assert "12:3456" in out.getvalue()
    assert "".join(re.findall(r"x+", out.getvalue())) == "x" * 90


def test_the_import_error_table_cuts_no_message_short(tmp_path: Path) -> None:
    long_message = ["email: not an address: " + "q" * 70 + "@example.edu"]
    stand_in = type("ProfilesRefusingALongRow", (ProfilesRefusingRows,), {"messages": long_message})
    (tmp_path / "people.csv").write_text("external_id\n")
    with demo_services([(1, 1)], stand_in) as (url, _):
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"profiles": url})))
        result = run_with(ON_PATH, tmp_path, "import", str(tmp_path / "people.csv"), *SOME_PROGRAM)

    assert result.exit_code == 1, result.output
    assert "…" not in result.output
    assert result.output.count("q") == 2 * 70, result.output  # its column and message cells, every letter


class ProfilesKeepingTwoProfiles(ProfilesWithoutParticipants):
    """A coordinator's import whose rows all went through, two of them people of another program (enrolled, their
    stored profile kept)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.drain_body()
        report = {"id": str(uuid.uuid4()), "status": "completed", "rows_processed": 5, "rows_imported": 3}
        self.answer(
            {
                **report,
                "rows_unchanged": 0,
                "rows_failed": 0,
                "rows_profile_kept": 2,
                "errors": [],
                "errors_truncated": False,
            }
        )


def test_the_import_summary_counts_the_people_enrolled_with_their_profile_kept(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("external_id\n")
    with demo_services([(1, 1)], ProfilesKeepingTwoProfiles) as (url, _):  # type: ignore[arg-type]
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"profiles": url})))
        result = run_with(ON_PATH, tmp_path, "import", str(tmp_path / "people.csv"), *SOME_PROGRAM)

    assert result.exit_code == 0, result.output
    assert "2 enrolled with their profile kept" in shown(result)  # 3 + 0 + 0 of 5 rows did not add up


# --- the demo's guide ----------------------------------------------------------------------------------------------


def test_the_demos_guide_says_why_a_round_now_finds_no_one_and_suggests_an_import_first(tmp_path: Path) -> None:
    # Right after the demo its proposals hold the mentors' slots: the bare "Run a cohort round" it suggested reported
    # no free mentor.
    with demo_services([(3, 2)]) as (url, _):
        every_service = {name: url for name in ("profiles", "matching", "scheduling", "feedback")}
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services=every_service)))
        result = run_with(ON_PATH, tmp_path, "demo", "--mentors", "2", "--mentees", "3")

    assert result.exit_code == 0, result.output
    said = words(result.output)
    assert "Run a cohort round: mentorloom match round" not in said
    assert "right after the demo's it finds no one new to match (the demo's proposals hold the mentors' slots" in said
    suggested = said.split("until answered); import participants first, then run it: mentorloom import ")[1].split()
    assert (Path(suggested[0]).resolve(), suggested[1:4]) == (
        PROJECT_ROOT / "docs" / "profiles" / "sample-import.csv",
        ["mentorloom", "match", "round"],
    )
