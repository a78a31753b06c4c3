"""Stage 2: score each cycle's new points with the configured, fitted detectors.

The detectors themselves are pure (``detectors/``); this stage decides which detector watches
which series, fits them on a staggered schedule from incident-free history, keeps their fitted
state in the store so a restart needs no refit, and hands the hits on with their series' metric
name and labels.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from agent.detection.engine import Engine
from detectors.base import Hit

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle

__all__ = ["Engine", "detect", "engine_for"]

_engines: dict[int, Engine] = {}
_lock = threading.Lock()


def engine_for(ctx: "Context") -> Engine:
    """The Engine of ``ctx`` (one per Context, created on first use, gone with the Context)."""
    key = id(ctx)
    with _lock:
        engine = _engines.get(key)
        if engine is None or engine._ctx() is not ctx:
            engine = _engines[key] = Engine(ctx)
            weakref.finalize(ctx, _engines.pop, key, None)
        return engine


def detect(ctx: "Context", cycle: "Cycle") -> list[Hit]:
    """Hits among this cycle's new points."""
    engine = engine_for(ctx)
    hits = engine.detect(cycle.samples, now=cycle.started_at)
    cycle.judged.update(engine.judged)
    return hits
