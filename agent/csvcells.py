"""CSV cells a spreadsheet reads as text, never as a formula.

Every CSV the agent writes (``store export``, ``audit export``, ``report mttr``) carries text from
outside: label values, alert names, people's reasons. A spreadsheet opening the file runs a cell
that begins with ``=``, ``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)``,
``-2+3+cmd|' /C calc'!A0``), and one that begins with a tab or carriage return can hide such a
start; so such a text cell is written with a leading ``'``, which spreadsheets take as "text
follows" (OWASP's advice on CSV injection). Numbers the agent computed (ints and floats) are
written as they are: a negative number is data, not a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: Any) -> Any:
    """``value``, or for text beginning like a formula, the same text after a ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Writer:
    """A CSV writer (``\n`` line ends) whose every text cell goes through ``neutral``, and whose
    cells holding a carriage return are quoted: with ``\n`` as line end, ``csv.writer`` leaves a
    lone ``\r`` bare, and a reader then breaks the row there."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def writerow(self, row: Iterable[Any]) -> None:
        line = io.StringIO()
        # With "\r\n" as its line end, csv quotes every cell holding "\r" or "\n": the only bare
        # "\r\n" left is the one that ends the line.
        csv.writer(line, lineterminator="\r\n").writerow([neutral(value) for value in row])
        self._stream.write(line.getvalue()[:-2] + "\n")
