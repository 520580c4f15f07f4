"""Every option of the `mentorloom` tool says what it does in --help."""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Iterator
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
