"""Building and trimming the samples frame every source returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from agent.flow.samples import Samples, SeriesInfo, series_id


def empty_index() -> pd.DatetimeIndex:
    return pd.DatetimeIndex([], tz="UTC", name="ts").as_unit("ns")


def to_index(epoch_s: Iterable[float] | np.ndarray) -> pd.DatetimeIndex:
    """Epoch seconds → a UTC DatetimeIndex named ts (millisecond precision, as Prometheus keeps)."""
    ms = np.round(np.asarray(epoch_s, dtype="float64") * 1000).astype("int64")
    return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True), name="ts").as_unit("ns")


def histogram_id(info: SeriesInfo) -> str:
    """The histogram a bucket series belongs to: its name without _bucket, its labels without le."""
    metric = info.metric[: -len("_bucket")] if info.metric.endswith("_bucket") else info.metric
    return series_id(metric, {k: v for k, v in info.labels.items() if k != "le"})


def from_wide(wide: pd.DataFrame, series: Mapping[str, SeriesInfo]) -> Samples:
    """A wide frame (rows = epoch s, one column per series_id) → Samples; bucket series go to
    ``buckets`` (rows = ts, columns = le as float, cumulative counts), the rest to ``values``."""
    if wide.empty:
        return Samples(values=pd.DataFrame(index=empty_index(), dtype="float64"),
                       series={k: v for k, v in series.items() if v.kind != "bucket"})
    wide = wide.copy(deep=False)
    wide.index = to_index(wide.index.to_numpy())
    wide.columns.name = None
    bucket_cols = [c for c in wide.columns if c in series and series[c].kind == "bucket"]
    buckets: dict[str, dict[float, pd.Series]] = {}
    for col in bucket_cols:
        info = series[col]
        buckets.setdefault(histogram_id(info), {})[float(info.labels["le"])] = wide[col]
    values = wide.drop(columns=bucket_cols).astype("float64")
    bucket_frames = {hid: pd.DataFrame(dict(sorted(cols.items()))).dropna(how="all") for hid, cols in buckets.items()}
    kept = {c: series[c] for c in values.columns if c in series}
    return Samples(values=values, series=kept, buckets=bucket_frames)


def restrict(samples: Samples, keep: Callable[[str], bool]) -> Samples:
    """Only the series (and histograms) for which ``keep(series_id)`` holds: sharding."""
    cols = [c for c in samples.values.columns if keep(c)]
    return Samples(values=samples.values[cols], series={c: samples.series[c] for c in cols if c in samples.series},
                   gaps=frozenset(g for g in samples.gaps if keep(g)),
                   buckets={h: f for h, f in samples.buckets.items() if keep(h)})


def with_gaps(samples: Samples, missing: Iterable[SeriesInfo], at: pd.Timestamp | None = None) -> Samples:
    """Add series whose source failed: named in ``gaps``, NaN columns, and a row ``at`` the failed
    attempt so the frame shows the gap where it happened."""
    missing = [m for m in missing if m.kind != "bucket"]
    values = samples.values
    if missing and at is not None and at not in values.index:
        index = values.index.union(pd.DatetimeIndex([at], name="ts"))
        index.name = "ts"
        values = values.reindex(index)
    series = dict(samples.series)
    gaps = set(samples.gaps)
    new = {}
    for info in missing:
        gaps.add(info.series_id)
        series.setdefault(info.series_id, info)
        if info.series_id not in values.columns:
            new[info.series_id] = np.full(len(values.index), np.nan)
    if new:
        values = pd.concat([values, pd.DataFrame(new, index=values.index)], axis=1)
    return Samples(values=values, series=series, gaps=frozenset(gaps), buckets=samples.buckets)
