"""History for refits: what the source can give back for a time range, plus this cycle's frame.

The collect stage reads it (``Collector.history``: Prometheus query_range, the scrape history in
the store, or CSV files); detection is handed that reader as a ``HistoryReader``. The cycle's own
frame is merged in last, so a source that returns a long window each cycle needs no history at
all. A failing source raises: a refit should wait rather than learn a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from agent.flow.samples import Samples


class HistoryReader(Protocol):
    def __call__(self, start: datetime, end: datetime, *, series_ids: Sequence[str] | None = None,
                 step_s: float | None = None) -> Samples: ...


def read_history(read: HistoryReader, series_ids: Sequence[str], start: datetime, end: datetime, *,
                 step_s: float, current: Samples | None = None) -> pd.DataFrame:
    """Values of ``series_ids`` over ``[start, end]`` at ``step_s``: rows = UTC timestamps, one
    column each."""
    frame = read(pd.Timestamp(start), pd.Timestamp(end), series_ids=list(series_ids), step_s=step_s).values
    if current is not None:
        cols = [c for c in series_ids if c in current.values.columns]
        if cols:
            live = current.values[cols]
            live = live[(live.index >= pd.Timestamp(start)) & (live.index <= pd.Timestamp(end))]
            frame = _live_first(live, frame, list(series_ids)) if not frame.empty else live
    frame = frame.reindex(columns=list(series_ids))
    return frame.sort_index().astype("float64")


def _live_first(live: pd.DataFrame, older: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``live.combine_first(older)`` over ``columns``: every row of either, a live value where
    it has one, else the older one (pandas' combine_first aligns column by column: slow on a
    week of rows)."""
    index = older.index.union(live.index)
    fresh = live.reindex(index=index, columns=columns).to_numpy(dtype="float64")
    kept = older.reindex(index=index, columns=columns).to_numpy(dtype="float64")
    return pd.DataFrame(np.where(np.isnan(fresh), kept, fresh), index=index, columns=columns)
