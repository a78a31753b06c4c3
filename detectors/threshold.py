"""Static bounds and SLO breaches: a point breaches when outside [lower, upper]; N of M fire.

Frame-level like the seasonal detector: a DataFrame (UTC DatetimeIndex, one column per
series_id) or a Series. A point breaches when it is above ``upper`` or below ``lower`` (NaN never
breaches); a hit fires at a point when at least ``for_points`` of the last ``of_points`` points
of its series (itself included) breached, e.g. "p95 latency above its 0.5 s objective for 3 of
the last 5 points". The score is that count over ``for_points`` (>= 1 means a hit). A hit's
``began_at`` is the first breaching point of the window that fired: where the outage began.

``fit(history)`` needs no data (``fit()`` is fine); given history, its last points seed the N of
M window so the first scored point is judged with its past. The window carries over between
calls; rows at or before the last scored timestamp are judged alone, without advancing it.

>>> import pandas as pd
>>> idx = pd.date_range("2026-01-01", periods=5, freq="1min", tz="UTC")
>>> slo = ThresholdDetector(upper=0.5, for_points=2, of_points=3).fit()
>>> out = slo.score(pd.Series([0.4, 0.7, 0.3, 0.8, 0.9], index=idx, name="p95"))
>>> out.scores["p95"].tolist()
[0.0, 0.5, 0.5, 1.0, 1.0]
>>> out.hits[0].explanation
'value 0.8 above the upper bound 0.5 in 2 of the last 3 points'
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors._frame import Frame, as_frame, to_datetime
from detectors._state import PlainState
from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError


class ThresholdDetector(PlainState, Detector):
    """Hits when at least ``for_points`` of the last ``of_points`` points breach a bound."""

    name: ClassVar[str] = "threshold"

    def __init__(
        self,
        lower: float | None = None,
        upper: float | None = None,
        for_points: int = 1,
        of_points: int = 1,
    ) -> None:
        self.lower = lower
        self.upper = upper
        self.for_points = for_points
        self.of_points = of_points

    def fit(self, history: Any = None) -> "ThresholdDetector":
        self._check_params()
        self.recent_: dict[str, list[int]] = {}
        self.recent_at_: dict[str, list[float]] = {}  # epoch seconds of the points in recent_
        self.last_ts_ = float("-inf")
        if history is not None:
            frame = as_frame(history, self.name)
            breach = self._breaches(frame.block())
            keep = self.of_points - 1
            self.recent_ = {c: breach[len(breach) - keep:, j].astype(int).tolist() if keep else []
                            for j, c in enumerate(frame.columns)}
            times = [float(t) for t in frame.times[len(frame.times) - keep:]] if keep else []
            self.recent_at_ = {c: times for c in frame.columns}
            if len(frame.times):
                self.last_ts_ = float(frame.times[-1])
        return self

    def score(self, window: Any) -> Scores:
        self._check_fitted()
        frame = as_frame(window, self.name, what="window")
        x = frame.block()
        breach = self._breaches(x)
        fresh = frame.times > self.last_ts_
        counts = breach.astype(np.float64)  # rows already scored count alone
        began = np.where(breach, np.asarray(frame.times, dtype=np.float64)[:, None], np.nan)
        if fresh.any():
            counts[fresh], began[fresh] = self._advance(frame, breach[fresh], frame.times[fresh])
            self.last_ts_ = float(frame.times[fresh][-1])
        scores = counts / self.for_points
        hits = [self._hit(frame, x, counts, began, r, c) for r, c in zip(*np.nonzero(scores >= 1.0))]

        def bound(value: float | None) -> pd.DataFrame:
            return pd.DataFrame(np.nan if value is None else float(value), index=frame.index,
                                columns=frame.data.columns)

        return Scores(scores=pd.DataFrame(scores, index=frame.index, columns=frame.data.columns), hits=hits,
                      lower=bound(self.lower), upper=bound(self.upper))

    def anomaly_scores(self, scores: Any) -> Any:
        """Breaches among the last ``of_points`` over ``for_points``: 1 where hits start."""
        return scores

    def _advance(self, frame: Frame, breach: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per new row: breaches in the last ``of_points`` and the time of the first of them
        (NaN when none); the carried window moved on."""
        keep = self.of_points - 1
        prior = np.zeros((keep, breach.shape[1]))
        prior_at = np.full((keep, breach.shape[1]), np.nan)
        recent_at = getattr(self, "recent_at_", {})  # absent in states saved before it existed
        for j, column in enumerate(frame.columns):
            past = self.recent_.get(column, [])[-keep:] if keep else []
            if past:
                prior[keep - len(past):, j] = past
                past_at = recent_at.get(column, [])[-len(past):]
                if len(past_at) == len(past):
                    prior_at[keep - len(past):, j] = past_at
        flags = np.vstack([prior, breach.astype(np.float64)])
        at = np.vstack([prior_at, np.repeat(np.asarray(times, dtype=np.float64)[:, None], breach.shape[1], axis=1)])
        total = np.vstack([np.zeros((1, flags.shape[1])), np.cumsum(flags, axis=0)])
        ends = np.arange(keep + 1, len(flags) + 1)
        counts = total[ends] - total[ends - self.of_points]
        began = np.full(counts.shape, np.nan)
        for r, c in zip(*np.nonzero(counts >= self.for_points)):  # hits only: few
            window = slice(ends[r] - self.of_points, ends[r])
            first = np.flatnonzero(flags[window, c])
            began[r, c] = at[window, c][first[0]]
        if keep:
            tail = flags[-keep:].astype(int)
            tail_at = at[-keep:]
            self.recent_at_ = dict(recent_at)
            for j, column in enumerate(frame.columns):
                self.recent_[column] = tail[:, j].tolist()
                self.recent_at_[column] = [float(t) for t in tail_at[:, j]]
        return counts, began

    def _breaches(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            above = x > self.upper if self.upper is not None else np.zeros(x.shape, dtype=bool)
            below = x < self.lower if self.lower is not None else np.zeros(x.shape, dtype=bool)
        return above | below

    def _hit(self, frame: Frame, x: np.ndarray, counts: np.ndarray, began: np.ndarray, r: int, c: int) -> Hit:
        value = float(x[r, c])
        if self.upper is not None and value > self.upper:
            direction, where = Direction.UP, f"above the upper bound {self.upper:.4g}"
        elif self.lower is not None and value < self.lower:
            direction, where = Direction.DOWN, f"below the lower bound {self.lower:.4g}"
        else:
            direction, where = Direction.BOTH, "back within bounds after breaching"
        return Hit(
            series_id=frame.columns[c],
            detector=self.name,
            ts=to_datetime(frame.times[r]),
            value=value,
            score=float(counts[r, c] / self.for_points),
            direction=direction,
            lower=self.lower,
            upper=self.upper,
            explanation=f"value {value:.4g} {where} in {int(counts[r, c])} of the last {self.of_points} points",
            began_at=None if np.isnan(began[r, c]) else to_datetime(began[r, c]),
        )

    def _check_params(self) -> None:
        if self.lower is None and self.upper is None:
            raise DetectorError(self.name, "expected a lower or an upper bound, found neither")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise DetectorError(self.name, f"expected lower <= upper, found lower={self.lower} upper={self.upper}")
        if not (isinstance(self.for_points, int) and isinstance(self.of_points, int) and 1 <= self.for_points <= self.of_points):
            raise DetectorError(
                self.name,
                f"expected 1 <= for_points <= of_points, found for_points={self.for_points!r} of_points={self.of_points!r}",
            )
