"""Pure anomaly detectors: no I/O, no store, no clock. See ``detectors.base`` for the contract."""

from detectors.base import Detector, Direction, Hit
from detectors.errors import DetectorError, NotFittedError

__all__ = ["Detector", "DetectorError", "Direction", "Hit", "NotFittedError"]
