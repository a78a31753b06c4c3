"""Seasonal baseline detector: STL on aggregated points, scored against stored expectations.

Frame-level: one fitted model per column of a DataFrame (UTC DatetimeIndex, one float column per
series_id, NaN for gaps), so a cycle of 10,000 series is scored with a few array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from detectors.base import Detector, Scores


class SeasonalDetector(Detector):
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
        self.seed = seed

    def fit(self, history: Any) -> "SeasonalDetector":
        raise NotImplementedError

    def score(self, window: Any) -> Scores:
        raise NotImplementedError
