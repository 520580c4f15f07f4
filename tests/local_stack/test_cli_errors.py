"""The `mentorloom` tool's answers to a damaged state file, a launcher that is gone, a demo that cannot go on, long
dead-letter lists and relative paths: one sentence and a documented exit code, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psutil
import pytest
import typer
from typer.testing import CliRunner, Result

from deploy.local.cli import app as mentorloom
from deploy.local.client import StackEndpoints
from deploy.local.commands import reported_errors
from deploy.local.demo import DemoError, run_demo
from shared.events.registry import dead_letter_topic
from shared.messaging.dlq import CHUNK_SIZE, Position, page_note
from shared.messaging.kafka import ensure_topics, make_producer
from tests.messaging.support import chunk_sizes_the_dead_letter_tool_reads, send_dead_letters

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def words(text: str) -> str:
    """The text with its line breaks and runs of spaces as single spaces: rich wraps long lines."""
    return " ".join(text.split())


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(mentorloom, [*args, "--data-dir", str(data_dir)])


def state(
    launcher: tuple[int, float | None],
    servers: Mapping[str, tuple[int, float | None]] | None = None,
    services: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A state file as `up` writes it; `servers` gives the pid and start time of postgres, redis and kafka."""
    pids = servers or {name: (2**22 + n, None) for n, name in enumerate(("postgres", "redis", "kafka"))}
    return {
        "launcher_pid": launcher[0],
        "launcher_started": launcher[1],
        "postgres": {"port": 5432, "pid": pids["postgres"][0], "started": pids["postgres"][1], "urls": {}},
        "redis": {"url": "redis://127.0.0.1:1/0", "pid": pids["redis"][0], "started": pids["redis"][1]},
        "kafka": {"bootstrap": "127.0.0.1:1", "pid": pids["kafka"][0], "started": pids["kafka"][1]},
        "services": {
            name: {"url": url, "pid": 2**22 + 10, "started": None, "log": f"/tmp/{name}.log"}
            for name, url in (services or {}).items()
        },
    }


def this_process() -> tuple[int, float]:
    return os.getpid(), psutil.Process().create_time()


# --- a damaged state file ------------------------------------------------------------------------------------------

DAMAGED = {
    "cut short": '{"launcher_pid": ',
    "not an object": "[1]",
    "a field missing": json.dumps({k: v for k, v in state(this_process()).items() if k != "kafka"}),
    "a field of the wrong type": json.dumps({**state(this_process()), "launcher_pid": "abc"}),
}
COMMANDS = {
    "status": ["status"],
    "down": ["down"],
    "up": ["up"],
    "demo": ["demo"],
    "events tail": ["events", "tail", "--for", "1"],
    "dlq list": ["dlq", "list", "mentorloom.profiles.v1.dlq"],
    "match round": ["match", "round", "--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4())],
}


@pytest.mark.parametrize("damage", DAMAGED)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_reading_a_damaged_state_file_says_so_in_a_sentence_and_exits_1(
    tmp_path: Path, damage: str, command: str
) -> None:
    (tmp_path / "state.json").write_text(DAMAGED[damage])

    result = run(tmp_path, *COMMANDS[command])

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    assert f"The stack's state file {tmp_path / 'state.json'} is damaged (" in words(result.output)
    assert words(result.output).endswith("if no stack runs from it, delete it.")


def test_a_damaged_demo_file_is_named_in_a_sentence_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text('{"organisation_id": "not an id", "program_id": "x", "campus_ids": {}}')

    result = run(tmp_path, "token")

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"The demo's saved ids in {tmp_path / 'demo.json'} are damaged;" in words(result.output)


@pytest.mark.parametrize(
    "command",
    [["import", "people.csv"], ["match", "round"], ["match", "approve", str(uuid.uuid4())]],
    ids=["import", "match round", "match approve"],
)
def test_a_command_for_a_stack_that_is_not_running_says_so_and_exits_3(tmp_path: Path, command: list[str]) -> None:
    # A fresh directory: no stack and no demo ids. The stack is what is missing, not --tenant and --program.
    (tmp_path / "people.csv").write_text("email,display_name,tenure_start,time_zone\n")
    with contextlib.chdir(tmp_path):
        result = run(tmp_path / "stack", *command)

    assert result.exit_code == 3, result.output
    assert "no running stack found" in words(result.output).lower()


@pytest.mark.parametrize("command", ["list", "replay"])
def test_a_misspelt_dead_letter_topic_of_the_local_stack_is_a_usage_error_naming_the_real_ones(
    tmp_path: Path, command: str
) -> None:
    result = run(tmp_path, "dlq", command, "mentorloom.profile.v1.dlq")  # profile, not profiles

    assert result.exit_code == 2, result.output  # it listed "0 dead letter(s)" and exited 0
    said = words(result.output.replace("│", " "))  # typer's usage errors come in a box
    assert "no dead-letter topic 'mentorloom.profile.v1.dlq'" in said
    assert "mentorloom.profiles.v1.dlq" in said


# --- a launcher that is gone, and a pid that is now another process's ---------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def stand_ins() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Processes standing in for a stack's servers (they stop on SIGINT and SIGTERM alike, as the servers do).

    SIGINT is set back to its default in each: a test run started in the background (`.ci/run &`) hands its
    children SIGINT ignored, and `sleep` would then outlive PostgreSQL's fast-shutdown signal until `down` kills it."""
    procs = {
        name: subprocess.Popen(["sleep", "600"], preexec_fn=_default_sigint) for name in ("postgres", "redis", "kafka")
    }
    yield procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def started(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    return proc.pid, psutil.Process(proc.pid).create_time()


def gone_launcher() -> tuple[int, float]:
    proc = subprocess.Popen(["true"])
    pid, created = started(proc)
    proc.wait()
    return pid, created


def test_down_stops_the_servers_a_gone_launcher_left_and_removes_the_state_file(
    tmp_path: Path, stand_ins: dict[str, subprocess.Popen[bytes]]
) -> None:
    servers = {name: started(proc) for name, proc in stand_ins.items()}
    (tmp_path / "state.json").write_text(json.dumps(state(gone_launcher(), servers)))

    result = run(tmp_path, "down")

    assert result.exit_code == 0, result.output
    assert "is gone; stopping what it left running" in words(result.output)
    assert {name: proc.wait(10) for name, proc in stand_ins.items()} == {
        "postgres": -signal.SIGINT,  # PostgreSQL's fast shutdown, as the launcher asks for it
        "redis": -signal.SIGTERM,
        "kafka": -signal.SIGTERM,
    }
    assert not (tmp_path / "state.json").exists()


def test_a_recorded_pid_that_is_now_another_process_is_never_signalled(
    tmp_path: Path, stand_ins: dict[str, subprocess.Popen[bytes]]
) -> None:
    # The pids are those of running processes, but not of the ones the file recorded (they started at another time).
    launcher_pid, launcher_started = started(stand_ins["postgres"])
    servers = {name: (proc.pid, started(proc)[1] - 100) for name, proc in stand_ins.items()}
    (tmp_path / "state.json").write_text(json.dumps(state((launcher_pid, launcher_started - 100), servers)))

    status = run(tmp_path, "status")
    down = run(tmp_path, "down")

    assert (status.exit_code, down.exit_code) == (3, 3), status.output + down.output
    assert "No running stack found" in words(down.output)
    assert all(proc.poll() is None for proc in stand_ins.values()), "none was signalled"
    assert not (tmp_path / "state.json").exists(), "the stale file is gone"


# --- the demo ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError("gave up waiting for the matching service to learn the program after 120 s"),
        DemoError("none of the 240 imported mentees is in the program's participant list"),
    ],
)
def test_a_demo_that_cannot_go_on_says_why_in_a_sentence_and_exits_1(
    failure: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited, reported_errors():
        raise failure

    assert exited.value.exit_code == 1
    assert words(capsys.readouterr().err) == f"The demo failed: {failure}"


class ProfilesWithoutParticipants(BaseHTTPRequestHandler):
    """The profiles API as far as the demo's first steps need it (a test's stand-in, as in test_api_client), with an
    import that took no one."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.drain_body()
        if self.path.endswith("/imports"):
            self.answer({"id": str(uuid.uuid4()), "rows_imported": 0, "rows_failed": 4, "status": "completed"})
        else:
            self.answer({"id": str(uuid.uuid4())})

    def do_GET(self) -> None:
        self.answer({"items": [], "next_offset": None})

    def drain_body(self) -> None:
        if self.headers.get("Transfer-Encoding") != "chunked":  # the CSV upload is streamed in chunks
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return
        while size := int(self.rfile.readline().strip(), 16):
            self.rfile.read(size + 2)
        self.rfile.readline()

    def answer(self, body: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


def test_a_demo_whose_import_resolves_no_mentee_says_so_and_exits_1(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProfilesWithoutParticipants)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"profiles": url})))

        result = run(tmp_path, "demo", "--mentors", "2", "--mentees", "2")
    finally:
        server.shutdown()

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "no traceback"
    assert (
        "The demo failed: none of the 2 imported mentees is in the program's participant list "
        "(0 rows imported, 4 failed)" in words(result.output)
    )


class DemoServices(ProfilesWithoutParticipants):
    """Profiles and matching as far as the whole demo needs them, with a matching pool that fills up poll by poll:
    `pool_answers` gives the matchable (mentees, mentors) of each poll (None: matching does not know the program yet,
    a 404), the last one repeated. `calls` records each pool answer and the round, in order."""

    mentors, mentees = 2, 3
    pool_answers: ClassVar[list[tuple[int, int] | None]] = []  # each test's subclass has its own (demo_services)
    calls: ClassVar[list[str]] = []

    @staticmethod
    def person_id(external_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, external_id))

    def do_POST(self) -> None:
        self.drain_body()
        path = urlsplit(self.path).path
        if path.endswith("/imports"):
            imported = self.mentors + self.mentees
            self.answer({"id": str(uuid.uuid4()), "rows_imported": imported, "rows_failed": 0, "status": "completed"})
        elif path.endswith(("/requests", "/accept")):
            self.answer({"match_id": str(uuid.uuid4())})
        elif path.endswith(("/rounds", "/approve")):
            self.calls.append("round" if path.endswith("/rounds") else "approve")
            summary = {
                "proposal_count": 0,
                "mentee_count": self.mentees - 1,
                "mean_score": None,
                "unmatched_count": self.mentees - 1,
                "certificate": {"statement": "optimal"},
            }
            self.answer({"round_id": str(uuid.uuid4()), "report": summary, "proposals": []})
        else:
            self.answer({"id": str(uuid.uuid4())})

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v1/participants":
            external = [f"M-{i:05d}" for i in range(1, self.mentors + 1)]
            external += [f"S-{i:05d}" for i in range(self.mentors + 1, self.mentors + self.mentees + 1)]
            self.answer({"items": [{"external_id": e, "id": self.person_id(e)} for e in external], "next_offset": None})
        elif path.endswith("/pool"):
            known = self.pool_answers.pop(0) if len(self.pool_answers) > 1 else self.pool_answers[0]
            self.calls.append(f"pool {known}")
            if known is None:
                self.answer({"detail": {"error": "not_found"}}, HTTPStatus.NOT_FOUND)
                return
            mentees = {"matchable": known[0], "without_profile": self.mentees - known[0], "unmatched": known[0]}
            mentors = {
                "matchable": known[1],
                "without_profile": self.mentors - known[1],
                "capacity_total": 2 * known[1],
            }
            self.answer({"mentees": mentees, "mentors": mentors})
        elif path.endswith("/shortlist"):
            top = {"mentor_person_id": self.person_id("M-00001"), "score": 0.8, "explanation": "shared interests"}
            self.answer({"entries": [top]})
        else:  # the program's matches
            self.answer({"items": [], "next_offset": None})


@contextlib.contextmanager
def demo_services(
    pool_answers: list[tuple[int, int] | None], stand_in: type[DemoServices] = DemoServices
) -> Iterator[tuple[str, list[str]]]:
    """The stand-in's URL and the calls it records."""
    calls: list[str] = []
    handler = type("Services", (stand_in,), {"pool_answers": list(pool_answers), "calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()


def test_the_demo_runs_its_cohort_round_only_once_matching_knows_every_imported_mentee_and_mentor(
    tmp_path: Path,
) -> None:
    # Matching learns the program, then the participants a few at a time, as their events arrive.
    with demo_services([None, (1, 0), (3, 1), (3, 2)]) as (url, calls):
        (tmp_path / "state.json").write_text(
            json.dumps(state(this_process(), services={"profiles": url, "matching": url}))
        )
        result = run(tmp_path, "demo", "--mentors", "2", "--mentees", "3")

    assert result.exit_code == 0, result.output
    assert calls == ["pool None", "pool (1, 0)", "pool (3, 1)", "pool (3, 2)", "round", "approve"]
    assert "matching knows every imported participant: 3 mentees, 2 mentors with 4 mentoring slots" in words(
        result.output
    )


def test_a_demo_whose_participants_do_not_all_reach_matching_gives_up_saying_how_many_it_knows(
    tmp_path: Path,
) -> None:
    with demo_services([(1, 2)]) as (url, calls):
        endpoints = StackEndpoints(services={"profiles": url, "matching": url}, kafka_bootstrap="127.0.0.1:1")
        with pytest.raises(TimeoutError) as gave_up:
            run_demo(endpoints, mentors=2, mentees=3, report=lambda _: None, pool_timeout=1.0)

    assert str(gave_up.value) == (
        "gave up waiting for the matching service to receive every imported participant after 1 s: it knows 1 of the "
        "3 mentees and 2 of the 2 mentors (2 mentee and 0 mentor enrolments still wait for their profile); the cohort "
        "round would leave the others out"
    )
    assert "round" not in calls


# --- dlq list ------------------------------------------------------------------------------------------------------


def test_a_listing_that_shows_every_dead_letter_says_nothing_more() -> None:
    assert page_note(total=5, offset=0, shown=5) is None


def test_a_listing_cut_short_says_which_of_how_many_it_shows_and_how_to_see_the_rest() -> None:
    assert page_note(total=2500, offset=0, shown=1000, following=(Position(0, 900), Position(1, 100))) == (
        "Showed dead letters 1–1000 of 2500; the next with --from 0:900,1:100, or every one with --all."
    )
    assert page_note(total=2500, offset=2000, shown=500) == "Showed dead letters 2001–2500 of 2500."
    assert page_note(total=5, offset=9, shown=0) == "No dead letters shown: --offset 9 is past the last of the 5."


@pytest.mark.integration
def test_dlq_list_pages_with_limit_offset_and_all_and_says_how_many_there_are(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    dead = dead_letter_topic(f"t.paging.{unique}")

    async def five_dead_letters() -> None:
        await ensure_topics(kafka_bootstrap, [dead], partitions=1)
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        try:
            for i in range(5):
                await producer.send(dead, b"{}", headers=[("ce_id", f"e{i}".encode())], partition=0)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(five_dead_letters())

    def listing(*args: str) -> Result:
        return run(tmp_path, "dlq", "list", dead, "--bootstrap", kafka_bootstrap, *args)

    first = listing("--limit", "2")
    page = listing("--limit", "2", "--offset", "2", "--json")
    every = listing("--all", "--json")

    assert first.exit_code == 0, first.output
    assert f"dead letters 1–2 of 5 in {dead}" in words(first.output)
    assert "Showed dead letters 1–2 of 5; the next with --from 0:2, or every one with --all." in words(first.output)
    assert [d["event_id"] for d in json.loads(page.stdout)] == ["e2", "e3"]
    assert "Showed dead letters 3–4 of 5" in page.stderr
    assert [d["event_id"] for d in json.loads(every.stdout)] == [f"e{i}" for i in range(5)]
    assert every.stderr == ""


@pytest.mark.integration
def test_dlq_list_counts_a_topic_larger_than_a_chunk_holding_a_chunk_at_a_time(
    kafka_bootstrap: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = asyncio.run(send_dead_letters(kafka_bootstrap, f"t.big.{unique}", [700, 500]))
    chunk_sizes = chunk_sizes_the_dead_letter_tool_reads(monkeypatch)

    page = run(
        tmp_path, "dlq", "list", dead, "--bootstrap", kafka_bootstrap, "--limit", "3", "--offset", "699", "--json"
    )

    assert page.exit_code == 0, page.output
    assert [d["event_id"] for d in json.loads(page.stdout)] == ["p0-699", "p1-0", "p1-1"]
    assert "Showed dead letters 700–702 of 1200; the next with --from 0:700,1:2" in words(page.stderr)
    assert sum(chunk_sizes) == 1200
    assert max(chunk_sizes) <= CHUNK_SIZE < 1200


@pytest.mark.integration
def test_dlq_list_shows_error_text_with_square_brackets_as_it_is(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    # The table read cells as rich markup: "[invalid]" (and pydantic's "[type=missing, ...]") vanished from the
    # error shown, and "[/]" ended the command with a MarkupError traceback.
    original = f"t.brackets.{unique}"
    dead = dead_letter_topic(original)
    errors = ["value [invalid] not allowed", "list [/] bad", "Field required [type=missing]"]

    async def letters_with_these_errors() -> None:
        await ensure_topics(kafka_bootstrap, [dead], partitions=1)
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        try:
            for i, error in enumerate(errors):
                headers = [
                    ("ce_id", f"e{i}".encode()),
                    ("dlq_error_type", b"ValueError"),
                    ("dlq_error", error.encode()),
                ]
                await producer.send_and_wait(dead, b"{}", headers=headers, partition=0)
        finally:
            await producer.stop()

    asyncio.run(letters_with_these_errors())

    result = run(tmp_path, "dlq", "list", dead, "--bootstrap", kafka_bootstrap)

    assert result.exit_code == 0, result.output
    for error in errors:
        assert f"ValueError: {error}" in words(result.stdout.replace("│", " "))


# --- ./dev from another directory ----------------------------------------------------------------------------------


def run_dev(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, dev: str = str(PROJECT_ROOT / "dev")
) -> subprocess.CompletedProcess[str]:
    """./dev (as ``dev``, the path a user typed) run in ``cwd``, with ``env`` added to this environment."""
    return subprocess.run(
        [dev, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dev_resolves_relative_paths_against_the_callers_directory(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("external_id\n")
    ids = ["--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4())]

    result = run_dev("mentorloom", "import", "people.csv", *ids, cwd=tmp_path, env={"MENTORLOOM_STACK_DIR": "my-stack"})

    # The CSV was found (else: a usage error, 2) and the stack dir is the caller's ./my-stack, where nothing runs.
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"no running stack found in {tmp_path / 'my-stack'};" in words(result.stderr)


def test_down_kills_a_launcher_stuck_past_its_timeout_and_stops_its_servers_directly(
    tmp_path: Path, stand_ins: dict[str, subprocess.Popen[bytes]]
) -> None:
    # A launcher that ignores the stop request (as one stuck in a hung server's stop would).
    stuck = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert stuck.stdout is not None
        assert stuck.stdout.readline(), "its SIGTERM handler is in place"
        servers = {name: started(proc) for name, proc in stand_ins.items()}
        (tmp_path / "state.json").write_text(json.dumps(state(started(stuck), servers)))

        result = run(tmp_path, "down", "--timeout", "1")

        assert result.exit_code == 0, result.output
        assert "did not stop within 1 s and was killed; stopping its servers directly" in words(result.output)
        assert stuck.wait(10) == -signal.SIGKILL
        assert {name: proc.wait(10) for name, proc in stand_ins.items()} == {
            "postgres": -signal.SIGINT,
            "redis": -signal.SIGTERM,
            "kafka": -signal.SIGTERM,
        }
        assert not (tmp_path / "state.json").exists()
    finally:
        stuck.kill()
        stuck.wait()
