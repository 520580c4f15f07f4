"""How the user runs the `mentorloom` tool, so that every hint it prints names a command they can type.

README.md tells newcomers `./dev mentorloom …` (the bare `mentorloom` is then not on their PATH); an installed tool is
run as `mentorloom …`. `./dev` says it ran the tool by setting DEV_SCRIPT_VARIABLE to its own path as typed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

DEV_SCRIPT_VARIABLE = "MENTORLOOM_DEV_SCRIPT"
TOOL = "mentorloom"


def tool_command() -> str:
    """The words that run the tool: `./dev mentorloom` through ./dev, else `mentorloom` when that is on PATH, else
    the tool's path as typed (e.g. `.venv/bin/mentorloom`)."""
    dev_script = os.environ.get(DEV_SCRIPT_VARIABLE)
    if dev_script:
        return f"{shlex.quote(dev_script)} {TOOL}"
    typed = sys.argv[0] if sys.argv else ""
    if Path(typed).name != TOOL:  # run another way (python -m, a test runner): the documented name
        return TOOL
    on_path = shutil.which(TOOL)
    if on_path is not None and Path(on_path).resolve() == Path(typed).resolve():
        return TOOL
    return shlex.quote(typed)


def command(arguments: str) -> str:
    """A command line the user can type to run the tool with ``arguments``, e.g. command("down")."""
    return f"{tool_command()} {arguments}"
