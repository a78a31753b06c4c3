"""Fitting the seasonal baseline of many series at once.

Why this shape: one full-resolution STL per series costs seconds (see shared/FACTS.md), so points
are first averaged into buckets aligned to the epoch (1-minute points with a daily period become
5-minute means, 288 per day), periods are detected for all series with one vectorised ACF, and
STL with the jump options runs once per seasonal series on the buckets (a few ms). Series
without a period get a robust level and trend with plain array operations. What is kept per
series is small: the seasonal profile per period (indexed by absolute phase, so a new point is
scored without refitting), the trend's last level and slope, and a MAD scale of the residuals.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.tsa.seasonal import MSTL, STL

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
MAX_SLOTS = 288  # buckets per shortest period: keeps one STL near 30 ms
ACF_MIN = 0.3  # autocorrelation at the period's lag needed to call a series seasonal
WEEKLY_GAIN = 0.1  # weekly is added to daily only when its ACF is clearly higher
MIN_COVERAGE = 0.5  # share of buckets with data needed to fit a seasonal model
MAD_TO_SIGMA = 1.4826


@dataclass(slots=True)
class FittedBlock:
    """Per-series state for a block of columns; arrays have one entry (or row) per column."""

    level: np.ndarray
    slope: np.ndarray
    scale: np.ndarray
    coverage: np.ndarray
    max_flat_run: np.ndarray
    profiles: dict[int, np.ndarray]  # slots per period -> (columns x slots), zeros if unused
    periods: list[list[float]]  # periods (seconds) used per column
    tail: tuple[np.ndarray, np.ndarray, np.ndarray]  # last value, its equal run, trailing gap


def bucket_size_s(resolution_s: float, candidates: list[float], aggregate_s: float | None) -> float:
    """Bucket width: the given one, else the data's resolution widened so a period has <= 288."""
    if aggregate_s is not None:
        return aggregate_s
    shortest = min(candidates) if candidates else DAY_S
    factor = max(1, math.ceil(shortest / resolution_s / MAX_SLOTS))
    width = resolution_s * factor
    # Snap to a divisor of the period so phases line up with absolute time.
    slots = max(1, round(shortest / width))
    return shortest / slots


def aggregate(times: np.ndarray, values: np.ndarray, width_s: float) -> tuple[int, np.ndarray]:
    """Means per epoch-aligned bucket: (first bucket id, buckets x columns with NaN gaps)."""
    ids = np.floor(times / width_s).astype(np.int64)
    first, last = int(ids[0]), int(ids[-1])
    starts = np.flatnonzero(np.r_[True, np.diff(ids) > 0])
    finite = ~np.isnan(values)
    sums = np.add.reduceat(np.where(finite, values, 0.0), starts, axis=0)
    counts = np.add.reduceat(finite, starts, axis=0)
    out = np.full((last - first + 1, values.shape[1]), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[ids[starts] - first] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return first, out


def lag_autocorrelation(buckets: np.ndarray, slots: int) -> np.ndarray:
    """ACF at lag ``slots`` per column after removing a moving mean one period long."""
    frame = pd.DataFrame(buckets)
    detrended = (frame - frame.rolling(slots, center=True, min_periods=max(1, slots // 2)).mean()).to_numpy()
    a, b = detrended[:-slots], detrended[slots:]
    valid = ~np.isnan(a) & ~np.isnan(b)
    n = valid.sum(axis=0)
    a = np.where(valid, a, 0.0)
    b = np.where(valid, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(axis=0) / n, b.sum(axis=0) / n
        da, db = np.where(valid, a - ma, 0.0), np.where(valid, b - mb, 0.0)
        acf = (da * db).sum(axis=0) / np.sqrt((da * da).sum(axis=0) * (db * db).sum(axis=0))
    return np.where(n > slots // 2, np.nan_to_num(acf, nan=0.0), 0.0)


def choose_periods(buckets: np.ndarray, width_s: float, configured: list[float] | None) -> list[list[float]]:
    """Periods (seconds) per column: configured ones that fit twice in the data, else detected."""
    n_buckets, n_cols = buckets.shape
    fits = lambda p: n_buckets >= 2 * round(p / width_s) and round(p / width_s) >= 2  # noqa: E731
    if configured is not None:
        usable = [p for p in configured if fits(p)]
        return [list(usable) for _ in range(n_cols)]
    chosen: list[list[float]] = [[] for _ in range(n_cols)]
    acf_day = lag_autocorrelation(buckets, round(DAY_S / width_s)) if fits(DAY_S) else np.zeros(n_cols)
    acf_week = lag_autocorrelation(buckets, round(WEEK_S / width_s)) if fits(WEEK_S) else np.zeros(n_cols)
    for j in range(n_cols):
        if acf_day[j] >= ACF_MIN:
            chosen[j].append(DAY_S)
        if acf_week[j] >= ACF_MIN and (not chosen[j] or acf_week[j] >= acf_day[j] + WEEKLY_GAIN):
            chosen[j].append(WEEK_S)
    return chosen


def _filled(column: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(column)
    idx = np.arange(len(column))
    return np.interp(idx, idx[valid], column[valid])


def _decompose(column: np.ndarray, slots: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """STL (one period) or MSTL (several) with the jump options: (trend, seasonal per period)."""
    x = _filled(column)
    # Jumps of a tenth of the period and one inner loop: about 10x cheaper than the defaults and
    # as close to the true seasonal on 1-minute data averaged to 5 minutes (measured).
    jump = max(1, min(slots) // 10)
    kwargs = {"seasonal_jump": jump, "trend_jump": jump, "low_pass_jump": jump}
    if len(slots) == 1:
        res = STL(x, period=slots[0], **kwargs).fit(inner_iter=1)
        return np.asarray(res.trend), [np.asarray(res.seasonal)]
    res = MSTL(x, periods=slots, stl_kwargs={**kwargs, "inner_iter": 1}).fit()
    seasonal = np.asarray(res.seasonal).reshape(len(x), -1)
    return np.asarray(res.trend), [seasonal[:, k] for k in range(seasonal.shape[1])]


def _profile(component: np.ndarray, first_id: int, slots: int) -> np.ndarray:
    """Median per absolute phase over all cycles, centred on 0.

    The median over cycles, not STL's last cycle: STL's seasonal is least reliable at the ends
    of the series, which is exactly where new points are scored.
    """
    ids = first_id + np.arange(len(component))
    cycle = ids // slots - ids[0] // slots
    table = np.full((int(cycle[-1]) + 1, slots), np.nan)
    table[cycle, ids % slots] = component
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        profile = np.nan_to_num(np.nanmedian(table, axis=0), nan=0.0)
    # A [1, 2, 1] / 4 circular smoothing: the median of a few cycles is noisy, a daily shape at
    # 288 slots is not changed by it.
    profile = (np.roll(profile, 1) + 2 * profile + np.roll(profile, -1)) / 4
    return profile - profile.mean()


def profile_at(profile: np.ndarray, times: np.ndarray, width_s: float, centre_s: float) -> np.ndarray:
    """Seasonal expectation (rows x columns) at ``times``, interpolated between bucket centres.

    A bucket's mean sits at ``bucket start + centre_s`` (the mean of its points' times).
    """
    slots = profile.shape[1]
    u = np.mod((times - centre_s) / width_s, slots)
    i0 = np.floor(u).astype(np.int64) % slots
    w = (u - np.floor(u))[:, None]
    return profile[:, i0].T * (1.0 - w) + profile[:, (i0 + 1) % slots].T * w


def _flat_runs(values: np.ndarray) -> np.ndarray:
    """Longest equal run per column; inf where runs fill half the data (flatline means nothing)."""
    runs = max_equal_run(values)
    return np.where(runs * 2 >= (~np.isnan(values)).sum(axis=0), np.inf, runs)


def max_equal_run(values: np.ndarray) -> np.ndarray:
    """Longest run of consecutive equal finite values per column (1 = no repeats, 0 = no data)."""
    if len(values) < 2:
        return (~np.isnan(values)).sum(axis=0).astype(np.float64)
    eq = (values[1:] == values[:-1]).astype(np.int64)
    total = np.cumsum(eq, axis=0)
    reset = np.maximum.accumulate(np.where(eq == 0, total, 0), axis=0)
    runs = total - reset
    return (runs.max(axis=0) + 1).astype(np.float64)


def tail_state(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the history ends, per column: last finite value, its equal run, trailing gap length."""
    finite = ~np.isnan(values)
    rows = np.arange(len(values))[:, None]
    last_row = np.where(finite, rows, -1).max(axis=0)
    cols = np.arange(values.shape[1])
    last = np.where(last_row >= 0, values[np.maximum(last_row, 0), cols], np.nan)
    missing = (len(values) - 1 - last_row).astype(np.float64)
    same = finite & (values == last) & (rows <= last_row)
    # Length of the run of ``last`` that ends at last_row (gaps inside the run end it).
    broken = np.where(~same & (rows <= last_row), rows, -1).max(axis=0)
    run = np.where(last_row >= 0, last_row - broken, 0).astype(np.float64)
    return last, run, missing


def robust_scale(residuals: np.ndarray) -> np.ndarray:
    """MAD scale per column; mean absolute deviation where the MAD is 0; tiny floor otherwise."""
    with warnings.catch_warnings():  # all-NaN columns give NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(residuals, axis=0)
        dev = np.abs(residuals - centre)
        mad = MAD_TO_SIGMA * np.nanmedian(dev, axis=0)
        mean_abs = 1.2533 * np.nanmean(dev, axis=0)
    scale = np.where(mad > 0, mad, mean_abs)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1e-9)


def fit_block(
    times: np.ndarray,
    values: np.ndarray,
    width_s: float,
    centre_s: float,
    configured: list[float] | None,
    window_s: float,
) -> FittedBlock:
    """Fit every column of ``values`` (rows x columns at ``times``)."""
    first_id, buckets = aggregate(times, values, width_s)
    n_buckets, n_cols = buckets.shape
    periods = choose_periods(buckets, width_s, configured)
    coverage_b = (~np.isnan(buckets)).mean(axis=0)
    window_b = max(2, min(n_buckets, round(window_s / width_s)))

    trend = pd.DataFrame(buckets).rolling(window_b, center=True, min_periods=1).median().to_numpy(copy=True)
    profiles: dict[int, np.ndarray] = {}
    for j in range(n_cols):
        if not periods[j] or coverage_b[j] < MIN_COVERAGE:
            periods[j] = []
            continue
        slots = [round(p / width_s) for p in periods[j]]
        t_j, seasonals = _decompose(buckets[:, j], slots)
        trend[:, j] = t_j
        if len(slots) == 1:  # seasonal + remainder: the median over cycles drops the remainder
            seasonals = [buckets[:, j] - t_j]
        for k, s in zip(slots, seasonals):
            profiles.setdefault(k, np.zeros((n_cols, k)))[j] = _profile(s, first_id, k)

    bucket_times = (first_id + np.arange(n_buckets)) * width_s + centre_s
    seasonal_b = np.zeros_like(buckets)
    for prof in profiles.values():
        seasonal_b += profile_at(prof, bucket_times, width_s, centre_s)
    # Level and slope from the latest deseasonalised points, not STL's trend: the trend's last
    # values are its least reliable ones.
    # The slope comes from at least a whole day (or the longest period): over a few hours a
    # seasonal series' deseasonalised points follow whatever the profile misses (a Sunday
    # morning), and extrapolating that overshoots.
    longest = max((max(p) for p in periods if p), default=DAY_S)
    slope_b = max(window_b, min(n_buckets, round(longest / width_s)))
    deseasoned = buckets[-slope_b:] - seasonal_b[-slope_b:]
    level, slope = _level_and_slope(deseasoned, width_s, window_b)
    expected_b = trend + seasonal_b
    residuals = values - _interpolate_rows(expected_b, (times - centre_s) / width_s - first_id)
    # In-sample residuals are smaller than the errors on new points, by the profile's own
    # estimation error: about pi/2 * 0.375 / cycles of the variance for a smoothed median.
    cycles = np.array([n_buckets * width_s / min(p) if p else np.inf for p in periods])
    inflation = np.sqrt(1.0 + 0.6 / cycles)
    return FittedBlock(
        level=level,
        slope=slope,
        scale=robust_scale(residuals) * inflation,
        coverage=(~np.isnan(values)).mean(axis=0),
        max_flat_run=_flat_runs(values),
        profiles=profiles,
        periods=periods,
        tail=tail_state(values),
    )


def _level_and_slope(recent: np.ndarray, width_s: float, level_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust level at the end (median of the last ``level_b`` rows, moved on by the slope) and
    slope (difference of the medians of the two halves of ``recent``, per second)."""
    half = max(1, len(recent) // 2)
    level_b = min(level_b, len(recent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(recent[-level_b:], axis=0)
        early = np.nanmedian(recent[:half], axis=0)
        late = np.nanmedian(recent[-half:], axis=0)
    slope = (late - early) / (max(1, len(recent) - half) * width_s)
    slope = np.nan_to_num(slope, nan=0.0)
    return level + slope * (level_b - 1) / 2 * width_s, slope


def _interpolate_rows(table: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table`` rows at fractional row ``position`` (clamped)."""
    top = len(table) - 1
    pos = np.clip(position, 0, top)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, top)
    w = (pos - i0)[:, None]
    return table[i0] * (1.0 - w) + table[i1] * w
