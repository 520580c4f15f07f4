"""Every option of the `mentorloom` tool says what it does in --help."""

from __future__ import annotations

import inspect
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from deploy.local.cli import app as mentorloom
from deploy.local.stack import PROJECT_ROOT


def options(command: Any, path: str = "mentorloom") -> Iterator[tuple[str, Any]]:
    """Every option of `command` and its subcommands, with the command line that has it (typer's own click
    classes, so read by attribute rather than by isinstance)."""
    for parameter in command.params:
        if parameter.param_type_name == "option":
            yield path, parameter
    for name, sub in getattr(command, "commands", {}).items():
        yield from options(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help_text() -> None:
    found = list(options(typer.main.get_command(mentorloom)))
    assert len(found) > 20  # the walk reached the subcommands' options
    silent = [
        f"{path} {option.opts[0]}" for path, option in found if not option.hidden and not (option.help or "").strip()
    ]
    assert silent == []  # was ['mentorloom status --json', 'mentorloom dlq list --json']


def commands(command: Any, path: str = "mentorloom") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, f"{path} {name}")


def test_every_commands_first_help_paragraph_is_one_line_as_the_command_listing_shows_it_unwrapped() -> None:
    # A group's listing prints a command's first paragraph with its line breaks kept: `dlq --help` broke the replay
    # line after "Stopped by an", wherever the terminal's width put the rest.
    found = list(commands(typer.main.get_command(mentorloom)))
    assert len(found) > 10
    broken = [path for path, command in found if "\n" in inspect.cleandoc(command.help or "").split("\n\n")[0]]
    assert broken == []


def test_dev_without_a_command_prints_its_header_comment_and_no_line_of_code() -> None:
    shown = subprocess.run(
        [str(PROJECT_ROOT / "dev"), "help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert "./dev up" in shown
    assert "./dev test" in shown
    assert "set -euo pipefail" not in shown  # the help printed a fixed line range that ran into the script


def test_dev_test_fails_when_the_linter_fails_even_if_every_test_passes(tmp_path: Path) -> None:
    # `echo … && ruff check . && …` on one line: `set -e` ignores a failure inside an && list that is not its last
    # command, so a lint or type error scrolled past and the run ended with pytest's 0 (seen: CI passed with a ruff
    # error in it). A copy of ./dev beside stand-in tools: ruff fails, the rest succeed.
    shutil.copy(PROJECT_ROOT / "dev", tmp_path / "dev")
    for name in ("requirements.lock", "pyproject.toml"):
        (tmp_path / name).write_text("")
    tools = tmp_path / ".venv" / "bin"
    tools.mkdir(parents=True)
    ran = tmp_path / "ran"
    for tool, status in (("ruff", 1), ("mypy", 0), ("python", 0), ("pytest", 0)):
        (tools / tool).write_text(f'#!/bin/sh\necho {tool} >> "{ran}"\nexit {status}\n')
        (tools / tool).chmod(0o755)
    stamp = subprocess.run(
        "cat requirements.lock pyproject.toml | cksum", shell=True, cwd=tmp_path, capture_output=True, text=True
    )
    (tmp_path / ".venv" / ".installed").write_text(stamp.stdout)  # ensure_env finds the environment installed

    result = subprocess.run([str(tmp_path / "dev"), "test"], capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode != 0, result.stdout + result.stderr
    assert "pytest" not in ran.read_text().split()
