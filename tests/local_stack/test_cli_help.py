"""Every option of the `mentorloom` tool says what it does in --help."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from deploy.local.cli import app as mentorloom


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
