"""Multivariate isolation forest over one entity's metrics, calibrated to a false-positive rate.

One detector per entity (e.g. an ``instance`` or a ``model``): ``history`` is a DataFrame with a
UTC DatetimeIndex and one column per metric of that entity (features); with ``time_features``
the hour of day and day of week are added, so "busy at 3 am" can look unusual. The threshold is
not a fixed contamination: it is the training scores' ``1 - target_fpr`` quantile, so on data
like the training window about ``target_fpr`` of the points fire.

The forest does not see the raw metrics: they are robustly standardised and rotated onto their
whitened principal components first. Isolation trees split one axis at a time, so a point that
breaks a correlation (high requests, idle CPU) while each metric stays in its usual range is
hard to isolate in raw coordinates and easy along the minor component.

Isolation trees only cut inside the range of their training sample, so a new point far outside
everything seen scores no higher than the most extreme training point. The score therefore adds
an envelope term: beyond the training's farthest point along a component, the score moves
towards 1 (``s + (1 - s) * (1 - exp(-2 * excess))``, excess = relative distance past the
envelope). Training points have no excess, so the calibration to ``target_fpr`` is unchanged.

The forest is grown by scikit-learn and then kept as plain arrays (children, split feature and
value, path length at each leaf), so the fitted state is JSON-able and scoring needs no pickled
estimator. Scores are the usual ``2 ** (-mean path length / c(max_samples))`` in (0, 1], higher =
more anomalous. Missing feature values are filled with the training median.

Entity: ``fit(history, entity="db-1")`` stores it (``entity_``); ``score(window, entity=...)``
overrides it. Without either, the entity key is the feature names joined by commas. Hits carry it
as ``series_id`` and ``entity``; their ``value`` and ``score`` are the isolation score, ``upper``
the threshold, and the explanation names the features that contributed most (the score drop
when the feature is set to its training median) and how far each was from normal
(robust z against the training median and MAD).

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-01", periods=2000, freq="1min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> load = rng.uniform(10, 90, len(idx))
>>> history = pd.DataFrame({"requests": load, "cpu": load + rng.normal(0, 2, len(idx))}, index=idx)
>>> det = IsolationForestDetector(time_features=False, seed=1).fit(history, entity="web-1")
>>> odd = pd.DataFrame({"requests": [50.0, 85.0], "cpu": [51.0, 15.0]}, index=idx[-2:] + pd.Timedelta("2h"))
>>> [(h.entity, h.ts.hour) for h in det.score(odd).hits]
[('web-1', 11)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from detectors._frame import Frame, as_frame, to_datetime
from detectors._state import PlainState
from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError

MIN_ROWS = 50
TIME_FEATURES = ("hour_of_day", "day_of_week")
TOP_FEATURES = 3
MIN_DROP = 0.005  # score drop below which a feature is not named as a contributor
MIN_SHARE = 0.1  # ... unless it carries this share of the whitened distance from normal


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful BST search among ``n`` points (c(n) in the paper)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForestDetector(PlainState, Detector):
    """Isolation-forest anomaly score of each row of an entity's metrics (higher = more anomalous)."""

    name: ClassVar[str] = "iforest"

    def __init__(
        self,
        features: Sequence[str] | None = None,
        time_features: bool = True,
        target_fpr: float = 0.001,
        n_estimators: int = 100,
        seed: int | None = 0,
    ) -> None:
        self.features = features
        self.time_features = time_features
        self.target_fpr = target_fpr
        self.n_estimators = n_estimators
        self.seed = seed

    def fit(self, history: Any, entity: str | None = None) -> "IsolationForestDetector":
        if not 0 < self.target_fpr < 1:
            raise DetectorError(self.name, f"target_fpr: expected a share in (0, 1), found {self.target_fpr!r}")
        frame = as_frame(history, self.name)
        metrics = list(self.features) if self.features is not None else list(frame.columns)
        x = self._matrix(frame, metrics)
        usable = ~np.all(np.isnan(x[:, : len(metrics)]), axis=1)
        if usable.sum() < MIN_ROWS:
            raise DetectorError(self.name, f"history has {int(usable.sum())} rows with data; need at least {MIN_ROWS}")
        x = x[usable]
        self.metrics_ = metrics
        self.feature_names_ = metrics + (list(TIME_FEATURES) if self.time_features else [])
        self.median_, self.spread_ = _centre_and_spread(x)
        x = np.where(np.isnan(x), self.median_, x)
        self._store_rotation(x)
        rotated = self._rotate(x)
        self.envelope_ = np.maximum(np.abs(rotated).max(axis=0), 1e-9)
        forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(rotated)
        self._store_forest(forest)
        train = self._scores(x)
        self.threshold_ = float(np.quantile(train, 1.0 - self.target_fpr))
        self.entity_ = entity if entity is not None else ",".join(metrics)
        return self

    def score(self, window: Any, entity: str | None = None) -> Scores:
        self._check_fitted()
        frame = as_frame(window, self.name, what="window")
        x = self._matrix(frame, self.metrics_)
        empty = np.all(np.isnan(x[:, : len(self.metrics_)]), axis=1)
        filled = np.where(np.isnan(x), self.median_, x)
        scores = np.where(empty, np.nan, self._scores(filled))
        key = entity if entity is not None else self.entity_
        hits = [
            self._hit(key, frame, x[r], filled[r], float(scores[r]), r)
            for r in np.flatnonzero(np.nan_to_num(scores, nan=0.0) > self.threshold_)
        ]
        return Scores(scores=pd.Series(scores, index=frame.index, name=key), hits=hits)

    # -- the forest as arrays --------------------------------------------------------------

    def _store_forest(self, forest: IsolationForest) -> None:
        lefts, rights, feats, thresholds, leaf_depths, roots = [], [], [], [], [], []
        offset = 0
        for tree, used in zip(forest.estimators_, forest.estimators_features_):
            t = tree.tree_
            left, right = t.children_left.astype(np.int64), t.children_right.astype(np.int64)
            depth = np.zeros(t.node_count)
            for node in range(t.node_count):  # parents come before children in sklearn trees
                if left[node] >= 0:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            leaf = left < 0
            roots.append(offset)
            lefts.append(np.where(leaf, -1, left + offset))
            rights.append(np.where(leaf, -1, right + offset))
            feats.append(np.where(leaf, 0, np.asarray(used)[np.maximum(t.feature, 0)]))
            thresholds.append(t.threshold)
            # Path length credited at a leaf: its depth plus c(n) for the points left unsplit there.
            leaf_depths.append(np.where(leaf, depth + average_path_length(t.n_node_samples), 0.0))
            offset += t.node_count
        self.left_ = np.concatenate(lefts)
        self.right_ = np.concatenate(rights)
        self.split_feature_ = np.concatenate(feats)
        self.split_value_ = np.concatenate(thresholds)
        self.leaf_path_ = np.concatenate(leaf_depths)
        self.roots_ = np.asarray(roots, dtype=np.int64)
        self.c_max_samples_ = float(average_path_length(np.array([forest.max_samples_]))[0])

    def _store_rotation(self, x: np.ndarray) -> None:
        standard = (x - self.median_) / self.spread_
        self.pc_mean_ = standard.mean(axis=0)
        _, singular, vt = np.linalg.svd(standard - self.pc_mean_, full_matrices=False)
        sd = singular / np.sqrt(max(1, len(x) - 1))
        self.pc_axes_ = vt
        # Floor the component scale so a (near-)constant combination does not explode noise.
        self.pc_scale_ = np.maximum(sd, max(1e-3, 1e-3 * float(sd.max(initial=0.0))))

    def _rotate(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.median_) / self.spread_ - self.pc_mean_) @ self.pc_axes_.T / self.pc_scale_

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """Isolation score of raw feature rows (higher = more anomalous)."""
        # Trees split float32 copies of the data: compare the same way to land in the same leaves.
        rotated = self._rotate(x)
        x32 = rotated.astype(np.float32).astype(np.float64)
        nodes = np.broadcast_to(self.roots_, (len(x), len(self.roots_))).copy()
        rows = np.arange(len(x))[:, None]
        while True:
            inner = self.left_[nodes] >= 0
            if not inner.any():
                break
            go_left = x32[rows, self.split_feature_[nodes]] <= self.split_value_[nodes]
            step = np.where(go_left, self.left_[nodes], self.right_[nodes])
            nodes = np.where(inner, step, nodes)
        mean_path = self.leaf_path_[nodes].mean(axis=1)
        forest = 2.0 ** (-mean_path / self.c_max_samples_) if self.c_max_samples_ > 0 else np.ones(len(x))
        excess = np.maximum(np.abs(rotated) / self.envelope_ - 1.0, 0.0).max(axis=1)
        return forest + (1.0 - forest) * (1.0 - np.exp(-2.0 * excess))

    # -- input and explanations ------------------------------------------------------------

    def _matrix(self, frame: Frame, metrics: list[str]) -> np.ndarray:
        missing = [m for m in metrics if m not in frame.columns]
        if missing:
            raise DetectorError(self.name, f"missing feature columns {missing}; found {frame.columns}")
        values = frame.block()[:, [frame.columns.index(m) for m in metrics]]
        if not self.time_features:
            return values
        index = frame.index
        hours = index.hour + index.minute / 60.0
        return np.column_stack([values, np.asarray(hours, dtype=np.float64), np.asarray(index.day_of_week, dtype=np.float64)])

    def _hit(self, entity: str, frame: Frame, raw: np.ndarray, row: np.ndarray, score: float, r: int) -> Hit:
        trials = np.repeat(row[None, :], len(row), axis=0)
        trials[np.arange(len(row)), np.arange(len(row))] = self.median_
        # Contribution: how much the score, and the whitened distance, fall when a feature is set
        # to its median. The distance keeps ranking features when the score sits near 1.
        drop = score - self._scores(trials)
        distance = np.sum(self._rotate(row[None, :]) ** 2)
        share = (distance - np.sum(self._rotate(trials) ** 2, axis=1)) / max(distance, 1e-12)
        weight = drop + share
        named = (drop > MIN_DROP) | (share > MIN_SHARE)
        ranked = [f for f in np.argsort(-weight, kind="stable") if named[f]][:TOP_FEATURES]
        parts, far = [], False
        for f in ranked:
            z = (row[f] - self.median_[f]) / self.spread_[f]
            far = far or abs(z) >= 3
            note = " (missing, filled)" if np.isnan(raw[f]) else ""
            parts.append(f"{self.feature_names_[f]} {row[f]:.4g}{note} (z {z:+.1f} vs median {self.median_[f]:.4g})")
        text = f"isolation score {score:.3f} above {self.threshold_:.3f} (target FPR {self.target_fpr:g})"
        text += ": most unusual " + ", ".join(parts) if parts else ": no single feature stands out"
        if parts and not far:
            text += "; each is within its usual range, their combination is not"
        return Hit(
            series_id=entity,
            entity=entity,
            detector=self.name,
            ts=to_datetime(frame.times[r]),
            value=score,
            score=score,
            direction=Direction.UP,
            upper=self.threshold_,
            explanation=text,
        )


def _centre_and_spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD-scale per feature (std, then 1, where the MAD is 0); NaN-only -> 0, 1."""
    median = np.nan_to_num(np.nanmedian(x, axis=0), nan=0.0)
    mad = 1.4826 * np.nan_to_num(np.nanmedian(np.abs(x - median), axis=0), nan=0.0)
    std = np.nan_to_num(np.nanstd(x, axis=0), nan=0.0)
    spread = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
    return median, spread
