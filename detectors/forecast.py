"""Streaming univariate detector: forecast errors at several time scales, each judged against
its own recent history, with repeats suppressed after a firing.

For every new point the detector makes a few naive forecasts from the points before it: the last
value or the median of the last ``level_rows`` points, the value one season ago (``season_days``, a day by default, at the series' own step), and the level before a short run of points
(``mean_rows``; catches level shifts that single points hide). Each forecast's absolute error is
ranked against the same error over the last ``window_rows`` points: the percentile rank, or, for
an error larger than every one of them, ``1 + log(error / previous largest)``. The point's raw
score ``r`` is the largest of these; it is mapped to ``r / (1 + r)`` in [0, 1] (higher = more
anomalous; above 0.5 means an error larger than any in the window). A point scores 0 when a point
within the previous ``quiet_rows`` scored at least as high: an alarm already raised is not raised
again for the same episode.

Every statistic uses a bounded number of past points, so ``fit`` keeps only that many (``tail_``)
and scoring a series in chunks gives exactly the scores of one pass. Example::

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
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError

DAY_S = 86_400.0
MAX_RATIO = 1e6  # errors beyond a million times the previous largest score the same


class ForecastDetector(Detector):
    """Causal, streaming scores in [0, 1] for one series (higher = more anomalous)."""

    name: ClassVar[str] = "forecast"

    def __init__(self, window_rows: int = 1000, level_rows: tuple[int, ...] = (1, 24), mean_rows: int = 12,
                 season_days: tuple[int, ...] = (1,), quiet_rows: int = 100, hit_threshold: float = 0.6,
                 series_id: str = "") -> None:
        self.window_rows = window_rows
        self.level_rows = level_rows
        self.mean_rows = mean_rows
        self.season_days = season_days
        self.quiet_rows = quiet_rows
        self.hit_threshold = hit_threshold
        self.series_id = series_id

    # fitting -------------------------------------------------------------------------------

    def fit(self, history: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Keep the last points of ``history`` that later scores depend on, and the season
        length (in points) found from its median step."""
        self._check_params()
        series = _as_series(history, self.name)
        self.step_s_ = _median_step_s(series.index)
        self.period_rows_ = self._periods(self.step_s_)
        keep = self._context_rows()
        tail = series.iloc[-keep:] if keep else series.iloc[:0]
        self.tail_ = [float(v) for v in tail.to_numpy()]
        return self

    def update(self, window: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Advance the kept history by ``window`` (what a refit on history + window would keep,
        without reading the history again)."""
        self._check_fitted()
        series = _as_series(window, self.name)
        keep = self._context_rows()
        self.tail_ = (self.tail_ + [float(v) for v in series.to_numpy()])[-keep:]
        return self

    def _check_params(self) -> None:
        problems = []
        if not (isinstance(self.window_rows, int) and self.window_rows >= 10):
            problems.append(f"window_rows: expected an int >= 10, found {self.window_rows!r}")
        if not self.level_rows or any(not isinstance(w, int) or w < 1 for w in self.level_rows):
            problems.append(f"level_rows: expected ints >= 1, found {self.level_rows!r}")
        if not (isinstance(self.mean_rows, int) and self.mean_rows >= 0):
            problems.append(f"mean_rows: expected an int >= 0, found {self.mean_rows!r}")
        if not (isinstance(self.quiet_rows, int) and self.quiet_rows >= 0):
            problems.append(f"quiet_rows: expected an int >= 0, found {self.quiet_rows!r}")
        if problems:
            raise DetectorError(self.name, "; ".join(problems))

    def _periods(self, step_s: float | None) -> list[int]:
        """Season lengths in points (``season_days`` days each), when a day is about a whole
        number of steps."""
        if not self.season_days or not step_s:
            return []
        day = DAY_S / step_s
        if day < 4 or abs(day - round(day)) > 0.05 * day:
            return []
        return [round(day) * days for days in self.season_days]

    def _context_rows(self) -> int:
        reach = max([*self.level_rows, 2 * self.mean_rows, *self.period_rows_, 1])
        return self.quiet_rows + self.window_rows + reach + 1

    # scoring -------------------------------------------------------------------------------

    def score(self, window: pd.Series | pd.DataFrame) -> Scores:
        """Scores in [0, 1] for the points of ``window``, each judged by the kept history and
        the window's earlier points; hits for those at or above ``hit_threshold``."""
        self._check_fitted()
        series = _as_series(window, self.name)
        n = len(series)
        values = np.concatenate([np.asarray(self.tail_, dtype="float64"), series.to_numpy(dtype="float64")])
        scores, expected = self._scores(values)
        scores = pd.Series(scores[len(values) - n:], index=series.index, name=series.name)
        expected = expected[len(values) - n:]
        hits = [
            self._hit(series, i, float(scores.iloc[i]), float(expected[i]))
            for i in np.flatnonzero(scores.to_numpy() >= self.hit_threshold)
        ]
        return Scores(scores=scores, hits=hits)

    def _scores(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every point of ``values`` (kept history then new points) and the level
        each was expected at."""
        x = pd.Series(np.where(np.isfinite(values), values, np.nan)).ffill()
        present = np.isfinite(values)
        level = x.shift(1).rolling(max(self.level_rows), min_periods=1).median()
        errors = [(x - x.shift(1)).abs() if w == 1 else (x - x.shift(1).rolling(w, min_periods=1).median()).abs()
                  for w in self.level_rows]
        errors += [(x - x.shift(p)).abs() for p in self.period_rows_]
        if self.mean_rows:
            before = x.shift(self.mean_rows).rolling(self.mean_rows, min_periods=1).median()
            errors.append((x.rolling(self.mean_rows, min_periods=1).mean() - before).abs())
        raw = np.max(np.vstack([self._surprise(e) for e in errors]), axis=0)
        raw = np.where(present, raw, 0.0)  # a missing point is not judged
        unit = raw / (1.0 + raw)
        return self._quiet(unit), level.to_numpy()

    def _surprise(self, error: pd.Series) -> np.ndarray:
        """Percentile rank of each error among the last ``window_rows`` (itself included), or
        ``1 + log(ratio)`` when it beats the largest of the previous ones."""
        largest = error.shift(1).rolling(self.window_rows, min_periods=10).max()
        rank = error.rolling(self.window_rows + 1, min_periods=11).rank(pct=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (error / largest).to_numpy()
        # after a run of equal points any change is news; too short a past judges nothing
        ratio = np.where(largest.to_numpy() > 0, ratio, np.where(error.to_numpy() > 0, MAX_RATIO, 0.0))
        ratio = np.where(largest.isna().to_numpy(), 0.0, ratio)
        beyond = 1.0 + np.log(np.clip(ratio, 1.0, MAX_RATIO))
        rank = np.where(error.to_numpy() > 0, rank.to_numpy(), 0.0)  # a perfect forecast is no news
        return np.nan_to_num(np.where(ratio > 1.0, beyond, rank), nan=0.0)

    def _quiet(self, unit: np.ndarray) -> np.ndarray:
        """Zero every score that a point in the previous ``quiet_rows`` already matched."""
        if not self.quiet_rows:
            return unit
        previous = pd.Series(unit).shift(1).rolling(self.quiet_rows, min_periods=1).max().fillna(-1.0).to_numpy()
        return np.where(unit > previous, unit, 0.0)

    def _hit(self, series: pd.Series, i: int, score: float, expected: float) -> Hit:
        value = float(series.iloc[i])
        direction = Direction.UP if value > expected else Direction.DOWN
        return Hit(
            series_id=self.series_id or str(series.name or ""), detector=self.name, ts=series.index[i].to_pydatetime(),
            value=value, score=score, direction=direction, expected=None if math.isnan(expected) else expected,
            explanation=(f"value {value:.6g} broke the pattern of the last {self.window_rows} points "
                         f"(expected about {expected:.6g}; score {score:.2f})"),
        )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["period_rows_"] = list(state["period_rows_"])
        return state


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
    """Median time between consecutive points in seconds (steps backwards and repeats ignored)."""
    if len(index) < 2:
        return None
    steps = np.diff(index.as_unit("ns").asi8) / 1e9
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None
