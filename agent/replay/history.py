"""Where a replay reads the past: the configured Prometheus (range queries or remote read, as
the daemon reads it) or the embedded scrape history of the live store, opened read-only.

The embedded history is read with SQLite's ``mode=ro``: the live file is never migrated,
locked for writing or changed, whatever the replay does with its own throwaway store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from agent.clock import from_epoch, to_epoch
from agent.errors import StoreError
from agent.flow.samples import Samples
from agent.incidents.history import Points
from agent.sources.frame import from_wide
from agent.store import STORE_FILE
from agent.store.samples import SampleReader

EMBEDDED = "embedded"
PLOT_POINTS = 5000


class EmbeddedHistory:
    """The scrape history of a store file, read-only, as a source: ``fetch(start, end)``."""

    name = EMBEDDED

    def __init__(self, reader: SampleReader) -> None:
        self.reader = reader

    @classmethod
    def open(cls, state_dir: Path) -> "EmbeddedHistory":
        path = Path(state_dir) / STORE_FILE
        if not path.is_file():
            raise StoreError(str(path), "no store file: the embedded history is empty (has the agent run here?)")
        return cls(SampleReader(path))

    def close(self) -> None:
        self.reader.close()

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, series_ids: Sequence[str] | None = None) -> Samples:
        wide = self.reader.sample_frame(to_epoch(start.to_pydatetime()), to_epoch(end.to_pydatetime()), series_ids)
        infos = {s.series_id: s for s in self.reader.known_series(series_ids=series_ids)}
        return from_wide(wide, infos)

    def points(self, series_id: str, promql: str | None, start: datetime, end: datetime) -> Points:
        """One series' samples over ``[start, end]``, for an incident's plot."""
        found = self.reader.sample_history(to_epoch(start), to_epoch(end), [series_id]).head(PLOT_POINTS)
        return [(from_epoch(ts), None if math.isnan(value) else float(value))
                for ts, value in zip(found["ts"], found["value"])]

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The first and last sample time the history holds (None when it holds none)."""
        found = self.reader.sample_span()
        if found is None:
            return None
        return pd.Timestamp(found[0], unit="s", tz="UTC"), pd.Timestamp(found[1], unit="s", tz="UTC")


__all__ = ["EMBEDDED", "EmbeddedHistory"]
