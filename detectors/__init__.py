"""Pure anomaly detectors: no I/O, no store, no clock. See ``detectors.base`` for the contract.

This module is the one registry of detectors: every class is importable from here
(``from detectors import ForecastDetector``), and ``KINDS`` names the class of each kind a
config can give (``detector_class("forecast")``).

The detector classes are imported on first use, so ``import detectors.errors`` (which every
agent module does through ``agent.errors``) does not load scikit-learn and statsmodels.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError, NotFittedError

if TYPE_CHECKING:
    from detectors.drift import DriftDetector, DriftReport, FeatureDrift, Verdict
    from detectors.forecast import ForecastDetector
    from detectors.group import GroupDetector
    from detectors.iforest import IsolationForestDetector
    from detectors.seasonal import SeasonalDetector
    from detectors.subspace import SubspaceDetector
    from detectors.threshold import ThresholdDetector

# Name -> the module that defines it.
_LAZY: Mapping[str, str] = MappingProxyType({
    "DriftDetector": "detectors.drift",
    "DriftReport": "detectors.drift",
    "FeatureDrift": "detectors.drift",
    "ForecastDetector": "detectors.forecast",
    "GroupDetector": "detectors.group",
    "Verdict": "detectors.drift",
    "IsolationForestDetector": "detectors.iforest",
    "SeasonalDetector": "detectors.seasonal",
    "SubspaceDetector": "detectors.subspace",
    "ThresholdDetector": "detectors.threshold",
})

# Detector kind, as a config names it -> its class.
KINDS: Mapping[str, str] = MappingProxyType({
    "forecast": "ForecastDetector",
    "subspace": "SubspaceDetector",
    "group": "GroupDetector",
    "seasonal": "SeasonalDetector",
    "iforest": "IsolationForestDetector",
    "threshold": "ThresholdDetector",
    "drift": "DriftDetector",
})

__all__ = [
    "KINDS", "Detector", "DetectorError", "Direction", "DriftDetector", "DriftReport", "FeatureDrift",
    "ForecastDetector", "GroupDetector", "Hit", "IsolationForestDetector", "NotFittedError", "Scores", "SeasonalDetector",
    "SubspaceDetector", "ThresholdDetector", "Verdict", "detector_class",
]


def detector_class(kind: str) -> type | None:
    """The detector class of ``kind`` (a key of ``KINDS``), or None while its module cannot be
    imported (the config must still load then)."""
    name = KINDS[kind]
    try:
        module = importlib.import_module(_LAZY[name])
    except ImportError:
        return None
    found: type | None = getattr(module, name, None)
    return found


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
