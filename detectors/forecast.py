"""Streaming univariate detector: naive forecasts at a few time scales, each error judged against
the same error's recent history; repeats suppressed after an alarm.

For every new point the detector makes three kinds of forecast from the points before it:

- the previous value (or the median of the last ``level_rows`` points);
- the same phase of the last ``season_count`` seasons, for each season of ``season_days`` (a day
  and a week by default, at the series' own step): their median, moved by how much the current
  level (median of the last ``season_level_rows`` points) differs from the level at those
  phases. A season is compared once ``season_min_count`` of them are in the past (1 day, 3
  weeks by default: a single week-old value is too noisy a forecast);
- for the mean of the last ``mean_rows`` points, the median of the points before them, over
  each span of ``baseline_rows`` (catches level shifts, sudden or slow, that single points hide;
  these errors share the recent mean, so only the most surprising of them counts).

Each forecast's absolute error is ranked against the same error over a window of previous
points: its percentile rank, or, when it beats every one of them,
``1 + log(error / previous largest)``. The window grows with what has been seen: ``window_rows``
doubled as long as it stays within ``memory_share`` of the points seen so far and within
``max_window_rows`` (a long-watched series remembers longer, so its recurring bursts stop
looking new). The point's raw score ``r`` is the mean of its two largest such surprises
(``combine_top``): an anomaly usually breaks more than one forecast, noise rarely does. ``r / (1 + r)`` maps it into [0, 1] (higher = more anomalous; above 0.5 only when
errors beat their whole window). A point at or above ``alarm_score`` is an alarm (a hit); the
``quiet_rows`` points after any point that reached ``alarm_score`` score 0, so one episode
raises one alarm.

Every statistic looks back a bounded number of points, so ``fit`` keeps only those (``tail_``):
fitting on any history and scoring the next points gives exactly the scores of one pass over the
whole series (``seen_`` counts the points before, for the growing memory). The defaults were
chosen on the NAB development corpus (one set for all series; 70.9 standard there).
Example::

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=600, freq="5min", tz="UTC")
    >>> values = pd.Series(np.sin(np.arange(600) / 10.0), index=idx)
    >>> values.iloc[500] = 8.0
    >>> detector = ForecastDetector().fit(values.iloc[:400])
    >>> result = detector.score(values.iloc[400:])
    >>> [hit.ts.isoformat() for hit in result.hits]
    ['2024-01-02T17:40:00+00:00']
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError

DAY_S = 86_400.0
MAX_RATIO = 1e6  # errors beyond a million times the previous largest all score the same
MIN_PAST = 100  # errors needed before one is judged: a few dozen points prove nothing


class ForecastDetector(Detector):
    """Causal, streaming scores in [0, 1] for one series (higher = more anomalous)."""

    name: ClassVar[str] = "forecast"

    def __init__(self, window_rows: int = 400, memory_share: float = 0.15, max_window_rows: int = 3200,
                 level_rows: tuple[int, ...] = (1,), mean_rows: int = 12,
                 baseline_rows: tuple[int, ...] = (12, 144),
                 season_days: tuple[int, ...] = (1, 7), season_min_count: tuple[int, ...] = (1, 3),
                 season_count: int = 3, season_level_rows: int = 72,
                 combine_top: int = 2,
                 quiet_rows: int = 100, alarm_score: float = 0.52, series_id: str = "") -> None:
        self.window_rows = window_rows
        self.memory_share = memory_share
        self.max_window_rows = max_window_rows
        self.level_rows = level_rows
        self.mean_rows = mean_rows
        self.baseline_rows = baseline_rows
        self.season_days = season_days
        self.season_min_count = season_min_count
        self.season_count = season_count
        self.season_level_rows = season_level_rows
        self.combine_top = combine_top
        self.quiet_rows = quiet_rows
        self.alarm_score = alarm_score
        self.series_id = series_id

    # fitting -------------------------------------------------------------------------------

    def fit(self, history: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Keep the last points of ``history`` that later scores depend on, and the season
        lengths in points found from its median step."""
        self._check_params()
        series = _as_series(history, self.name)
        self.period_rows_ = self._periods(_median_step_s(series.index))
        keep = self._context_rows()
        self.tail_ = [float(v) for v in series.to_numpy()[-keep:]]
        self.seen_ = len(series)
        return self

    def update(self, window: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Append ``window`` to the kept points: what a refit on history + window would keep,
        without reading the history again."""
        self._check_fitted()
        series = _as_series(window, self.name)
        self.tail_ = (self.tail_ + [float(v) for v in series.to_numpy()])[-self._context_rows():]
        self.seen_ += len(series)
        return self

    def _check_params(self) -> None:
        problems = []
        if not (isinstance(self.memory_share, (int, float)) and 0 <= self.memory_share <= 1):
            problems.append(f"memory_share: expected a number in [0, 1], found {self.memory_share!r}")
        for name, least in (("window_rows", MIN_PAST), ("max_window_rows", MIN_PAST), ("mean_rows", 0),
                            ("season_count", 1), ("season_level_rows", 1), ("combine_top", 1), ("quiet_rows", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                problems.append(f"{name}: expected an int >= {least}, found {value!r}")
        for name in ("level_rows", "baseline_rows", "season_days", "season_min_count"):
            value = getattr(self, name)
            if any(not isinstance(w, int) or w < 1 for w in value):
                problems.append(f"{name}: expected ints >= 1, found {value!r}")
        if len(self.season_min_count) != len(self.season_days):
            problems.append(f"season_min_count: expected one count per season in season_days, "
                            f"found {self.season_min_count!r}")
        if problems:
            raise DetectorError(self.name, "; ".join(problems))

    def _periods(self, step_s: float | None) -> list[int]:
        """Season lengths in points, when a day is about a whole number (at least 4) of steps."""
        if not step_s:
            return []
        day = DAY_S / step_s
        if day < 4 or abs(day - round(day)) > 0.05 * day:
            return []
        return [round(day) * days for days in self.season_days]

    def _context_rows(self) -> int:
        seasons = [p * self.season_count + self.season_level_rows for p in self.period_rows_]
        baselines = [self.mean_rows + b for b in self.baseline_rows]
        reach = max([*self.level_rows, *baselines, *seasons, 1])
        return self.quiet_rows + max(self._windows()) + reach + 1

    def _windows(self) -> list[int]:
        windows = [self.window_rows]
        while windows[-1] * 2 <= self.max_window_rows:
            windows.append(windows[-1] * 2)
        return windows

    # scoring -------------------------------------------------------------------------------

    def score(self, window: pd.Series | pd.DataFrame) -> Scores:
        """Scores in [0, 1] for the points of ``window``, each judged by the kept points and
        the window's earlier points; hits for those at or above ``alarm_score``."""
        self._check_fitted()
        series = _as_series(window, self.name)
        n = len(series)
        values = np.concatenate([np.asarray(self.tail_, dtype="float64"), series.to_numpy(dtype="float64")])
        scores, expected = self._scores(values, first_row=self.seen_ - len(self.tail_))
        scores = pd.Series(scores[len(values) - n:], index=series.index, name=series.name)
        expected = expected[len(values) - n:]
        hits = [self._hit(series, i, float(scores.iloc[i]), float(expected[i]))
                for i in np.flatnonzero(scores.to_numpy() >= self.alarm_score)]
        return Scores(scores=scores, hits=hits)

    def _scores(self, values: np.ndarray, first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every point of ``values`` (kept points, then new ones; the first is the
        series' point number ``first_row``) and the previous value each was compared with."""
        present = np.isfinite(values)
        x = pd.Series(np.where(present, values, np.nan)).ffill()  # a gap repeats the last value
        errors = [self._level_error(x, w) for w in self.level_rows]
        errors += [self._season_error(x, p, least) for p, least in zip(self.period_rows_, self.season_min_count)]
        window = self._window_per_point(first_row + np.arange(len(values)))
        surprises = [self._surprise(e, window) for e in errors]
        if self.mean_rows:
            # the level errors share their recent mean: together they are one witness, not several
            recent = x.rolling(self.mean_rows, min_periods=1).mean()
            shifts = [(recent - x.shift(self.mean_rows).rolling(rows, min_periods=1).median()).abs()
                      for rows in self.baseline_rows]
            surprises.append(np.max(np.vstack([self._surprise(e, window) for e in shifts]), axis=0))
        surprises = np.sort(np.vstack(surprises), axis=0)
        raw = surprises[-self.combine_top:].mean(axis=0)
        raw = np.where(present, raw, 0.0)  # a missing point is not judged
        return self._quiet(raw / (1.0 + raw)), x.shift(1).to_numpy()

    @staticmethod
    def _level_error(x: pd.Series, rows: int) -> pd.Series:
        forecast = x.shift(1) if rows == 1 else x.shift(1).rolling(rows, min_periods=1).median()
        return (x - forecast).abs()

    def _season_error(self, x: pd.Series, period: int, least: int) -> pd.Series:
        """Error against the median of the same phase in past seasons, moved by the change of
        level since then; NaN (not judged) until ``least`` seasons are in the past."""
        level = x.shift(1).rolling(self.season_level_rows, min_periods=1).median()
        lags = range(1, self.season_count + 1)
        past = np.vstack([x.shift(period * k).to_numpy() for k in lags])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phases: not enough seasons yet
            then = np.nanmedian(past, axis=0)
            level_then = np.nanmedian(np.vstack([level.shift(period * k).to_numpy() for k in lags]), axis=0)
        error = np.abs(x.to_numpy() - (then + level.to_numpy() - level_then))
        return pd.Series(np.where(np.isfinite(past).sum(axis=0) >= least, error, np.nan))

    def _window_per_point(self, rows_seen: np.ndarray) -> np.ndarray:
        """The comparison window of each point: the longest of ``_windows()`` within
        ``memory_share`` of the points seen before it (the shortest at least)."""
        reach = np.maximum(self.window_rows, self.memory_share * rows_seen)
        window = np.full(len(rows_seen), self.window_rows)
        for rows in self._windows()[1:]:
            window = np.where(rows <= reach, rows, window)
        return window

    def _surprise(self, error: pd.Series, window: np.ndarray) -> np.ndarray:
        """Percentile rank of each error among its window (itself included), or
        ``1 + log(ratio)`` when it beats the largest of the previous ones."""
        out = np.zeros(len(error))
        for rows in np.unique(window):
            out = np.where(window == rows, self._surprise_in(error, int(rows)), out)
        return out

    @staticmethod
    def _surprise_in(error: pd.Series, rows: int) -> np.ndarray:
        largest = error.shift(1).rolling(rows, min_periods=MIN_PAST).max()
        rank = error.rolling(rows + 1, min_periods=MIN_PAST + 1).rank(pct=True).to_numpy()
        e, top = error.to_numpy(), largest.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(top > 0, e / top, np.where(e > 0, MAX_RATIO, 0.0))  # after a flat run any change is news
        ratio = np.where(np.isnan(top), 0.0, ratio)  # too short a past judges nothing
        beyond = 1.0 + np.log(np.clip(ratio, 1.0, MAX_RATIO))
        rank = np.where(e > 0, rank, 0.0)  # a perfect forecast is no news
        return np.nan_to_num(np.where(ratio > 1.0, beyond, rank), nan=0.0)

    def _quiet(self, unit: np.ndarray) -> np.ndarray:
        """Zero the ``quiet_rows`` points after any point that reached ``alarm_score``."""
        if not self.quiet_rows:
            return unit
        recent = pd.Series(unit).shift(1).rolling(self.quiet_rows, min_periods=1).max().fillna(0.0).to_numpy()
        return np.where(recent >= self.alarm_score, 0.0, unit)

    def _hit(self, series: pd.Series, i: int, score: float, previous: float) -> Hit:
        value = float(series.iloc[i])
        return Hit(
            series_id=self.series_id or str(series.name or ""), detector=self.name,
            ts=series.index[i].to_pydatetime(), value=value, score=score,
            direction=Direction.UP if value > previous else Direction.DOWN,
            expected=None if math.isnan(previous) else previous,
            explanation=(f"value {value:.6g} (previous {previous:.6g}) broke the pattern of the points "
                         f"before it (score {score:.2f})"),
        )


def _as_series(data: pd.Series | pd.DataFrame, name: str) -> pd.Series:
    if isinstance(data, pd.DataFrame):
        if data.shape[1] != 1:
            raise DetectorError(name, f"expected one series (one column), found {data.shape[1]} columns")
        data = data.iloc[:, 0]
    if not isinstance(data, pd.Series):
        raise DetectorError(name, f"expected a pandas Series, found {type(data).__name__}")
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DetectorError(name, f"expected a DatetimeIndex, found {type(data.index).__name__}")
    try:
        return data.astype("float64")
    except (TypeError, ValueError) as exc:
        raise DetectorError(name, f"expected numbers, found {data.dtype}") from exc


def _median_step_s(index: pd.DatetimeIndex) -> float | None:
    """Median time between consecutive points in seconds (repeats and steps backwards ignored)."""
    if len(index) < 2:
        return None
    steps = np.diff(index.as_unit("ns").asi8) / 1e9
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None
