"""Refit history for a replay over Prometheus, from a copy of what the replay has read.

The daemon's refits read their history (``detectors.refit.history``, a week by default) through
the configured queries. A replay makes a week of refits in minutes, and through the server each
would read the week again. ``DayCopy`` keeps what the replay reads instead: each chunk the
collect stage reads (a day), and the history before the range (read once, a day at a time), one
folder a chunk in the work folder, and answers the refits' reads from it.

It gives exactly what the server would have: a query evaluated at a time gives the same value
whatever range it was asked for, and the refit grid (multiples of ``refit.step``) is a subset
of each query's grid when the refit step is a whole multiple of every query's step (the copy is
not used otherwise). The answer keeps query_range's rows: every grid point of the range once
some series has a value at one of them, none otherwise. Points no complete chunk holds (a day
the source failed on, in part or in whole) are read from the source, one run of them at a time,
so a source down then fails the refit as it would have. Reads the copy cannot answer (no
series named, or no step: the drift watch's seeding) go to the source as given.

On disk a chunk is its timestamps, one row of float64 values a series (a series' points are
contiguous) and whether each timestamp held any value; it is mapped for a read and let go, so
memory holds what one refit asks for, not the week.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from agent.detection.history import HistoryReader
from agent.flow.samples import Samples
from agent.log import kv
from agent.sources.frame import empty_index, to_index

log = logging.getLogger(__name__)

COLUMNS = "columns.json"
TIMES = "ts.npy"
VALUES = "values.npy"
PRESENT = "present.npy"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chunk:
    """One chunk on disk: its timestamps (epoch ms) and where each series' row is."""

    path: Path
    ts_ms: np.ndarray
    rows: dict[str, int] = field(hash=False)


def refit_grid_ms(start: pd.Timestamp, end: pd.Timestamp, step_s: float) -> np.ndarray:
    """The times a range query over ``[start, end]`` at ``step_s`` is evaluated at (epoch ms), as
    ``PrometheusSource`` lays its grid."""
    first = math.floor(start.timestamp() / step_s) * step_s
    last = math.floor(end.timestamp() / step_s) * step_s
    grid = first + step_s * np.arange(int(round((last - first) / step_s)) + 1)
    return np.round(grid * 1000).astype("int64")


def grid_fits(refit_step_s: float, query_steps_s: Sequence[float]) -> bool:
    """Whether every point of the refit grid is a point of each query's grid."""
    refit_ms = round(refit_step_s * 1000)
    return all(refit_ms % round(step * 1000) == 0 for step in query_steps_s)


class DayCopy:
    """A ``HistoryReader`` over the chunks a replay has read (see the module's text);
    ``source``: the reader for what the copy does not hold."""

    def __init__(self, folder: Path, source: HistoryReader) -> None:
        self.folder = folder
        self.source = source
        self.chunks: list[_Chunk] = []
        self.from_source = 0  # reads (or runs of points) the copy sent to the source

    @classmethod
    def open(cls, folder: Path, source: HistoryReader) -> "DayCopy":
        """The copy in ``folder``, with the chunks a stopped replay left there."""
        folder.mkdir(parents=True, exist_ok=True)
        copy = cls(folder, source)
        for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            copy.chunks.append(_load(path))
        return copy

    def keep(self, samples: Samples, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """Keep the values one complete read of ``[start, end]`` gave (a read where a query
        failed is not kept: its points are read from the source when asked for)."""
        values = samples.values
        name = f"{int(start.timestamp())}-{int(end.timestamp())}"
        partial = self.folder / f".{name}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        ts_ms = np.asarray(values.index.as_unit("ms").asi8, dtype="int64")
        matrix = values.to_numpy(dtype="float64").T
        np.save(partial / TIMES, ts_ms)
        np.save(partial / VALUES, np.ascontiguousarray(matrix))
        np.save(partial / PRESENT, ~np.isnan(matrix).all(axis=0) if matrix.size else np.zeros(len(ts_ms), bool))
        (partial / COLUMNS).write_text(json.dumps([str(c) for c in values.columns]))
        final = self.folder / name
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        self.chunks = [c for c in self.chunks if c.path != final] + [_load(final)]

    def holds(self, start: pd.Timestamp, end: pd.Timestamp) -> bool:
        """Whether a chunk read exactly ``[start, end]`` is kept."""
        name = f"{int(start.timestamp())}-{int(end.timestamp())}"
        return any(c.path.name == name for c in self.chunks)

    def __call__(self, start: datetime, end: datetime, *, series_ids: Sequence[str] | None = None,
                 step_s: float | None = None) -> Samples:
        if series_ids is None or step_s is None:
            self.from_source += 1
            return self.source(start, end, series_ids=series_ids, step_s=step_s)
        ids = list(dict.fromkeys(series_ids))
        grid = refit_grid_ms(pd.Timestamp(start), pd.Timestamp(end), step_s)
        out = np.full((len(ids), len(grid)), np.nan)
        present = np.zeros(len(grid), dtype=bool)
        missing = np.ones(len(grid), dtype=bool)
        for chunk in self.chunks:
            _fill(chunk, ids, grid, missing, out, present)
        for lo, hi in _runs(missing):
            self._from_source(ids, grid, lo, hi, step_s, out, present)
        if not present.any():
            return Samples(values=pd.DataFrame(index=empty_index(), dtype="float64"), series={})
        frame = pd.DataFrame(out.T, index=to_index(grid / 1000), columns=ids, copy=False)
        return Samples(values=frame, series={})  # refits read values only: no series infos

    def _from_source(self, ids: list[str], grid: np.ndarray, lo: int, hi: int, step_s: float,
                     out: np.ndarray, present: np.ndarray) -> None:
        """Points ``grid[lo:hi]`` read through the source (they raise as the source raises)."""
        self.from_source += 1
        first, last = (pd.Timestamp(int(grid[i]), unit="ms", tz="UTC") for i in (lo, hi - 1))
        log.debug(kv("replay.history_from_source", start=first.to_pydatetime(), end=last.to_pydatetime(),
                     series=len(ids)))
        frame = self.source(first.to_pydatetime(), last.to_pydatetime(), series_ids=ids, step_s=step_s).values
        if frame.empty and not len(frame.index):
            return
        at = np.asarray(frame.index.as_unit("ms").asi8, dtype="int64")
        where = np.searchsorted(grid, at)
        fits = (where < len(grid)) & (grid[np.minimum(where, len(grid) - 1)] == at)
        present[where[fits]] = True
        for row, sid in enumerate(ids):
            if sid in frame.columns:
                out[row, where[fits]] = frame[sid].to_numpy(dtype="float64")[fits]


def _load(path: Path) -> _Chunk:
    columns = json.loads((path / COLUMNS).read_text())
    return _Chunk(path=path, ts_ms=np.load(path / TIMES), rows={sid: n for n, sid in enumerate(columns)})


def _fill(chunk: _Chunk, ids: list[str], grid: np.ndarray, missing: np.ndarray, out: np.ndarray,
          present: np.ndarray) -> None:
    """The grid points ``chunk`` holds and no chunk before it gave, copied into ``out``."""
    if not len(chunk.ts_ms) or grid[-1] < chunk.ts_ms[0] or grid[0] > chunk.ts_ms[-1]:
        return
    where = np.searchsorted(chunk.ts_ms, grid)
    clipped = np.minimum(where, len(chunk.ts_ms) - 1)
    take = missing & (chunk.ts_ms[clipped] == grid)
    if not take.any():
        return
    cols = clipped[take]
    wanted = np.array([n for n, sid in enumerate(ids) if sid in chunk.rows], dtype="int64")
    present[take] = np.load(chunk.path / PRESENT, mmap_mode="r")[cols]
    if len(wanted):
        stored = np.array([chunk.rows[ids[n]] for n in wanted], dtype="int64")
        values = np.load(chunk.path / VALUES, mmap_mode="r")
        out[np.ix_(wanted, np.flatnonzero(take))] = np.asarray(values[stored])[:, cols]
        del values  # unmapped: memory holds what this read asked for
    missing[take] = False


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` index ranges where ``mask`` holds."""
    edges = np.diff(np.concatenate(([0], mask.astype("int8"), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


__all__ = ["DayCopy", "grid_fits", "refit_grid_ms"]
