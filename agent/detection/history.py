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
            frame = live.combine_first(frame) if not frame.empty else live
    frame = frame.reindex(columns=list(series_ids))
    return frame.sort_index().astype("float64")
