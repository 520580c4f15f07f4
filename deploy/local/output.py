"""What the `mentorloom` tool prints of text it did not write (a service's answer, a path or name the user typed).

rich reads "[...]" in printed strings as markup: "[type=missing]" vanished, "[/]" ended a command with a MarkupError.
So the tool's messages escape each such value (rich.markup.escape) and its tables take such cells as Text.
"""

from __future__ import annotations

from rich.text import Text


def cells(*values: object) -> tuple[Text, ...]:
    """A table row shown as it is, whatever brackets its values hold."""
    return tuple(Text(str(value)) for value in values)
