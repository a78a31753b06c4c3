"""Static bounds and SLO breaches: a point breaches when outside [lower, upper]; N of M fire."""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.base import Detector, Scores


class ThresholdDetector(Detector):
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
        raise NotImplementedError

    def score(self, window: Any) -> Scores:
        raise NotImplementedError
