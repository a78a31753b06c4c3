"""A table's rows, as ``StoreBase.table_rows`` gives them (sqlite-utils dicts), written as JSON or
CSV. A BLOB (a detector's fitted state) is written as sqlite-utils writes one:
``{"$base64": true, "encoded": "…"}`` in JSON, its base64 text in CSV. CSV text cells that a
spreadsheet would run as a formula are written after a ``'`` (``agent.csvcells``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from agent import csvcells


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


def write_json(out: TextIO, rows: Iterable[Mapping[str, Any]]) -> int:
    """One JSON array of objects, a row per line, streamed; returns the number of rows."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n " if count else "\n ")
        out.write(json.dumps({key: _plain(value) for key, value in row.items()}, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """A header of ``columns``, then one line per row (NULL as an empty field); returns the number of rows."""
    writer = csvcells.Writer(out)
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
        count += 1
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return "" if value is None else value
