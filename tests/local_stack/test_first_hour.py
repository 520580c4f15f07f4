"""What a newcomer reads in their first hour with the local stack: ids printed whole, errors that say what to do next,
and a guide that names a call for each thing the demo made (program, round, a match's check-ins, report)."""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from deploy.local.invocation import DEV_SCRIPT_VARIABLE
from tests.local_stack.test_cli_errors import DemoServices, demo_services, run, state, this_process, words


class RecordingServices(DemoServices):
    """The demo's stand-in services, whose rounds carry a whole report (as `match round` prints it), recording each
    round and match id they answer as a call `round_id=…`, `match_id=…`."""

    def answer(self, body: dict[str, Any], status: HTTPStatus = HTTPStatus.OK) -> None:
        if "round_id" in body:
            body = {**body, "status": "pending_approval", "report": {**body["report"], **ROUND_REPORT}}
        self.calls.extend(f"{key}={body[key]}" for key in ("round_id", "match_id") if key in body)
        super().answer(body, status)


ROUND_REPORT: dict[str, Any] = {
    "mentor_count": 2,
    "capacity_total": 4,
    "total_score": 0.0,
    "min_score": None,
    "max_score": None,
    "certificate": {"proven_optimal": True, "statement": "optimal"},
    "unmatched": [],
}


def last_answered(calls: list[str], key: str) -> str:
    return [call.removeprefix(f"{key}=") for call in calls if call.startswith(f"{key}=")][-1]


def test_a_rounds_id_is_printed_on_one_line_so_it_can_be_copied_into_match_approve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEV_SCRIPT_VARIABLE, "./dev")  # run as README says
    with demo_services([(3, 2)], RecordingServices) as (url, calls):
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services={"matching": url})))
        result = run(tmp_path, "match", "round", "--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4()))

    assert result.exit_code == 0, result.output
    round_id = last_answered(calls, "round_id")
    assert f"cohort round {round_id} (pending_approval)" in result.output.splitlines()
    assert f"approve with: ./dev mentorloom match approve {round_id}" in result.output


def test_a_command_without_a_running_stack_run_through_dev_says_to_start_one_with_dev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEV_SCRIPT_VARIABLE, "./dev")
    result = run(tmp_path, "match", "round", "--tenant", str(uuid.uuid4()), "--program", str(uuid.uuid4()))

    assert result.exit_code == 3, result.output
    assert "start one with: ./dev mentorloom up" in words(result.output)


def test_a_participant_token_without_a_person_says_where_the_demos_person_ids_are(tmp_path: Path) -> None:
    result = run(tmp_path, "token", "--role", "participant", "--tenant", str(uuid.uuid4()))

    assert result.exit_code == 2, result.output
    assert words(result.output) == (
        f"A participant token needs --person: a participant's person id (the demo's mentees and mentors are in "
        f"{tmp_path / 'demo.json'})."
    )


def test_the_demos_guide_names_a_call_for_its_round_and_for_its_first_matchs_check_ins(tmp_path: Path) -> None:
    with demo_services([(3, 2)], RecordingServices) as (url, calls):
        every_service = {name: url for name in ("profiles", "matching", "scheduling", "feedback")}
        (tmp_path / "state.json").write_text(json.dumps(state(this_process(), services=every_service)))
        result = run(tmp_path, "demo", "--mentors", "2", "--mentees", "3")

    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["round_id"] == last_answered(calls, "round_id")
    assert saved["match_id"] == last_answered(calls, "match_id")
    assert f'curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/rounds/{saved["round_id"]}' in result.output
    assert f'curl -s -H "Authorization: Bearer $TOKEN" {url}/v1/matches/{saved["match_id"]}/check-ins' in result.output


def test_events_tail_refuses_a_type_no_event_of_the_catalogue_has_instead_of_showing_nothing(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps(state(this_process())))

    result = run(tmp_path, "events", "tail", "--type", "match.acepted", "--type", "match.ended", "--for", "1")

    assert result.exit_code == 2, result.output
    assert words(result.output).startswith(
        "No event type of the local stack matches match.acepted; the types: profile.updated.v1, profile.erased.v1,"
    )
    assert "match.accepted.v1" in result.output
