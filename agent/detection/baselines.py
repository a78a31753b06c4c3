"""Incident-aware baselines: a refit never learns an outage as normal.

Before a detector is refitted, every point of a series that lies inside the window of an
incident the series took part in (started_at .. resolved_at, or now while it is still open)
becomes NaN, and so does every point that was itself a hit. What is left is history the agent
had no reason to doubt.

Unless that would leave out most of it (``mask_for_fit``): when more than half of a series' points
(an entity's rows) would go, what they show is no outage but the series' new normal (a level
that moved and stayed), and learning nothing from it would blind the detector for good. The
hits are then kept (incident windows still left out), and if that is not enough either, nothing
is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd

from agent.store.detectors import Exclusions

KEEP_SHARE = 0.5  # a mask that leaves less than this share of a series' points is relaxed


@dataclass(frozen=True, slots=True, kw_only=True)
class Masked:
    frame: pd.DataFrame
    dropped: int  # points turned into NaN
    relaxed: tuple[str, ...] = ()  # series (or the entity) whose exclusions were relaxed


def mask_for_fit(frame: pd.DataFrame, exclusions: Mapping[str, Exclusions],
                 *, row_subjects: Sequence[str] = ()) -> Masked:
    """``mask_exclusions``, relaxed per series (or for the entity's rows as a whole) where it
    would leave less than ``KEEP_SHARE`` of the points: hits kept first, then nothing left out."""
    full = mask_exclusions(frame, exclusions, row_subjects=row_subjects)
    if frame.empty or not exclusions:
        return full
    windows_only = {k: replace(v, hits=[]) for k, v in exclusions.items()}
    if row_subjects:
        if _row_share(full.frame, frame) >= KEEP_SHARE:
            return full
        lighter = mask_exclusions(frame, windows_only, row_subjects=row_subjects)
        if _row_share(lighter.frame, frame) >= KEEP_SHARE:
            return replace(lighter, relaxed=(row_subjects[0],))
        return Masked(frame=frame, dropped=0, relaxed=(row_subjects[0],))
    out = full.frame.copy()
    before = frame.notna().sum()
    relaxed = []
    for column in frame.columns:
        if before[column] == 0 or out[column].notna().sum() >= KEEP_SHARE * before[column]:
            continue
        relaxed.append(str(column))
        lighter = mask_exclusions(frame[[column]], windows_only).frame[column]
        out[column] = lighter if lighter.notna().sum() >= KEEP_SHARE * before[column] else frame[column]
    if not relaxed:
        return full
    return Masked(frame=out, dropped=int(before.sum() - out.notna().sum().sum()), relaxed=tuple(relaxed))


def _row_share(masked: pd.DataFrame, frame: pd.DataFrame) -> float:
    rows = int(frame.notna().any(axis=1).sum())
    return float(masked.notna().any(axis=1).sum()) / rows if rows else 1.0


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
