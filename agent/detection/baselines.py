"""Incident-aware baselines: a refit never learns an outage as normal.

Before a detector is refitted, every point of a series that lies inside the window of an
incident the series took part in (started_at .. resolved_at, or now while it is still open)
becomes NaN, and so does every point that was itself a hit. What is left is history the agent
had no reason to doubt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from agent.store.detectors import Exclusions


@dataclass(frozen=True, slots=True, kw_only=True)
class Masked:
    frame: pd.DataFrame
    dropped: int  # points turned into NaN


def mask_exclusions(frame: pd.DataFrame, exclusions: Mapping[str, Exclusions],
                    *, row_subjects: Sequence[str] = ()) -> Masked:
    """``frame`` with excluded points set to NaN. Exclusions of ``row_subjects`` (an entity as
    a whole) blank whole rows: a multivariate detector sees an entity's rows together."""
    if frame.empty or not exclusions:
        return Masked(frame=frame, dropped=0)
    index = frame.index
    out = frame.copy()
    before = int(out.notna().to_numpy().sum())
    for column in frame.columns:
        found = exclusions.get(column)
        if found is not None:
            out.loc[_excluded(index, found), column] = np.nan
    for subject in row_subjects:
        found = exclusions.get(subject)
        if found is not None:
            out.loc[_excluded(index, found), :] = np.nan
    return Masked(frame=out, dropped=before - int(out.notna().to_numpy().sum()))


def _excluded(index: pd.DatetimeIndex, found: Exclusions) -> np.ndarray:
    mask = np.zeros(len(index), dtype=bool)
    for start, end in found.windows:
        mask |= (index >= _ts(start)) & (index <= _ts(end))
    if found.hits and len(index):
        # A hit's time went through the store as epoch seconds: match the nearest point within 1 s.
        at = index.get_indexer(pd.DatetimeIndex([_ts(t) for t in found.hits]), method="nearest",
                               tolerance=pd.Timedelta(seconds=1))
        mask[at[at >= 0]] = True
    return mask


def _ts(value: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")
