"""History for refits: what the sources can give back for a time range, plus this cycle's frame.

The sources expose ``agent.sources.history(ctx, start, end, series_ids=...) -> Samples``
(Prometheus query_range, the scrape history in the store, or CSV files). The cycle's own frame
is merged in last, so a source that returns a long window each cycle needs no history at all.
A failing source raises: a refit should wait rather than learn a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from agent import sources
from agent.sources.base import Samples

if TYPE_CHECKING:
    from agent.context import Context


def read_history(ctx: "Context", series_ids: Sequence[str], start: datetime, end: datetime,
                 current: Samples | None = None) -> pd.DataFrame:
    """Values of ``series_ids`` over ``[start, end]`` at ``detectors.refit.step``: rows = UTC
    timestamps, one column each."""
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
    found = sources.history(ctx, pd.Timestamp(start), pd.Timestamp(end), series_ids=list(series_ids),
                            step_s=ctx.config.detectors.refit.step)
    return found.values
