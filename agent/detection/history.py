"""History for refits: what the sources can give back for a time range, plus this cycle's frame.

The sources expose ``agent.sources.history(ctx, start, end, series_ids=...) -> Samples``
(Prometheus query_range, the scrape history in the store, or CSV files); without it the
store's scrape history (``samples`` table) is read. The cycle's own frame is merged in last, so
a source that returns a long window each cycle needs neither. A failing source raises: a refit
should wait rather than learn a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from agent import sources
from agent.clock import to_epoch
from agent.sources.base import Samples

if TYPE_CHECKING:
    from agent.context import Context


def read_history(ctx: "Context", series_ids: Sequence[str], start: datetime, end: datetime,
                 current: Samples | None = None) -> pd.DataFrame:
    """Values of ``series_ids`` over ``[start, end]``: rows = UTC timestamps, one column each."""
    frame = _from_sources(ctx, series_ids, start, end)
    if current is not None:
        cols = [c for c in series_ids if c in current.values.columns]
        if cols:
            live = current.values[cols]
            live = live[(live.index >= pd.Timestamp(start)) & (live.index <= pd.Timestamp(end))]
            frame = live.combine_first(frame) if not frame.empty else live
    frame = frame.reindex(columns=list(series_ids))
    return frame.sort_index().astype("float64")


def _from_sources(ctx: "Context", series_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    history = getattr(sources, "history", None)
    if callable(history):
        found = history(ctx, pd.Timestamp(start), pd.Timestamp(end), series_ids=list(series_ids))
        return found.values if isinstance(found, Samples) else found
    reader = getattr(ctx.store, "sample_history", None)
    if reader is None:
        return pd.DataFrame(dtype="float64")
    long = reader(to_epoch(start), to_epoch(end), list(series_ids))
    if long.empty:
        return pd.DataFrame(dtype="float64")
    wide = long.pivot_table(index="ts", columns="series_id", values="value", aggfunc="last", dropna=False)
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index.to_numpy(), unit="s", utc=True), name="ts")
    wide.columns.name = None
    return wide


def bucket_history(ctx: "Context", metric: str, labels: dict[str, str], start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Per-scrape bucket increases of one histogram over ``[start, end]``: rows = ts, columns = le."""
    known = getattr(ctx.store, "known_series", None)
    if known is None:
        return pd.DataFrame(dtype="float64")
    bucket_series = [s for s in known(labels=labels) if s.kind == "bucket" and s.metric == f"{metric}_bucket"
                     and set(s.labels) - {"le"} == set(labels)]
    if not bucket_series:
        return pd.DataFrame(dtype="float64")
    wide = _from_sources(ctx, [s.series_id for s in bucket_series], start, end)
    by_le = {float(s.labels["le"]): wide[s.series_id] for s in bucket_series if s.series_id in wide.columns}
    return pd.DataFrame(dict(sorted(by_le.items()))).dropna(how="all") if by_le else pd.DataFrame(dtype="float64")
