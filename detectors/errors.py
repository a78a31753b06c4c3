"""Errors raised by detectors.

``detectors`` imports nothing from ``agent``, so these live here; ``agent.errors``
re-exports them so the rest of the code sees one tree::

    DetectorError            a detector was given data or state it cannot use
     └── NotFittedError      score() or state was asked of an unfitted detector
"""

from __future__ import annotations


class DetectorError(ValueError):
    """A detector cannot use the data or state it was given."""

    def __init__(self, detector: str, problem: str) -> None:
        self.detector = detector
        self.problem = problem
        super().__init__(f"{detector}: {problem}")


class NotFittedError(DetectorError):
    """The detector has no fitted state yet."""

    def __init__(self, detector: str) -> None:
        super().__init__(detector, "not fitted: call fit(history) first")
