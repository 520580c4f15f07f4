"""deploy/k8s/wait-for-migrations.sh: the release's migrate step ends as soon as a Job fails, not at its timeout.

No cluster runs here, so `kubectl` is a script on PATH that answers each `get job` with the next of the Job
listings a test gives (in the jsonpath's output format) and each `logs` with a fixed log: what is tested is the
wait's own logic, the way it reads kubectl's answers and what it tells the operator.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import OVERLAYS, of_kind, overlay

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "wait-for-migrations.sh"

SCRIPTED_KUBECTL = """#!/bin/sh
# Appends its arguments to calls.log; `get` prints answers/N (N counts the gets; the last answer repeats),
# exiting 1 when that answer is the word FAIL; `logs` prints a migration's error.
dir=$(dirname "$0")
echo "$*" >> "$dir/calls.log"
case " $* " in
  *" get job "*)
    n=$(($(cat "$dir/gets" 2>/dev/null || echo 0) + 1))
    echo "$n" > "$dir/gets"
    answer="$dir/answers/$n"
    [ -f "$answer" ] || answer="$dir/answers/$(ls "$dir/answers" | sort -n | tail -1)"
    if [ "$(cat "$answer")" = FAIL ]; then echo "Unable to connect to the server" >&2; exit 1; fi
    cat "$answer"
    ;;
  *" logs "*) echo 'alembic: relation "matches" already exists' ;;
esac
"""


def run_wait(tmp_path: Path, answers: list[str], *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    (bin_dir / "answers").mkdir(parents=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(SCRIPTED_KUBECTL)
    kubectl.chmod(0o755)
    for number, answer in enumerate(answers, start=1):
        (bin_dir / "answers" / str(number)).write_text(answer)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MENTORLOOM_WAIT_INTERVAL": "0"}
    result = subprocess.run(
        ["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    calls_log = bin_dir / "calls.log"
    calls = calls_log.read_text().splitlines() if calls_log.exists() else []
    return result, calls


# The scripted kubectl stands in for the cluster, so only the selector test below renders manifests.
no_kubectl = pytest.mark.no_kubectl


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_the_wait_selects_exactly_the_migrate_jobs_of_the_release(overlay_name: str) -> None:
    selector = re.search(r"^selector=(\S+)$", SCRIPT.read_text(), re.MULTILINE)
    assert selector is not None
    key, value = selector.group(1).split("=")
    objects = overlay(overlay_name)
    selected = {o["metadata"]["name"] for o in objects if o["metadata"].get("labels", {}).get(key) == value}
    jobs = {j["metadata"]["name"] for j in of_kind(objects, "Job")}
    assert jobs == {f"{service}-migrate" for service in ("profiles", "matching", "scheduling", "feedback")}
    assert selected == jobs


RUNNING = "profiles-migrate Complete=True\nmatching-migrate\nfeedback-migrate Complete=True\n"
ALL_COMPLETE = "profiles-migrate Complete=True\nmatching-migrate Complete=True\nfeedback-migrate Complete=True\n"
ONE_FAILED = "profiles-migrate Complete=True\nmatching-migrate Failed=True\nfeedback-migrate\n"


@no_kubectl
def test_the_wait_ends_with_success_once_every_migrate_job_has_completed(tmp_path: Path) -> None:
    result, calls = run_wait(tmp_path, [RUNNING, RUNNING, ALL_COMPLETE], "mentorloom-dev")
    assert result.returncode == 0, result.stderr
    assert "every migrate Job completed" in result.stdout
    gets = [c for c in calls if " get job " in f" {c} "]
    assert len(gets) == 3
    assert gets[0].startswith("-n mentorloom-dev get job -l app.kubernetes.io/component=migrate")


@no_kubectl
def test_a_failed_job_stops_the_wait_at_once_naming_it_and_showing_its_log(tmp_path: Path) -> None:
    result, calls = run_wait(tmp_path, [RUNNING, ONE_FAILED, ALL_COMPLETE], "mentorloom-dev", "900")
    assert result.returncode == 1
    assert "migrate Job matching-migrate failed" in result.stderr
    assert 'relation "matches" already exists' in result.stderr
    assert "-n mentorloom-dev logs job/matching-migrate --tail=40" in calls
    assert sum(" get job " in f" {c} " for c in calls) == 2  # did not wait on after the failure


@no_kubectl
def test_a_job_still_running_at_the_deadline_is_named_with_exit_4(tmp_path: Path) -> None:
    result, _ = run_wait(tmp_path, [RUNNING], "mentorloom-dev", "0")
    assert result.returncode == 4
    assert "still not complete after 0 s: matching-migrate" in result.stderr


@no_kubectl
def test_no_migrate_job_in_the_namespace_says_to_apply_the_pre_deploy_stage(tmp_path: Path) -> None:
    result, _ = run_wait(tmp_path, [""], "mentorloom-dev")
    assert result.returncode == 3
    assert "no migrate Job in namespace mentorloom-dev" in result.stderr


@no_kubectl
def test_a_kubectl_error_is_asked_again_rather_than_taken_for_a_failed_migration(tmp_path: Path) -> None:
    result, _ = run_wait(tmp_path, ["FAIL", "FAIL", ALL_COMPLETE], "mentorloom-dev")
    assert result.returncode == 0, result.stderr
    assert "every migrate Job completed" in result.stdout


@no_kubectl
@pytest.mark.parametrize("args", [(), ("ns", "soon"), ("ns", "1", "extra")])
def test_a_missing_namespace_or_a_timeout_that_is_not_a_number_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result, calls = run_wait(tmp_path, [ALL_COMPLETE], *args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert calls == []
