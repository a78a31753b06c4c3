"""Model drift: live feature distributions against a stored training baseline (PSI, KS, chi-square)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from detectors.base import Detector, Scores


class DriftDetector(Detector):
    """Share of a model's features whose live distribution drifted from the baseline."""

    name: ClassVar[str] = "drift"

    def __init__(
        self,
        psi_moderate: float = 0.1,
        psi_significant: float = 0.25,
        ks_alpha: float = 0.01,
        chi2_alpha: float = 0.01,
        min_samples: int = 200,
        drift_share: float = 0.5,
        categorical: Sequence[str] = (),
    ) -> None:
        self.psi_moderate = psi_moderate
        self.psi_significant = psi_significant
        self.ks_alpha = ks_alpha
        self.chi2_alpha = chi2_alpha
        self.min_samples = min_samples
        self.drift_share = drift_share
        self.categorical = categorical

    def fit(self, history: Any, model: str | None = None) -> "DriftDetector":
        raise NotImplementedError

    def score(self, window: Any, model: str | None = None, ts: Any = None) -> Scores:
        raise NotImplementedError
