"""Seasonal baseline detector: STL on aggregated points, scored against stored expectations.

Frame-level: one fitted model per column of a DataFrame (UTC DatetimeIndex, one float column per
series_id, NaN for gaps), so a cycle of 10,000 series is scored with a few array operations.
``fit`` learns, per series, a seasonal profile per period (daily/weekly detected by ACF, or the
configured ``periods``; none found -> a robust level and trend), the trend's level and slope and a
MAD scale of the residuals (see ``detectors._seasonal_fit``). ``score`` judges new points against
``level + slope * dt + profile(phase)``:

- spike / dip: robust z = (value - expected) / scale beyond ``threshold`` in ``direction``, and the
  deviation at least ``min_abs_dev`` and ``min_rel_dev`` x |expected| (so flat or tiny series
  do not page). The point score is ``threshold x deviation / band``, the band being the larger of
  ``threshold x scale`` and those minimum deviations: |z| where the noise rules, and below the
  threshold wherever a hit would not fire;
- level shift: a CUSUM of the (clipped) z; a hit when it passes ``cusum_threshold``, then it restarts;
- flatline: the same value repeated ``flatline_points`` times (at least twice the longest run seen
  in the history);
- stopped signal: ``flatline_points`` missing points in a series that had data >= 99% of the time.

Scoring is causal and streaming: each point is judged by the fitted state and the points before
it; the CUSUM, flatline and gap counters carry over between calls (they are part of the state).
Rows at or before the last scored timestamp are judged again as points only, without advancing
the counters, so re-scoring an overlap does not double-count. Columns never fitted score NaN.
``score`` returns a DataFrame of scores (rows = window rows, columns = window columns; higher =
more anomalous, ``threshold`` is where hits start) and the hits.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-01", periods=3 * 288, freq="5min", tz="UTC")
>>> day = np.sin(2 * np.pi * np.arange(len(idx)) / 288)
>>> noise = np.random.default_rng(1).normal(0, 0.05, len(idx))
>>> det = SeasonalDetector().fit(pd.Series(10 + day + noise, index=idx, name="cpu"))
>>> det.periods_["cpu"]
[86400.0]
>>> new = pd.Series([10.0, 18.0], index=idx[-1] + pd.to_timedelta([5, 10], "min"), name="cpu")
>>> [(h.series_id, h.direction.value) for h in det.score(new).hits]
[('cpu', 'up')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors import _seasonal_fit as fitting
from detectors._frame import Frame, as_frame, duration_s, resolution_s, to_datetime
from detectors._state import PlainState
from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError

BLOCK_COLUMNS = 512  # columns fitted together: bounds the working memory of a refit
CUSUM_SLACK = 1.0  # z units a residual may sit off before the CUSUM accumulates
STOPPED_COVERAGE = 0.99  # a gap counts as a stopped signal only where data always came


class SeasonalDetector(PlainState, Detector):
    """Robust z of new points against trend + seasonal expectation (higher = more anomalous)."""

    name: ClassVar[str] = "seasonal"

    def __init__(
        self,
        periods: Sequence[str | float] | None = None,
        direction: str = "both",
        threshold: float = 4.0,
        min_abs_dev: float = 0.0,
        min_rel_dev: float = 0.05,
        aggregate: str | float | None = None,
        robust_window: str | float = "6h",
        cusum_threshold: float = 12.0,
        flatline_points: int = 30,
        seed: int | None = None,
    ) -> None:
        self.periods = periods
        self.direction = direction
        self.threshold = threshold
        self.min_abs_dev = min_abs_dev
        self.min_rel_dev = min_rel_dev
        self.aggregate = aggregate
        self.robust_window = robust_window
        self.cusum_threshold = cusum_threshold
        self.flatline_points = flatline_points
        self.seed = seed  # accepted for a uniform interface; fitting is deterministic

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, history: Any) -> "SeasonalDetector":
        self._direction()
        frame = as_frame(history, self.name)
        if len(frame.times) == 0 or not frame.columns:
            raise DetectorError(self.name, "history is empty: expected at least one row and one column")
        configured = None
        if self.periods is not None:
            configured = [duration_s(p, self.name, "periods") for p in self.periods]
        width_s = fitting.bucket_size_s(
            resolution_s(frame.times), configured or [fitting.DAY_S], duration_s(self.aggregate, self.name, "aggregate")
        )
        window_s = duration_s(self.robust_window, self.name, "robust_window")
        # A bucket's mean sits at the mean time of its points: half a bucket less half a step.
        centre_s = max(0.0, (width_s - min(width_s, resolution_s(frame.times))) / 2)
        blocks = [
            fitting.fit_block(frame.times, frame.block(start, start + BLOCK_COLUMNS), width_s, centre_s, configured, window_s)
            for start in range(0, len(frame.columns), BLOCK_COLUMNS)
        ]
        coverage = np.concatenate([b.coverage for b in blocks])
        if not np.any(coverage > 0):
            raise DetectorError(self.name, "history has no finite values (all NaN or Inf)")
        self._store_fit(frame, blocks, width_s, window_s)
        self.centre_s_ = centre_s
        return self

    def _store_fit(self, frame: Frame, blocks: list[fitting.FittedBlock], width_s: float, window_s: float) -> None:
        n = len(frame.columns)
        slots = sorted({k for b in blocks for k in b.profiles})
        profiles = [np.zeros((n, k)) for k in slots]
        start = 0
        for b in blocks:
            stop = start + len(b.level)
            for k, prof in b.profiles.items():
                profiles[slots.index(k)][start:stop] = prof
            start = stop
        joined = lambda attr: np.concatenate([getattr(b, attr) for b in blocks])  # noqa: E731
        self.columns_ = list(frame.columns)
        self.periods_ = {c: p for c, p in zip(frame.columns, (p for b in blocks for p in b.periods))}
        self.width_s_ = width_s
        self.horizon_s_ = window_s
        self.t_end_ = float(frame.times[-1])
        self.level_ = joined("level")
        self.slope_ = joined("slope")
        self.scale_ = joined("scale")
        self.coverage_ = joined("coverage")
        self.max_flat_run_ = joined("max_flat_run")
        self.profile_slots_ = slots
        self.profiles_ = profiles
        # Streaming counters, carried from call to call.
        self.cusum_up_ = np.zeros(n)
        self.cusum_down_ = np.zeros(n)
        self.last_value_ = np.concatenate([b.tail[0] for b in blocks])
        self.flat_run_ = np.concatenate([b.tail[1] for b in blocks])
        self.missing_run_ = np.concatenate([b.tail[2] for b in blocks])
        self.last_ts_ = self.t_end_

    # -- scoring ---------------------------------------------------------------------------

    def expected(self, times: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Expected values (rows x cols) at epoch-second ``times`` for fitted column positions."""
        ahead = np.clip(times - self.t_end_, 0.0, self.horizon_s_)[:, None]
        out = self.level_[cols] + self.slope_[cols] * ahead
        for prof in self.profiles_:
            out = out + fitting.profile_at(prof[cols], times, self.width_s_, self.centre_s_)
        return out

    def unit_scores(self, scores: Any) -> Any:
        """``|s| / (|s| + threshold)``: 0.5 where hits start."""
        magnitude = abs(scores)
        return magnitude / (magnitude + self.threshold)

    def anomaly_scores(self, scores: Any) -> Any:
        """``|s| / threshold``: 1 where hits start."""
        return abs(scores) / self.threshold

    def score(self, window: Any) -> Scores:
        """Scores, hits, and the expectation with its band (``expected`` ± the larger of
        ``threshold`` x scale and the minimum deviations) for every row of ``window``."""
        self._check_fitted()
        direction = self._direction()
        frame = as_frame(window, self.name, what="window")
        positions = {c: i for i, c in enumerate(self.columns_)}
        pos = np.array([positions.get(c, -1) for c in frame.columns], dtype=np.int64)
        known = pos >= 0
        cols = np.where(known, pos, 0)
        x = frame.block()
        x[:, ~known] = np.nan
        e = self.expected(frame.times, cols)
        e[:, ~known] = np.nan
        scale = self.scale_[cols]
        dev = x - e
        with np.errstate(invalid="ignore"):
            z = dev / scale
            floor = np.maximum(self.min_abs_dev, self.min_rel_dev * np.abs(e))
            big_enough = np.abs(dev) >= floor
            band = np.maximum(self.threshold * scale, floor)
            # The point score is the deviation in units of the band, times the threshold: it
            # equals |z| where the scale rules, and stays below the threshold wherever the
            # minimum deviations would keep a hit from firing, so scores and hits agree.
            point = _directional(dev * self.threshold / band, direction)
        scores = np.where(np.isnan(point), np.nan, point)
        kinds = np.zeros(x.shape, dtype=np.int8)  # 0 none, 1 point, 2 shift, 3 flatline, 4 no data
        with np.errstate(invalid="ignore"):
            kinds[(point >= self.threshold) & big_enough] = 1
        extra = np.zeros(x.shape)
        for r in np.flatnonzero(frame.times > self.last_ts_):
            self._advance(r, x[r], z[r], big_enough[r], dev[r], cols, known, direction, scores, kinds, extra)
            self.last_ts_ = float(frame.times[r])
        scores[:, ~(known & (self.coverage_[cols] > 0))] = np.nan  # never fitted: no judgement
        hits = self._hits(frame, x, e, z, band, scores, kinds, extra, cols)

        def table(values: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(values, index=frame.index, columns=frame.data.columns)

        return Scores(scores=table(scores), hits=hits, expected=table(e), lower=table(e - band), upper=table(e + band))

    def _advance(self, r, x, z, big_enough, dev, cols, known, direction, scores, kinds, extra) -> None:
        """Move the CUSUM, flatline and gap counters one row on; mark what they detect."""
        thr = self.threshold
        finite = ~np.isnan(x) & known
        zc = np.clip(np.nan_to_num(z, nan=0.0), -thr, thr)
        up = np.where(finite, np.maximum(0.0, self.cusum_up_[cols] + zc - CUSUM_SLACK), self.cusum_up_[cols])
        down = np.where(finite, np.maximum(0.0, self.cusum_down_[cols] - zc - CUSUM_SLACK), self.cusum_down_[cols])
        watch_up = direction in (Direction.UP, Direction.BOTH)
        watch_down = direction in (Direction.DOWN, Direction.BOTH)
        shift = np.maximum(up if watch_up else 0.0, down if watch_down else 0.0) * thr / self.cusum_threshold
        shifted = finite & (shift >= thr) & big_enough
        up[shifted], down[shifted] = 0.0, 0.0  # restart after a hit: a persisting shift hits again later

        same = finite & (x == self.last_value_[cols])
        flat = np.where(finite, np.where(same, self.flat_run_[cols] + 1, 1), self.flat_run_[cols])
        flat_limit = np.maximum(self.flatline_points, 2 * self.max_flat_run_[cols])
        flat_hit = finite & (flat >= flat_limit) & (np.mod(flat, flat_limit) == 0)
        missing = np.where(known & ~finite, self.missing_run_[cols] + 1, 0)
        watched = self.coverage_[cols] >= STOPPED_COVERAGE
        gap_hit = known & watched & (missing >= self.flatline_points) & (np.mod(missing, self.flatline_points) == 0)

        extra[r] = np.where(shifted, up + down, np.where(flat_hit, flat, missing))
        row = scores[r]
        shift = np.where(big_enough, shift, np.minimum(shift, np.nan_to_num(row, nan=0.0)))
        row[:] = np.fmax(row, np.where(finite, shift, np.nan))
        row[:] = np.fmax(row, np.where(finite, thr * (flat - 1) / np.maximum(flat_limit - 1, 1), np.nan))
        row[:] = np.where(known & ~finite & watched, thr * missing / self.flatline_points, row)
        k = kinds[r]
        k[(k == 0) & shifted] = 2
        k[flat_hit] = 3  # a stuck value also drifts off the expectation: name the real cause
        k[gap_hit] = 4

        for name, new in (("cusum_up_", up), ("cusum_down_", down), ("flat_run_", flat), ("missing_run_", missing)):
            getattr(self, name)[cols[known]] = new[known]
        self.last_value_[cols[finite]] = x[finite]

    def _hits(self, frame, x, e, z, band, scores, kinds, extra, cols) -> list[Hit]:
        hits = []
        for r, c in zip(*np.nonzero(kinds)):
            kind, value, exp = int(kinds[r, c]), float(x[r, c]), float(e[r, c])
            if kind == 4:
                direction = Direction.DOWN
                text = (f"no data for {int(extra[r, c])} points in a row "
                        f"(history had data {self.coverage_[cols[c]]:.1%} of the time)")
            elif kind == 3:
                direction = Direction.BOTH
                text = (f"value stuck at {_num(value)} for {int(extra[r, c])} points "
                        f"(longest run in history {int(self.max_flat_run_[cols[c]])})")
            else:
                direction = Direction.UP if value > exp else Direction.DOWN
                text = f"value {_num(value)} vs expected {_num(exp)}{_ratio(value, exp)}, robust z {_z(z[r, c])}"
                if kind == 2:
                    text = f"sustained {'rise' if direction is Direction.UP else 'drop'}: {text} (level shift)"
            hits.append(
                Hit(
                    series_id=frame.columns[c],
                    detector=self.name,
                    ts=to_datetime(frame.times[r]),
                    value=value,
                    score=float(scores[r, c]),
                    direction=direction,
                    expected=exp,
                    lower=exp - float(band[r, c]),
                    upper=exp + float(band[r, c]),
                    explanation=text,
                )
            )
        return hits

    def _direction(self) -> Direction:
        try:
            return Direction(self.direction)
        except ValueError:
            raise DetectorError(self.name, f"direction: expected up, down or both, found {self.direction!r}") from None


def _directional(z: np.ndarray, direction: Direction) -> np.ndarray:
    if direction is Direction.UP:
        return np.where(np.isnan(z), np.nan, np.maximum(z, 0.0))
    if direction is Direction.DOWN:
        return np.where(np.isnan(z), np.nan, np.maximum(-z, 0.0))
    return np.abs(z)


def _z(z: float) -> str:
    # A series that never moved has a scale near 0: say "beyond" rather than print 1e10.
    return f"{z:+.1f}" if abs(z) < 1000 else f"beyond {'+' if z > 0 else '-'}1000"


def _num(value: float) -> str:
    return f"{value:.4g}"


def _ratio(value: float, expected: float) -> str:
    if expected == 0 or value / expected <= 0:
        return ""
    return f" ({value / expected:.1f}x)"
