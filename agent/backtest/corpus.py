"""CSV files in NAB's layout and their labelled windows.

NAB never sorts or de-duplicates: rows are fed in file order, and a window edge is matched to the
first row carrying that timestamp. ``read_series`` keeps duplicate and backwards timestamps
exactly as the file has them; timestamps without a zone are taken as UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agent.errors import AiopsError


class CorpusError(AiopsError):
    """A backtest input (CSV file, folder or label file) cannot be used."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFile:
    """One CSV to backtest: where it is and its path relative to the folder it was found in
    (the file name when it was given directly). ``key`` is that relative path with ``/``."""

    path: Path
    key: str


def find_inputs(paths: list[Path]) -> list[InputFile]:
    """Every CSV (``.csv`` or ``.csv.gz``) named or found (recursively, sorted) under ``paths``, each once."""
    found: dict[Path, InputFile] = {}
    for root in paths:
        if root.is_dir():
            for path in sorted([*root.rglob("*.csv"), *root.rglob("*.csv.gz")]):
                found.setdefault(path.resolve(), InputFile(path=path, key=path.relative_to(root).as_posix()))
        elif root.is_file():
            found.setdefault(root.resolve(), InputFile(path=root, key=root.name))
        else:
            raise CorpusError(root, "no such file or folder")
    if not found:
        raise CorpusError(", ".join(str(p) for p in paths), "expected CSV files, found none")
    return list(found.values())


def read_series(path: Path) -> pd.Series:
    """The ``value`` column of a ``timestamp,value`` CSV as float64, in file order, indexed by
    UTC timestamps (duplicates and steps backwards kept)."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read CSV: {exc}") from exc
    missing = [c for c in ("timestamp", "value") if c not in frame.columns]
    if missing:
        raise CorpusError(path, f"expected columns timestamp,value, found {','.join(map(str, frame.columns))}")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], format="mixed"), name="ts")
    except (ValueError, TypeError) as exc:
        raise CorpusError(path, f"expected timestamps like 2014-07-01 00:00:00, found {exc}") from exc
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    values = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return pd.Series(values.to_numpy(), index=index, name=path.stem)


Window = tuple[pd.Timestamp, pd.Timestamp]


def read_windows(path: Path) -> dict[str, list[Window]]:
    """NAB's ``combined_windows.json``: file key -> inclusive ``[start, end]`` pairs (UTC)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorpusError(path, f"cannot read label file: {exc}") from exc
    if not isinstance(raw, dict):
        raise CorpusError(path, f"expected an object of file -> windows, found {type(raw).__name__}")
    windows: dict[str, list[Window]] = {}
    for key, pairs in raw.items():
        try:
            windows[key] = [(_utc(start), _utc(end)) for start, end in pairs]
        except (TypeError, ValueError) as exc:
            raise CorpusError(path, f"{key}: expected [start, end] timestamp pairs, found {pairs!r}") from exc
    return windows


def _utc(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def windows_for(item: InputFile, windows: dict[str, list[Window]]) -> list[Window] | None:
    """The windows of one input: by its relative path, else by the label key its path ends with
    (so a sub-folder or a single file can be backtested against the corpus' label file).
    None when the label file does not know the file."""
    if item.key in windows:
        return windows[item.key]
    full = item.path.resolve().as_posix()
    matches = [key for key in windows if full.endswith("/" + key)]
    return windows[max(matches, key=len)] if matches else None
