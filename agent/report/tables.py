"""One table, two faces: aligned text for the terminal and HTML for pages and reports.

A ``Table`` holds cells already written as people read them (times to the second, durations in
words, verdicts as words). The CLI prints ``as_text``; pages and reports include
``_table.html`` with the same ``Table``, so what a command shows and what a page shows cannot
drift apart. Cells are untrusted text (labels, versions, reasons): the terminal gets them with
control characters replaced, HTML with everything escaped (autoescape).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent.clock import duration


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    # Columns of figures (right-aligned), and of free text (wrapped on a page, cut in a terminal).
    numeric: frozenset[int] = frozenset()
    text: frozenset[int] = frozenset()
    # Per row, a word a page styles (``warn``: stands out, ``good``, ``bad``), or "".
    marks: tuple[str, ...] = field(default=())
    empty: str = "nothing to show"
    id: str = ""

    def mark(self, index: int) -> str:
        return self.marks[index] if index < len(self.marks) else ""


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = (),
          text: Sequence[int] = (), marks: Sequence[str] = (), empty: str = "nothing to show", id: str = "") -> Table:
    return Table(columns=tuple(columns), rows=tuple(tuple(r) for r in rows), numeric=frozenset(numeric),
                 text=frozenset(text), marks=tuple(marks), empty=empty, id=id)


def printable(text: str) -> str:
    """Untrusted text for a terminal: no escape sequences or line breaks get through."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def columns(rows: list[list[str]], numeric: frozenset[int] = frozenset(range(1, 10_000))) -> list[str]:
    """Rows as aligned lines: ``numeric`` columns right-aligned, the others left."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


TEXT_CUT = 72


def as_text(t: Table, *, cut: int = TEXT_CUT) -> str:
    """The table as aligned lines; free-text cells longer than ``cut`` end in ``…`` (not in a
    field-and-value table, which has no header and one value a line)."""
    if not t.rows:
        return t.empty + "\n"
    head = [list(t.columns)] if any(t.columns) else []
    if not head:
        cut = 10**9
    rows = head + [[_cut(cell, cut) if i in t.text else cell for i, cell in enumerate(row)] for row in t.rows]
    return "\n".join(columns(rows, t.numeric)) + "\n"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def when(value: datetime | None) -> str:
    """A time as people read it in a table: UTC, to the second."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    return duration(value)


def share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
