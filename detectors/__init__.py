"""Pure anomaly detectors: no I/O, no store, no clock. See ``detectors.base`` for the contract.

The detector classes are imported on first use, so ``import detectors.errors`` (which every
agent module does through ``agent.errors``) does not load scikit-learn and statsmodels.
"""

from __future__ import annotations

import importlib
from typing import Any

from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError, NotFittedError

_LAZY = {
    "DriftDetector": "detectors.drift",
    "DriftReport": "detectors.drift",
    "FeatureDrift": "detectors.drift",
    "ForecastDetector": "detectors.forecast",
    "Verdict": "detectors.drift",
    "IsolationForestDetector": "detectors.iforest",
    "SeasonalDetector": "detectors.seasonal",
    "SubspaceDetector": "detectors.subspace",
    "ThresholdDetector": "detectors.threshold",
}

__all__ = ["Detector", "DetectorError", "Direction", "Hit", "NotFittedError", "Scores", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
