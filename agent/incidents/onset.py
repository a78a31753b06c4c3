"""Where an anomaly began, as the correlate stage estimates it from the cycle's frame.

A point detector says only that a point is anomalous. The point is stamped when the source read
it, so the change it shows happened after the series' previous point, which was judged normal,
and at the latest at the point itself: the start is taken midway between the two. A point with
no earlier one in the frame is given half a cycle. So an episode's start always lies before the
cycle that detects it, and its MTTD is never 0 by construction.

Detectors that know better keep their own start and get it described: a window detector's
first breaching point (N of M, an SLO), a drift's change point. ``Hit.onset`` carries the words,
which the summary shows where it gives the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from agent.flow.samples import Samples
from detectors.base import Hit

DRIFT_DETECTOR = "drift"  # the drift stage's hits


def with_onsets(hits: Sequence[Hit], samples: Samples, *, interval_s: float) -> list[Hit]:
    """``hits`` with their start estimated where their detector gave none, each saying how."""
    times = samples.values.index
    out = []
    for hit in hits:
        if hit.onset:
            out.append(hit)
        elif hit.first_at < hit.ts:
            out.append(replace(hit, onset=given_words(hit)))
        else:
            out.append(midway(hit, previous_point(samples, times, hit), interval_s=interval_s))
    return out


def given_words(hit: Hit) -> str:
    if hit.detector == DRIFT_DETECTOR:
        return (f"the change point of the drifted features' data ({clock(hit.first_at)}), where their "
                "distribution left the baseline")
    return f"the first breaching point of the window that fired at {clock(hit.ts)}"


def previous_point(samples: Samples, times: pd.DatetimeIndex, hit: Hit) -> datetime | None:
    """The time of the series' last point with a value before the hit's, in this cycle's frame."""
    if hit.series_id not in samples.values.columns or not len(times):
        return None
    end = times.searchsorted(pd.Timestamp(hit.ts), side="left")
    if end == 0:
        return None
    values = samples.values[hit.series_id].to_numpy(dtype="float64")[:end]
    found = np.flatnonzero(~np.isnan(values))
    return times[found[-1]].to_pydatetime() if found.size else None


def midway(hit: Hit, previous: datetime | None, *, interval_s: float) -> Hit:
    if previous is not None and previous < hit.ts:
        began = previous + (hit.ts - previous) / 2
        words = (f"midway between {clock(previous)}, the last point before it, and {clock(hit.ts)}, "
                 "its first anomalous point")
    else:
        began = hit.ts - timedelta(seconds=interval_s / 2)
        words = (f"half a cycle before {clock(hit.ts)}, its first anomalous point (no earlier point "
                 "to compare it with)")
    return replace(hit, began_at=began, onset=words)


def clock(at: datetime) -> str:
    return f"{at:%H:%M:%S}"
