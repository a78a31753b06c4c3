"""Stage 2: score each cycle's new points with the configured, fitted detectors.

The detectors themselves are pure (``detectors/``); this stage decides which detector watches
which series, fits them on a staggered schedule from incident-free history (the daemon's refit
job), keeps their fitted state in the store so a restart needs no refit, and hands the hits on
with their series' metric name and labels. ``Engine`` is the stage: one per Context.
"""

from agent.detection.engine import Engine
from agent.detection.history import HistoryReader

__all__ = ["Engine", "HistoryReader"]
