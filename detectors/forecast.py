"""Streaming univariate detector: naive forecasts at a few time scales, each error judged against
the same error's recent history; repeats suppressed after an alarm.

For every new point the detector makes three kinds of forecast from the points before it:

- the previous value (or the median of the last ``level_rows`` points);
- the same phase of the last ``season_count`` seasons, for each season of ``season_days`` (a day
  and a week by default, at the series' own step) where a period test finds that season: their
  median, moved by how much the current level (median of the last ``season_level_rows`` points)
  differs from the level at those phases. A season is compared once ``season_min_count`` of
  them are in the past (1 day, 3 weeks by default: a single week-old value is too noisy a
  forecast). Where the first season is tested and not found, the median of the last
  ``no_season_rows`` points takes its place: a level, no season assumed (before two seasons
  are in the past, neither is used);
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

Frame-level: every column of a DataFrame is its own series (a Series is one column), judged
on its own observed points: a NaN or infinite value is a point not taken (a gap), and a
timestamp at or before the newest point already kept is not new (repeats and steps back are not
judged; they score 0).

The period test: every quarter of a season, once two seasons are in the past, the last
``season_test_count`` seasons (at most) are averaged into ``TEST_SLOTS`` phase slots each, and a
Friedman test (seasons as blocks, phases as treatments; ranks within each season, so a level that
moves from one season to the next does not count, with the Iman-Davenport F approximation) asks
whether some phases are consistently higher than others. At ``season_test_level`` (5 %) the
season is found, and used from the next point until a later test says otherwise.

Every statistic looks back a bounded number of points, so ``fit`` keeps only those per column
(``tail_``): fitting on any history and scoring the next points gives exactly the scores of one
pass over the whole series (``seen_`` counts the points before, for the growing memory).
``score`` leaves the detector as it was; ``update`` appends the points just judged, which is
what the daemon does after each cycle, so between refits a series is followed point by point.

With the scores, ``score`` gives each new point's expectation, the previous value, and a band
around it: the previous value ± the largest step between neighbouring points in the point's
comparison window (where at least ``MIN_PAST`` such steps are known and ``level_rows`` starts
with 1). A point outside the band made a step larger than any the window remembers.
Example::

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=600, freq="5min", tz="UTC")
    >>> values = pd.Series(np.sin(np.arange(600) / 10.0), index=idx, name="cpu")
    >>> values.iloc[500] = 8.0
    >>> detector = ForecastDetector().fit(values.iloc[:400])
    >>> result = detector.score(values.iloc[400:])
    >>> [(hit.series_id, hit.ts.isoformat()) for hit in result.hits]
    [('cpu', '2024-01-02T17:40:00+00:00')]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from detectors._state import PlainState
from detectors._tail import Tails, chances, chances_along, fit_tails, take_in
from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError

DAY_S = 86_400.0
MAX_RATIO = 1e6  # errors beyond a million times the previous largest all score the same
MIN_PAST = 100  # errors needed before one is judged: a few dozen points prove nothing
GROUP_COLUMNS = 256  # columns judged as one array: their errors stay a few tens of MB
ROLLING_FROM = 512  # points judged at once from which a median is rolled, not sorted
SEASON_SLOTS = 288  # bucket means per season at most: a week of 1-minute points keeps 288, not 10,080
TEST_SLOTS = 48  # phase slots per season in the period test (30 minutes of a day, 3.5 hours of a week)
RECORD = 1.0  # raw scores above this beat the largest error some forecast remembers: the tail begins here
FIT_POINTS = 1 << 19  # points fitted as one array (columns x points): a week of 1-minute points is 52 columns
BULK_FROM = 256  # new points of a series judged at once from which the rolling ranks of ``fit`` are used
RENEW = 1.0 + math.log(2.0)  # a surprise this high, an error twice the largest remembered, alarms inside an episode too


class ForecastDetector(PlainState, Detector):
    """Causal, streaming scores in [0, 1] per series (higher = more anomalous)."""

    name: ClassVar[str] = "forecast"

    def __init__(self, window_rows: int = 400, memory_share: float = 0.15, max_window_rows: int = 1600,
                 level_rows: tuple[int, ...] = (1,), mean_rows: int = 12,
                 baseline_rows: tuple[int, ...] = (12, 144, 288),
                 season_days: tuple[int, ...] = (1, 7), season_min_count: tuple[int, ...] = (1, 3),
                 season_count: int = 3, season_level_rows: int = 72,
                 season_test_count: int = 7, season_test_level: float = 0.05, no_season_rows: int = 144,
                 combine_top: int = 2,
                 quiet_rows: int = 100, alarm_score: float = 0.52) -> None:
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
        self.season_test_count = season_test_count
        self.season_test_level = season_test_level
        self.no_season_rows = no_season_rows
        self.combine_top = combine_top
        self.quiet_rows = quiet_rows
        self.alarm_score = alarm_score

    # fitting -------------------------------------------------------------------------------

    def fit(self, history: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Per column: the season lengths in points (from its median step), and what later
        scores depend on: the last points, each season's last bucket means, its period test
        (found or not, and the test's older phase means), the last errors of each forecast and
        which of the last points alarmed. Columns with the same seasons and as many points are
        fitted together as one array (``FIT_POINTS`` points at most)."""
        self._check_params()
        self.periods_: dict[str, list[int]] = {}
        self.tail_: dict[str, np.ndarray] = {}
        self.buckets_: dict[str, list[np.ndarray]] = {}
        self.found_: dict[str, np.ndarray] = {}
        self.older_: dict[str, list[np.ndarray]] = {}
        self.errors_: dict[str, np.ndarray] = {}
        self.episode_: dict[str, np.ndarray] = {}
        self.extreme_: dict[str, np.ndarray] = {}
        self.records_: dict[str, np.ndarray] = {}
        self.seen_: dict[str, int] = {}
        self.last_ts_: dict[str, float] = {}
        self._pending: dict[str, _Next] = {}
        points: dict[str, np.ndarray] = {}
        groups: dict[tuple, list[str]] = {}
        for name, times, values in _columns(history, self.name):
            times, points[name] = _new_points(times, values, after=-math.inf)
            self.periods_[name] = self._periods(_median_step_s(times))
            self.seen_[name] = len(times)
            self.last_ts_[name] = float(times[-1]) if len(times) else -math.inf
            groups.setdefault((tuple(self.periods_[name]), len(times)), []).append(name)
        for (_, length), names in groups.items():
            size = max(1, FIT_POINTS // max(length, 1))
            for start in range(0, len(names), size):
                part = names[start:start + size]
                self._fit_group(part, np.vstack([points[n] for n in part]))
        # the state keeps the columns' order, not the groups'
        for key in ("tail_", "buckets_", "found_", "older_", "errors_", "episode_", "extreme_", "records_"):
            setattr(self, key, {name: getattr(self, key)[name] for name in points})
        self.errors_ = _pooled(self.errors_)
        return self

    def _fit_group(self, names: list[str], values: np.ndarray) -> None:
        """The kept state of columns with the same seasons and as many points (``values``,
        columns x points), judged as one array."""
        periods = self.periods_[names[0]]
        errors, buckets, tests = self._errors(values, periods, seen=0, rings=None, tests=None, new=values.shape[1])
        raw, top = self._pass_raw(errors)
        tails = fit_tails(raw, threshold=RECORD)
        reach, width = self._reach_rows(periods), max(self._windows())
        for c, name in enumerate(names):
            self.tail_[name] = values[c, -reach:].copy()
            self.buckets_[name] = [ring[c] for ring in buckets]
            self.found_[name] = np.array([found[c] for found, _ in tests], dtype=bool)
            self.older_[name] = [older[c] for _, older in tests]
            self.errors_[name] = _last_columns(errors[c], width, np.nan)
            self.episode_[name] = self._episodes(raw[c], top[c])[1]
            self.extreme_[name], self.records_[name] = _tail_state(tails, c)

    def update(self, window: pd.Series | pd.DataFrame) -> "ForecastDetector":
        """Take the new points of ``window`` into the kept state: what a refit on history + window
        would keep, without reading the history again (a ``score`` of the same window just
        before is reused). Columns never fitted are ignored."""
        self._check_fitted()
        pending = getattr(self, "_pending", {})
        columns = [(name, times, values) for name, times, values in _columns(window, self.name) if name in self.tail_]
        taken = {}
        for name, times, values in columns:
            times, values = _new_points(times, values, after=self.last_ts_[name])
            if len(values):
                taken[name] = (times, values)
        stale = {name: tv for name, tv in taken.items()
                 if (step := pending.get(name)) is None or step.last_ts != tv[0][-1] or step.added != len(tv[1])}
        fresh = self._advance(stale)
        for name, (times, values) in taken.items():
            step = fresh[name] if name in stale else pending[name]
            self.tail_[name], self.buckets_[name] = step.tail, step.buckets
            self.found_[name], self.older_[name] = step.found, step.older
            self.errors_[name], self.episode_[name] = step.errors, step.episode
            self.extreme_[name], self.records_[name] = step.extreme, step.records
            self.seen_[name] += step.added
            self.last_ts_[name] = step.last_ts
        for name in self.errors_.keys() - taken.keys():
            if self.errors_[name].base is not None:  # a view would keep its group's whole block alive
                self.errors_[name] = self.errors_[name].copy()
        self._pending = {}
        return self

    def _check_params(self) -> None:
        problems = []
        if not (isinstance(self.memory_share, (int, float)) and 0 <= self.memory_share <= 1):
            problems.append(f"memory_share: expected a number in [0, 1], found {self.memory_share!r}")
        if not (isinstance(self.season_test_level, (int, float)) and 0 < self.season_test_level < 1):
            problems.append(f"season_test_level: expected a number in (0, 1), found {self.season_test_level!r}")
        if not (isinstance(self.alarm_score, (int, float)) and 0 < self.alarm_score <= 1):
            problems.append(f"alarm_score: expected a number in (0, 1], found {self.alarm_score!r}")
        for name, least in (("window_rows", MIN_PAST), ("max_window_rows", MIN_PAST), ("mean_rows", 0),
                            ("season_count", 1), ("season_level_rows", 1), ("season_test_count", 2),
                            ("no_season_rows", 1), ("combine_top", 1), ("quiet_rows", 0)):
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

    def set_state(self, state: Any) -> "ForecastDetector":
        """Fitted state from ``get_state``; state without a key this version keeps (an older
        format) is refused, so the caller fits again."""
        super().set_state(state)
        missing = [key for key in _STATE_KEYS if not isinstance(getattr(self, key, None), dict)]
        if missing:
            raise ValueError(f"{self.name}: state without {', '.join(missing)} (an older format): fit again")
        self.found_ = {name: np.asarray(found, dtype=bool) for name, found in self.found_.items()}
        self.episode_ = {name: np.asarray(e, dtype=np.float64) for name, e in self.episode_.items()}
        self.extreme_ = {name: np.asarray(e, dtype=np.float64) for name, e in self.extreme_.items()}
        self.records_ = {name: np.asarray(r, dtype=np.float32) for name, r in self.records_.items()}
        self.errors_ = _pooled(self.errors_)
        return self

    def _periods(self, step_s: float | None) -> list[int]:
        """Season lengths in points, when a day is about a whole number (at least 4) of steps."""
        if not step_s:
            return []
        day = DAY_S / step_s
        if day < 4 or abs(day - round(day)) > 0.05 * day:
            return []
        return [round(day) * days for days in self.season_days]

    def _ring_rows(self, period: int) -> int:
        """Bucket means a season keeps: ``season_count`` seasons and the level before the oldest."""
        width = bucket_width(period)
        return self.season_count * (period // width) + -(-self.season_level_rows // width)

    def _reach_rows(self, periods: list[int]) -> int:
        """Raw points a new point's forecasts look back on (itself included); seasons look
        further back through their bucket means, and the tail holds any unfinished bucket."""
        baselines = [self.mean_rows + b for b in self.baseline_rows] if self.mean_rows else []
        widths = [bucket_width(p) for p in periods]
        level = [self.season_level_rows, self.no_season_rows] if periods else []
        return max([*self.level_rows, *baselines, *level, *widths, 1]) + 1

    def _test_layout(self, period: int) -> "_Layout":
        """Where a season's period test reads: its bucket means grouped into phase slots (the
        most that divide the season's buckets, at most ``TEST_SLOTS``, a multiple of 4 so a
        quarter season is whole slots), and how many slot means are kept beyond the season's
        ring of bucket means (``older``) so the test can reach ``season_test_count`` seasons
        back. Slots 0: a season too short to test (never found). Worked out once per period."""
        layouts = self.__dict__.setdefault("_layouts", {})
        if period not in layouts:
            layouts[period] = self._new_layout(period)
        return layouts[period]

    def _new_layout(self, period: int) -> "_Layout":
        width = bucket_width(period)
        buckets = period // width
        slots = max((d for d in range(4, min(TEST_SLOTS, buckets) + 1, 4) if buckets % d == 0), default=0)
        if not slots:
            return _Layout(width=width, buckets=buckets, slots=0, per_slot=0, older=0)
        per_slot = buckets // slots
        reach = self.season_test_count * buckets - self._ring_rows(period) + per_slot - 2
        return _Layout(width=width, buckets=buckets, slots=slots, per_slot=per_slot,
                       older=max(0, -(-reach // per_slot)))

    def _group_key(self, seen: int, periods: list[int]) -> tuple:
        """Columns judged together must agree on everything the point's place decides: where
        it sits in each season's buckets and, for the period test, in the season's quarters
        and how many seasons the test can reach back (the same beyond that)."""
        key = []
        for period in periods:
            layout = self._test_layout(period)
            if not layout.slots:
                key.append((seen % layout.width, min(seen, 2 * period)))
                continue
            quarter = layout.width * layout.buckets // 4
            key.append((seen % quarter, min(seen // quarter, 4 * self.season_test_count + 8)))
        return tuple(key)

    def _windows(self) -> list[int]:
        windows = [self.window_rows]
        while windows[-1] * 2 <= self.max_window_rows:
            windows.append(windows[-1] * 2)
        return windows

    # scoring -------------------------------------------------------------------------------

    def unit_scores(self, scores: Any) -> Any:
        """Scores are in [0, 1] already."""
        return scores

    def anomaly_scores(self, scores: Any) -> Any:
        """``s / alarm_score``: 1 where hits start."""
        return scores / self.alarm_score

    def score(self, window: pd.Series | pd.DataFrame, *,
              alarm_chance: float | Mapping[str, float] | None = None) -> Scores:
        """Scores in [0, 1] for the rows of ``window``, each new point judged by the kept state
        and the window's earlier points (NaN while a series is warming up: fewer than
        ``MIN_PAST`` errors to judge by), and each new point's chance (``Scores.chances``).
        Hits: without ``alarm_chance``, the points at or above ``alarm_score`` (one per episode);
        with it (one chance for all columns, or one per column name), every point whose chance
        is at most that. A Series gives a Series; a DataFrame a DataFrame, NaN in columns never
        fitted."""
        self._check_fitted()
        columns = _columns(window, self.name)
        index = _utc_index(window.index)
        out = np.full((len(index), len(columns)), np.nan)
        expected, spread, chance = np.full_like(out, np.nan), np.full_like(out, np.nan), np.full_like(out, np.nan)
        rows_of: dict[str, tuple[int, np.ndarray]] = {}
        new: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for j, (name, times, values) in enumerate(columns):
            if name not in self.tail_:
                continue
            out[:, j] = 0.0
            rows = _new_rows(times, values, after=self.last_ts_[name])
            if len(rows):
                rows_of[name] = (j, rows)
                new[name] = (times[rows], values[rows])
        self._pending = self._advance(new)
        hits: list[Hit] = []
        for name, (j, rows) in rows_of.items():
            step = self._pending[name]
            out[rows, j], chance[rows, j] = step.scores, step.chances
            expected[rows, j], spread[rows, j] = step.previous, step.spread
            if alarm_chance is None:
                alarms = step.scores >= self.alarm_score
            else:
                level = alarm_chance if isinstance(alarm_chance, (int, float)) else alarm_chance.get(name, 0.0)
                alarms = step.chances <= level
            hits += [self._hit(name, index[row], float(window_value), float(step.scores[k]),
                               float(step.previous[k]), float(step.spread[k]), float(step.chances[k]))
                     for k, (row, window_value) in enumerate(zip(rows, new[name][1])) if alarms[k]]
        if isinstance(window, pd.Series):
            def table(values: np.ndarray) -> Any:
                return pd.Series(values[:, 0], index=window.index, name=window.name)
        else:
            def table(values: np.ndarray) -> Any:
                return pd.DataFrame(values, index=window.index, columns=window.columns)
        return Scores(scores=table(out), hits=hits, expected=table(expected), lower=table(expected - spread),
                      upper=table(expected + spread), chances=table(chance))

    def _pass_raw(self, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores of whole series' errors (columns x kinds x points, as ``_errors``), in
        bulk (NaN while too few errors are known to judge a point), and each point's largest
        surprise (columns x points). All columns are ranked in one rolling call."""
        columns, kinds, points = errors.shape
        raw, top = np.zeros((columns, points)), np.zeros((columns, points))
        if not points:
            return raw, top
        window = self._window_per_point(np.arange(points))
        surprise, ready, _ = _rolled_surprises(errors.reshape(-1, points), window, 0)
        surprise, ready = surprise.reshape(columns, kinds, points), ready.reshape(columns, kinds, points)
        for c in range(columns):
            raw[c], top[c] = self._raw(surprise[c], ready[c])
        return raw, top

    def _pass(self, values: np.ndarray, periods: list[int]) -> "_Pass":
        """One pass over a whole series (the first point is point 0), in bulk."""
        errors, _, _ = self._errors(values[None, :], periods, seen=0, rings=None, tests=None, new=len(values))
        raws, tops = self._pass_raw(errors)
        raw, top = raws[0], tops[0]
        scores, _ = self._episodes(raw, top)
        chance, _ = chances_along(raw, threshold=RECORD)
        return _Pass(errors=errors[0], raw=raw, units=_unit(raw), scores=scores, chances=chance)

    def _episodes(self, raw: np.ndarray, top: np.ndarray,
                  state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores of a series' points after the quiet rule, and the episode state they leave
        (points since the last one at ``alarm_score``, capped at ``quiet_rows``), from
        ``state`` before them (None: a series' first point). The ``quiet_rows`` points after
        any point at ``alarm_score`` score 0 (one episode, one alarm), unless a point's largest
        surprise reaches ``RENEW``: an error twice the largest one remembered (the alarm's own
        included) is news, not the same episode."""
        since0 = float(self.quiet_rows) if state is None else float(state[0])
        unit = _unit(raw)
        reach = np.nan_to_num(unit, nan=0.0) >= self.alarm_score
        n = len(raw)
        idx = np.arange(n)
        virtual = -1 - int(since0)  # where the last point at alarm_score was, before these
        last = np.maximum.accumulate(np.where(reach, idx, virtual))
        before = np.r_[virtual, last[:-1]] if n else last
        quiet = (idx - before <= self.quiet_rows) & ~(reach & (np.nan_to_num(top, nan=0.0) >= RENEW))
        scores = np.where(quiet, 0.0, unit)
        since = float(min(n - 1 - last[-1], self.quiet_rows)) if n else since0
        return scores, np.array([since])

    def _advance(self, new: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, "_Next"]:
        """The new points of each column (times, values) judged against the kept state, and
        the state that taking them in leaves. Columns alike (the same seasons, as many new
        points, the same place in their buckets) are judged together as one array."""
        groups: dict[tuple, list[str]] = {}
        for name, (times, values) in new.items():
            periods = self.periods_[name]
            key = (tuple(periods), len(values), self._group_key(self.seen_[name], periods), len(self.tail_[name]))
            groups.setdefault(key, []).append(name)
        out: dict[str, _Next] = {}
        for names in groups.values():
            for start in range(0, len(names), GROUP_COLUMNS):
                out.update(self._advance_group(names[start:start + GROUP_COLUMNS], new))
        return out

    def _advance_group(self, names: list[str], new: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, "_Next"]:
        periods = self.periods_[names[0]]
        added = len(new[names[0]][1])
        values = np.vstack([new[n][1] for n in names])
        tails = np.vstack([self.tail_[n] for n in names])
        xp = np.hstack([tails, values])
        seen = np.array([self.seen_[n] for n in names])
        rings = [np.vstack([self.buckets_[n][s] for n in names]) for s in range(len(periods))]
        tests = [(np.array([self.found_[n][s] for n in names], dtype=bool), np.vstack([self.older_[n][s] for n in names]))
                 for s in range(len(periods))]
        errors, buckets, tests = self._errors(xp, periods, seen=int(seen[0]), rings=rings, tests=tests, new=added)
        # columns x kinds x (window + new points), written in place: at 10,000 series each copy
        # of the kept errors moves hundreds of MB a cycle
        start = self.errors_[names[0]].shape[1]
        history = np.empty((len(names), errors.shape[1], start + added), dtype=np.float32)
        np.stack([self.errors_[n] for n in names], out=history[:, :, :start])
        history[:, :, start:] = errors
        episode = np.vstack([self.episode_[n] for n in names])
        since = episode[:, 0].copy()
        extremes = _tails_of([(self.extreme_[n], self.records_[n]) for n in names])
        scores = np.zeros((len(names), added))
        chance = np.full((len(names), added), np.nan)
        spread = np.full((len(names), added), np.nan)
        if added >= BULK_FROM:  # a long run of points: rolling ranks, the same numbers as one at a time
            self._judge_bulk(history, seen, start, episode, extremes, scores, chance, spread)
            since = episode[:, 0]
        else:
            since = self._judge_each(history, seen, start, since, extremes, scores, chance, spread)
        reach = self._reach_rows(periods)
        width = max(self._windows())
        previous = np.hstack([np.full((len(names), 1), np.nan), xp])[:, -added - 1:-1]
        out = {}
        for c, name in enumerate(names):
            out[name] = _Next(
                scores=scores[c], previous=previous[c], spread=spread[c], added=added,
                last_ts=float(new[name][0][-1]), tail=xp[c, -reach:].copy(),
                buckets=[ring[c] for ring in buckets], found=np.array([found[c] for found, _ in tests], dtype=bool),
                older=[older[c].copy() for _, older in tests], errors=history[c, :, -width:],
                episode=np.array([since[c]]), chances=chance[c],
                extreme=_tail_state(extremes, c)[0], records=_tail_state(extremes, c)[1])
        return out

    def _judge_each(self, history: np.ndarray, seen: np.ndarray, start: int, since: np.ndarray, extremes: Tails,
                    scores: np.ndarray, chance: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """The new points judged one at a time, all columns at once (filling ``scores``,
        ``chance`` and ``spread``, columns x new points, in place, and taking each point's raw
        score into ``extremes``): ``history`` (columns x kinds x kept + new errors), ``seen``
        points of each column before the new ones. Returns the episode state after them."""
        for i in range(scores.shape[1]):
            at = start + i
            rows = self._window_per_point(seen + i)  # per column
            widest = int(rows.max())
            past = history[:, :, at - widest:at]
            if (rows != widest).any():  # a column that remembers less sees NaN beyond its window
                older = np.arange(widest)[None, :] < (widest - rows)[:, None]
                past = np.where(older[:, None, :], np.nan, past)
            if self.level_rows[0] == 1:  # the first error is the step from the previous value
                steps = past[:, 0, :]
                known = np.count_nonzero(np.isfinite(steps), axis=1) >= MIN_PAST
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    spread[:, i] = np.where(known, np.nanmax(np.where(np.isfinite(steps), steps, -np.inf), axis=1), np.nan)
            surprise, ready = _surprise_one(past, history[:, :, at])
            raw, top = self._raw(surprise.T, ready.T)
            unit = _unit(raw)
            reach = np.nan_to_num(unit, nan=0.0) >= self.alarm_score
            quiet = (since < self.quiet_rows) & ~(reach & (top >= RENEW))
            scores[:, i] = np.where(quiet, 0.0, unit)
            since = np.where(reach, 0.0, np.minimum(since + 1.0, self.quiet_rows))
            chance[:, i] = chances(extremes, raw[:, None])[:, 0]
            take_in(extremes, raw[:, None])
        return since

    def _judge_bulk(self, history: np.ndarray, seen: np.ndarray, start: int, episode: np.ndarray, extremes: Tails,
                    scores: np.ndarray, chance: np.ndarray, spread: np.ndarray) -> None:
        """The new points judged in bulk (filling ``scores``, ``chance`` and ``spread``,
        columns x new points, and ``episode`` and ``extremes`` after them, in place):
        ``history`` (columns x kinds x kept + new errors), ``seen`` points of each column before
        the new ones. Columns with the same comparison windows are ranked together."""
        columns, kinds, points = history.shape
        windows: dict[bytes, list[int]] = {}
        for c in range(columns):
            rows = self._window_per_point(seen[c] + np.arange(points - start)).astype(np.int64)
            windows.setdefault(rows.tobytes(), []).append(c)
        for key, members in windows.items():
            window = np.zeros(points, dtype=np.int64)
            window[start:] = np.frombuffer(key, dtype=np.int64)
            surprise, ready, largest = _rolled_surprises(history[members].reshape(-1, points), window, start)
            surprise, ready = surprise.reshape(len(members), kinds, -1), ready.reshape(len(members), kinds, -1)
            if self.level_rows[0] == 1:  # the first error is the step from the previous value
                spread[members] = largest.reshape(len(members), kinds, -1)[:, 0]
            for k, c in enumerate(members):
                raw, top = self._raw(surprise[k], ready[k])
                scores[c], episode[c] = self._episodes(raw, top, episode[c])
                chance[c], tails = chances_along(raw, threshold=RECORD, tails=extremes.take([c]))
                _set_tail(extremes, c, tails)

    def _errors(self, xp: np.ndarray, periods: list[int], *, seen: int, rings: list[np.ndarray] | None,
                tests: list[tuple[np.ndarray, np.ndarray]] | None,
                new: int) -> tuple[np.ndarray, list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
        """Absolute error of each forecast (columns x rows x points; rows: level forecasts,
        seasons, then the recent mean against each baseline) for the last ``new`` points of each
        row of ``xp`` (points in order; the first new one is point ``seen`` of its series, or
        a point at the same place as ``_group_key`` sees it); NaN where not judged. ``rings``:
        per season, the bucket means kept before (None: nothing before ``xp``); ``tests``: per
        season, whether its period was found and the test's older slot means (None: not yet
        tested, nothing kept). Also returns both as they stand after the new points. Only the
        points each forecast needs are read, so judging one new point costs the same after a
        day as after a month. Errors are float32: what the state keeps."""
        count = xp.shape[0]
        reach = self._reach_rows(periods)
        xpp = np.hstack([np.full((count, reach), np.nan), xp])  # before the first point: nothing
        at = np.arange(xpp.shape[1] - new, xpp.shape[1])
        x = xpp[:, at]
        errors = []
        for rows in self.level_rows:
            forecast = xpp[:, at - 1] if rows == 1 else _window_stat(xpp, at - 1, rows, "median")
            errors.append(np.abs(x - forecast))
        kept, outcomes = [], []
        if periods:
            level = _window_stat(xpp, at - 1, self.season_level_rows, "median")
            no_season = _window_stat(xpp, at - 1, self.no_season_rows, "median")
        for s, (period, least) in enumerate(zip(periods, self.season_min_count)):
            width = bucket_width(period)
            size = self._ring_rows(period)
            ring = np.full((count, size), np.nan, dtype=np.float32) if rings is None else rings[s]
            means = np.hstack([ring, _bucket_means(xp, width, seen=seen, new=new)])
            kept.append(means[:, -size:])
            error = self._season_error(means, x, level, period, least, seen=seen, new=new)
            layout = self._test_layout(period)
            if tests is None:
                found, older = np.zeros(count, bool), np.full((count, layout.older), np.nan, dtype=np.float32)
            else:
                found, older = tests[s]
            used, found, older = self._period_test(layout, means, found, older, seen=seen, new=new)
            outcomes.append((found, older))
            if s == 0:  # tested and no daily season: a level witness of its own instead
                tested = (seen + np.arange(new) >= 2 * period)[None, :]
                error = np.where(used, error, np.where(tested, np.abs(x - no_season), np.nan))
            errors.append(np.where(used, error, np.nan) if s else error)
        if self.mean_rows:
            recent = _window_stat(xpp, at, self.mean_rows, "mean")
            errors += [np.abs(recent - _window_stat(xpp, at - self.mean_rows, rows, "median"))
                       for rows in self.baseline_rows]
        return np.stack(errors, axis=1).astype(np.float32), kept, outcomes

    def _season_error(self, means: np.ndarray, x: np.ndarray, level: np.ndarray, period: int, least: int, *,
                      seen: int, new: int) -> np.ndarray:
        """Absolute error of one season's forecast for the new points ``x`` (columns x points):
        the median of its past seasons' bucket ``means`` (the ring kept before, then those the new
        points finish), moved by how far the current ``level`` is from the level then; NaN where
        fewer than ``least`` seasons are in the past."""
        count, width, size = x.shape[0], bucket_width(period), self._ring_rows(period)
        level_b = -(-self.season_level_rows // width)
        padded = np.hstack([np.full((count, level_b + 1), np.nan, dtype=np.float32), means])
        point = np.arange(new)
        lags = (period // width) * np.arange(1, self.season_count + 1)[:, None]  # seasons x points
        then_at = (seen % width + point) // width + size - lags + level_b + 1
        past = padded[:, then_at].astype(np.float64)  # columns x seasons x points
        level_then = _window_stat(padded.astype(np.float64), (then_at - 1).ravel(), level_b, "median")
        level_then = level_then.reshape(count, *then_at.shape)
        then = _nanmedian_last(np.moveaxis(past, 1, 2))
        error = np.abs(x - (then + level - _nanmedian_last(np.moveaxis(level_then, 1, 2))))
        return np.where(np.isfinite(past).sum(axis=1) >= least, error, np.nan)

    def _period_test(self, layout: "_Layout", means: np.ndarray, found: np.ndarray, older: np.ndarray, *,
                     seen: int, new: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the season's period test at each quarter season the new points complete.

        ``means`` (columns x buckets) are the season's bucket means, the ring kept before and
        those the new points finish: the last bucket is bucket ``seen // width + done - 1`` of
        the series. ``older`` (columns x slots) are the slot means before the ring's first
        whole slot. Returns whether the season is used at each new point (columns x points),
        and ``found`` and ``older`` after them."""
        count = len(means)
        used = np.repeat(found[:, None], new, axis=1)
        if not layout.slots:
            return used, found, older
        width, per_slot = layout.width, layout.per_slot
        first = seen // width  # buckets whole before the new points
        done = (seen % width + new) // width
        ring = means.shape[1] - done  # bucket means kept between calls
        start = first - ring  # bucket number of means[:, 0]
        cut = -(-start // per_slot) * per_slot  # first whole slot inside means
        after = -(-(first + done - ring) // per_slot) * per_slot  # the same for the next call
        quarter = layout.buckets // 4
        ends = [end for end in range(-(-(first + 1) // quarter) * quarter, first + done + 1, quarter)
                if end // layout.buckets >= 2]
        if not ends and after == cut:  # most calls: no test, and the ring keeps its whole slots
            return used, found, older
        whole = (first + done - cut) // per_slot
        slot_means = means[:, cut - start:cut - start + whole * per_slot].astype(np.float64)
        slot_means = slot_means.reshape(count, whole, per_slot).mean(axis=2)
        line = np.hstack([older.astype(np.float64), slot_means])  # slots ending at bucket cut + whole * per_slot
        base = cut - layout.older * per_slot  # bucket number where ``line`` starts
        for end in ends:
            seasons = min(self.season_test_count, end // layout.buckets)
            stop = (end - base) // per_slot
            table = line[:, stop - seasons * layout.slots:stop].reshape(count, seasons, layout.slots)
            found = periodic_p_value(table) < self.season_test_level
            used[:, end * width - seen:] = found[:, None]
        # slots before the next call's first whole one move to ``older``
        stop = (after - base) // per_slot
        return used, found, line[:, stop - layout.older:stop].astype(np.float32)

    def _raw(self, surprises: np.ndarray, ready: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Surprises (rows as ``_errors``) to raw scores, the mean of the ``combine_top``
        largest, NaN where no forecast has enough past errors yet (``ready``); and the largest
        surprise. The shift rows share their recent mean: together they are one witness, not
        several (their largest counts). Above ``RECORD`` only when errors beat their whole memory."""
        if self.mean_rows:
            shifts = len(self.baseline_rows)
            surprises = np.vstack([surprises[:-shifts], surprises[-shifts:].max(axis=0)])
        ordered = np.sort(surprises, axis=0)
        raw = ordered[-self.combine_top:].mean(axis=0)
        return np.where(ready.any(axis=0), raw, np.nan), ordered[-1]

    def _window_per_point(self, rows_seen: np.ndarray) -> np.ndarray:
        """The comparison window of each point: the longest of ``_windows()`` within
        ``memory_share`` of the points seen before it (the shortest at least)."""
        reach = np.maximum(self.window_rows, self.memory_share * rows_seen)
        window = np.full(len(rows_seen), self.window_rows)
        for rows in self._windows()[1:]:
            window = np.where(rows <= reach, rows, window)
        return window

    def _hit(self, name: str, ts: pd.Timestamp, value: float, score: float, previous: float, spread: float,
             chance: float) -> Hit:
        band = not (math.isnan(previous) or math.isnan(spread))
        rarity = "" if math.isnan(chance) else f"; chance {chance:.2g}"
        return Hit(
            series_id=name, detector=self.name, ts=ts.to_pydatetime(), value=value, score=score,
            direction=Direction.UP if value > previous else Direction.DOWN,
            expected=None if math.isnan(previous) else previous,
            lower=previous - spread if band else None,
            upper=previous + spread if band else None,
            explanation=(f"value {value:.6g} (previous {previous:.6g}) broke the pattern of the points "
                         f"before it (score {score:.2f}{rarity})"),
            chance=None if math.isnan(chance) else chance,
        )


@dataclass(frozen=True, slots=True)
class _Pass:
    """A whole series judged in bulk: errors (rows as ``_errors``), raw scores, unit scores
    before and after the quiet rule, and chances."""

    errors: np.ndarray
    raw: np.ndarray
    units: np.ndarray
    scores: np.ndarray
    chances: np.ndarray


@dataclass(frozen=True, slots=True, kw_only=True)
class _Next:
    """New points of one column, judged (scores, the previous values, the largest step each
    point's window remembers: NaN where unknown), and the state that taking them in leaves."""

    scores: np.ndarray
    previous: np.ndarray
    spread: np.ndarray
    added: int
    last_ts: float
    tail: np.ndarray
    buckets: list[np.ndarray]
    found: np.ndarray
    older: list[np.ndarray]
    errors: np.ndarray
    episode: np.ndarray
    chances: np.ndarray
    extreme: np.ndarray
    records: np.ndarray


@dataclass(frozen=True, slots=True)
class _Layout:
    """A season's bucket means and its period test's phase slots (see ``_test_layout``)."""

    width: int  # points per bucket mean
    buckets: int  # bucket means per season
    slots: int  # phase slots per season in the test (0: not tested)
    per_slot: int  # bucket means per slot
    older: int  # slot means kept beyond the ring


_STATE_KEYS = ("periods_", "tail_", "buckets_", "found_", "older_", "errors_", "episode_", "extreme_", "records_",
               "seen_", "last_ts_")


def _unit(raw: np.ndarray) -> np.ndarray:
    """Raw scores mapped into [0, 1] by ``r / (1 + r)``: above 0.5 only beyond ``RECORD``."""
    return raw / (1.0 + raw)


def _tail_state(tails: Tails, column: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One column of ``tails`` as the detector keeps it: (seen, above, slot, shape, scale), and
    the ring of records (the threshold is always ``RECORD``)."""
    numbers = np.array([tails.seen[column], tails.above[column], tails.slot[column], tails.shape[column],
                        tails.scale[column]], dtype=np.float64)
    return numbers, tails.ring[column].copy()


def _set_tail(tails: Tails, column: int, one: Tails) -> None:
    for name in Tails.__slots__:
        getattr(tails, name)[column] = getattr(one, name)[0]


def _tails_of(kept: list[tuple[np.ndarray, np.ndarray]]) -> Tails:
    numbers = np.vstack([k[0] for k in kept])
    return Tails(threshold=np.full(len(kept), RECORD), seen=numbers[:, 0].copy(), above=numbers[:, 1].copy(),
                 ring=np.vstack([k[1] for k in kept]).astype(np.float32), slot=numbers[:, 2].astype(np.int64),
                 shape=numbers[:, 3].copy(), scale=numbers[:, 4].copy())


def bucket_width(period: int) -> int:
    """Points a season's past is averaged over: the fewest that divide the season into at most
    ``SEASON_SLOTS`` buckets (1 for a day of 5-minute points; 35 for a week of 1-minute points)."""
    for width in range(1, period + 1):
        if period % width == 0 and period // width <= SEASON_SLOTS:
            return width
    return period


def periodic_p_value(table: np.ndarray) -> np.ndarray:
    """Friedman test of a period, per column of ``table`` (columns x seasons x phase slots):
    ranks within each season (ties share their mean rank), then whether some phases rank
    consistently high. The statistic corrected for ties (Conover) is referred to the F
    distribution with Iman and Davenport's approximation, closer than chi-square for few
    seasons. p-value per column; 1 where a season holds a NaN or every season is flat."""
    _, seasons, slots = table.shape
    ranks = stats.rankdata(table, axis=2)
    centred = ranks.sum(axis=1) - seasons * (slots + 1) / 2.0
    spread = (ranks ** 2).sum(axis=(1, 2)) - seasons * slots * (slots + 1) ** 2 / 4.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (slots - 1) * (centred ** 2).sum(axis=1) / spread
        f = (seasons - 1) * q / (seasons * (slots - 1) - q)
    p = stats.f.sf(f, slots - 1, (seasons - 1) * (slots - 1))
    p = np.where(q >= seasons * (slots - 1) - 1e-9, 0.0, p)  # every season ranks the phases alike
    return np.where(np.isnan(table).any(axis=(1, 2)) | ~(spread > 1e-9), 1.0, np.nan_to_num(p, nan=1.0))


def _rolled_surprises(errors: np.ndarray, window: np.ndarray,
                      first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surprise of each error of ``errors`` (series x points) from point ``first`` on, against
    the ``window[point]`` errors before it (as ``_surprise_in``); whether that window held
    enough errors to judge it; and the largest of them (NaN: too few). Series x judged points.
    All series are rolled together, and each window only over the points it judges and the
    window before them: a rolled rank or maximum reads nothing else, so the numbers are those
    of a roll over the whole row."""
    judged = window[first:]
    surprise = np.zeros((len(errors), len(judged)))
    ready = np.zeros(surprise.shape, dtype=bool)
    largest = np.full(surprise.shape, np.nan)
    for rows in np.unique(judged):
        at = np.flatnonzero(judged == rows)
        low = max(0, first + int(at[0]) - int(rows))
        s, known, top = _surprise_in(errors[:, low:first + int(at[-1]) + 1], int(rows))
        taken = at + first - low
        surprise[:, at], ready[:, at], largest[:, at] = s[:, taken], known[:, taken], top[:, taken]
    return surprise, ready, largest


def _surprise_in(errors: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series of ``errors`` (series x points): the percentile rank of each error among the
    ``rows`` before it and itself, or ``1 + log(ratio)`` when it beats the largest of those
    before; whether they were enough to judge it; and that largest (NaN: too few)."""
    frame = pd.DataFrame(errors.T.astype(np.float64))  # one rolling call for every series
    top = frame.shift(1).rolling(rows, min_periods=MIN_PAST).max().to_numpy(dtype=np.float64).T
    rank = frame.rolling(rows + 1, min_periods=MIN_PAST + 1).rank(pct=True).to_numpy(dtype=np.float64).T
    e = errors.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(top > 0, e / top, np.where(e > 0, MAX_RATIO, 0.0))  # after a flat run any change is news
    ratio = np.where(np.isnan(top), 0.0, ratio)  # too short a past judges nothing
    beyond = 1.0 + np.log(np.clip(ratio, 1.0, MAX_RATIO))
    rank = np.where(e > 0, rank, 0.0)  # a perfect forecast is no news
    return np.nan_to_num(np.where(ratio > 1.0, beyond, rank), nan=0.0), np.isfinite(top), top


def _surprise_one(past: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_surprise_in`` for one point of each column: ``past`` (columns x kinds
    x window) the errors before it, ``error`` (columns x kinds) its own. Percentile rank among
    the window and itself (average rank for ties), or ``1 + log(ratio)`` beyond the largest
    previous error; and whether the window held enough errors to judge it."""
    count = past.shape[-1] - np.count_nonzero(np.isnan(past), axis=-1)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window: no past yet
        # fmax skips NaN (a missing error); comparisons with NaN are false, so they count none
        top = np.where(count >= MIN_PAST, np.fmax.reduce(past, axis=-1), np.nan).astype(np.float64)
        less = np.count_nonzero(past < error[..., None], axis=-1)
        equal = np.count_nonzero(past == error[..., None], axis=-1)
        rank = (less + (equal + 2) / 2.0) / (count + 1)
        rank = np.where(count + 1 >= MIN_PAST + 1, rank, np.nan)
        e = error.astype(np.float64)
        ratio = np.where(top > 0, e / top, np.where(e > 0, MAX_RATIO, 0.0))
    ratio = np.where(np.isnan(top), 0.0, ratio)
    beyond = 1.0 + np.log(np.clip(ratio, 1.0, MAX_RATIO))
    rank = np.where(e > 0, rank, 0.0)
    return np.nan_to_num(np.where(ratio > 1.0, beyond, rank), nan=0.0), count >= MIN_PAST


def _bucket_means(xp: np.ndarray, width: int, *, seen: int, new: int) -> np.ndarray:
    """The means (float32, columns x buckets) of the buckets of ``width`` points that the last
    ``new`` points of each row of ``xp`` finish, the first new one being point ``seen``."""
    count = xp.shape[0]
    first = (seen // width) * width - seen + xp.shape[1] - new  # start of the first unfinished bucket
    done = (seen % width + new) // width  # buckets the new points finish
    return xp[:, first:first + done * width].reshape(count, done, width).mean(axis=2).astype(np.float32)


def _window_stat(xp: np.ndarray, ends: np.ndarray, width: int, stat: str) -> np.ndarray:
    """Per row of ``xp`` (rows x points), the median or mean of the ``width`` values ending at
    each of ``ends``, NaN ignored (as pandas' rolling with ``min_periods=1``); NaN where all are
    missing. Rows x ends."""
    ends = np.asarray(ends)
    if stat == "median" and len(ends) > ROLLING_FROM:
        # many points in bulk: pandas' rolling median (a skip list, O(log width) a point) picks
        # the same one or two middle values as the sort below and averages them alike; rolled
        # only from the first window's start to the last end (a median reads its window alone)
        low, high = max(0, int(ends.min()) - width + 1), int(ends.max()) + 1
        rolled = pd.DataFrame(xp[:, low:high].T).rolling(width, min_periods=1).median().to_numpy().T
        return rolled[:, ends - low]
    windows = np.lib.stride_tricks.sliding_window_view(xp, width, axis=-1)[:, np.asarray(ends) - width + 1]
    flat = windows.reshape(-1, width)
    out = _nanmedian_rows(flat) if stat == "median" else _nanmean_rows(flat)
    return out.reshape(windows.shape[:-1])


def _nanmedian_last(values: np.ndarray) -> np.ndarray:
    """Median along the last axis, NaN ignored."""
    return _nanmedian_rows(values.reshape(-1, values.shape[-1])).reshape(values.shape[:-1])


def _nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """Median of each row, NaN ignored (NaN for a row without values); np.nanmedian's numbers
    without its per-call cost."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(values), axis=1)
    rows = np.arange(len(values))
    low, high = ordered[rows, np.maximum(count - 1, 0) // 2], ordered[rows, count // 2 - (count == 0)]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(present, values, 0.0).sum(axis=1) / count, np.nan)


def _pooled(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays as views of one block per shape. A cycle keeps each group's errors as views
    of one block (``_advance_group``); kept the same way after a fit or a load, a series' errors
    are freed with its group's block instead of leaving tens of KB of heap behind each, which
    at 10,000 series raised the peak by a quarter of a GB."""
    by_shape: dict[tuple, list[str]] = {}
    for name, array in arrays.items():
        by_shape.setdefault((array.shape, array.dtype.str), []).append(name)
    out: dict[str, np.ndarray] = {}
    for names in by_shape.values():
        block = np.stack([arrays[n] for n in names])
        out.update((name, block[i]) for i, name in enumerate(names))
    return out


def _last_columns(values: np.ndarray, width: int, fill: float) -> np.ndarray:
    """The last ``width`` columns of ``values`` (rows x columns), padded on the left with ``fill``."""
    rows, have = values.shape
    if have >= width:
        return values[:, have - width:].copy()
    return np.hstack([np.full((rows, width - have), fill, dtype=values.dtype), values])


def _columns(data: pd.Series | pd.DataFrame, name: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(column name, epoch seconds, float values with non-finite as NaN) per column, in row order."""
    if isinstance(data, pd.Series):
        data = data.to_frame(name="value" if data.name is None else str(data.name))
    if not isinstance(data, pd.DataFrame):
        raise DetectorError(name, f"expected a pandas DataFrame or Series, found {type(data).__name__}")
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DetectorError(name, f"expected a DatetimeIndex, found {type(data.index).__name__}")
    if data.columns.has_duplicates:
        raise DetectorError(name, f"duplicate column names {sorted(set(data.columns[data.columns.duplicated()]))}")
    times = _utc_index(data.index).as_unit("ns").asi8 / 1e9
    try:
        values = data.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DetectorError(name, f"expected numbers, found {sorted(set(map(str, data.dtypes)))}") from exc
    values = np.where(np.isfinite(values), values, np.nan)
    return [(str(c), times, values[:, j]) for j, c in enumerate(data.columns)]


def _utc_index(index: pd.Index) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(index)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _new_rows(times: np.ndarray, values: np.ndarray, *, after: float) -> np.ndarray:
    """Row numbers of the points taken: a finite value whose timestamp is later than ``after``
    and than every earlier point taken."""
    rows = np.flatnonzero(np.isfinite(values) & (times > after))
    if len(rows) < 2:
        return rows
    t = times[rows]
    newest_before = np.maximum.accumulate(np.r_[-np.inf, t[:-1]])
    return rows[t > newest_before]


def _new_points(times: np.ndarray, values: np.ndarray, *, after: float) -> tuple[np.ndarray, np.ndarray]:
    rows = _new_rows(times, values, after=after)
    return times[rows], values[rows]


def _median_step_s(times: np.ndarray) -> float | None:
    """Median time between consecutive points in seconds (repeats and steps backwards ignored)."""
    if len(times) < 2:
        return None
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else None
