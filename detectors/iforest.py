"""Multivariate isolation forest over one entity's metrics, calibrated to a false-positive rate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from detectors.base import Detector, Scores


class IsolationForestDetector(Detector):
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
        raise NotImplementedError

    def score(self, window: Any, entity: str | None = None) -> Scores:
        raise NotImplementedError
