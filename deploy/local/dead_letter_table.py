"""The table `mentorloom dlq list` prints, a chunk of rows at a time when the listing may be long.

A rich table is laid out from all its cells (each column as wide as its widest cell allows) and its title counts the
letters, so a table printed as the letters are read needs two readings: the first counts them and keeps, per column,
the two cells that decide its width (the widest and the one with the longest word); the second prints each chunk of
rows at the widths those give. The output is the table of all the rows, character for character.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

from deploy.local.output import cells
from shared.messaging.dlq import DeadLetter, shortened

COLUMNS = ("partition:offset", "reason", "type", "event id", "error")
COPIED = ("partition:offset", "event id")  # what a user copies (into --at, a search): never wrapped
Row = tuple[Text, ...]


def row(d: DeadLetter) -> Row:
    """A dead letter's cells, as text: an error's "[...]" is not rich markup."""
    return cells(
        d.position, d.reason, d.event_type or "-", d.event_id or "-", f"{d.error_type}: {shortened(d.error, 80)}"
    )


def table(title: str, rows: Sequence[Row] = (), widths: Sequence[int] | None = None, *, header: bool = True) -> Table:
    """The dead-letter table; ``widths``: each column's content width, fixed (else measured from the rows)."""
    made = Table(title=Text(title) if title else None, show_header=header)
    for index, name in enumerate(COLUMNS):
        # "fold": a cell wider than its column goes on in the next line, never cut short with "…"
        made.add_column(name, width=None if widths is None else widths[index], overflow="fold", no_wrap=name in COPIED)
    for shown in rows:
        made.add_row(*shown)
    return made


class WidestCells:
    """Per column, the cell with the widest text and the one with the longest word: a table of only these is laid
    out as the table of every row seen (rich sizes a column by the largest of each over its cells)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.widest: list[tuple[int, Text] | None] = [None] * len(COLUMNS)
        self.longest_word: list[tuple[int, Text] | None] = [None] * len(COLUMNS)

    def add(self, cells: Row) -> None:
        for index, cell in enumerate(cells):
            least, most = Measurement.get(self.console, self.console.options, cell)
            if (widest := self.widest[index]) is None or most > widest[0]:
                self.widest[index] = (most, cell)
            if (longest := self.longest_word[index]) is None or least > longest[0]:
                self.longest_word[index] = (least, cell)

    def widths(self, title: str) -> list[int]:
        """The content width of each column in the table of every row seen, titled ``title``."""
        deciding = [tuple(pick[1] for pick in picks if pick is not None) for picks in (self.widest, self.longest_word)]
        measured = table(title, deciding)
        options = self.console.options
        # rich's own layout (private, rich 15): what __rich_console__ does before it renders, so the widths match.
        with_padding = measured._calculate_column_widths(
            self.console, options.update_width(options.max_width - measured._extra_width)
        )
        return [width - measured._get_padding_width(index) for index, width in enumerate(with_padding)]


class TablePrinter:
    """Prints the table's rows a chunk at a time: the title, top border and header before the first, the bottom
    border after the last. Holds one chunk back to know which is last."""

    def __init__(self, console: Console, title: str, widths: Sequence[int]) -> None:
        self.console, self.title, self.widths = console, title, widths
        self.held: list[Row] = []
        self.printed_any = False

    def add(self, cells: Row, chunk_size: int) -> None:
        self.held.append(cells)
        if len(self.held) > chunk_size:
            self._print(self.held[:chunk_size], last=False)
            self.held = self.held[chunk_size:]

    def close(self) -> None:
        if self.held or not self.printed_any:
            self._print(self.held, last=True)

    def _print(self, rows: list[Row], *, last: bool) -> None:
        first = not self.printed_any
        rendered = table(self.title if first else "", rows, self.widths, header=first)
        lines = list(Segment.split_lines(self.console.render(rendered)))
        keep = lines[(0 if first else 1) : (None if last else -1)]  # the borders between chunks are not the table's
        self.console.print(Segments([piece for line in keep for piece in (*line, Segment.line())]), end="")
        self.printed_any = True
