"""Pure anomaly detectors: no I/O, no store, no clock. See ``detectors.base`` for the contract."""

from detectors.base import Detector, Direction, Hit, Scores
from detectors.drift import DriftDetector, DriftReport, FeatureDrift, Verdict
from detectors.errors import DetectorError, NotFittedError
from detectors.iforest import IsolationForestDetector
from detectors.seasonal import SeasonalDetector
from detectors.threshold import ThresholdDetector

__all__ = [
    "Detector",
    "DetectorError",
    "Direction",
    "DriftDetector",
    "DriftReport",
    "FeatureDrift",
    "Hit",
    "IsolationForestDetector",
    "NotFittedError",
    "Scores",
    "SeasonalDetector",
    "ThresholdDetector",
    "Verdict",
]
