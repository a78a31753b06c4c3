"""Up or down, per target: logged once per change of state, counted every time.

A target that stays down for a day must not write a warning every cycle, yet the operator needs
to see when it went down, why, and when it came back. The counters and the ``aiops_source_up``
gauge carry the every-cycle view.
"""

from __future__ import annotations

import logging
import threading

from agent.log import kv
from agent.metrics import Metrics
from agent.sources.base import FetchError

log = logging.getLogger(__name__)

UP = "up"


class TargetHealth:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._state: dict[tuple[str, str], str] = {}
        self._notes: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def state(self, source: str, target: str) -> str | None:
        """``"up"``, the failure kind, or None before the first attempt."""
        with self._lock:
            return self._state.get((source, target))

    def up(self, source: str, target: str) -> None:
        self._metrics.source_up.labels(source=source, target=target).set(1)
        previous = self._swap((source, target), UP)
        if previous is not None and previous != UP:
            log.info(kv("source.recovered", source=source, target=target, was=previous))

    def down(self, error: FetchError, *, expected: bool = False) -> None:
        """Record a failure; ``expected`` (an optional target) logs its absence at info, not warning."""
        self._metrics.source_up.labels(source=error.source, target=error.target).set(0)
        self._metrics.source_errors.labels(source=error.source, kind=str(error.kind)).inc()
        previous = self._swap((error.source, error.target), str(error.kind))
        if previous != str(error.kind):
            level = logging.INFO if expected else logging.WARNING
            log.log(level, kv("source.down", source=error.source, target=error.target, kind=str(error.kind),
                              error=error.problem))

    def note(self, source: str, target: str, message: str | None, event: str, **fields: object) -> None:
        """Log a warning (a truncation, a server warning) only when it differs from the last one."""
        key = (source, target, event)
        with self._lock:
            previous = self._notes.get(key)
            if message is None:
                self._notes.pop(key, None)
            else:
                self._notes[key] = message
        if message is not None and message != previous:
            log.warning(kv(event, source=source, target=target, message=message, **fields))

    def _swap(self, key: tuple[str, str], state: str) -> str | None:
        with self._lock:
            previous = self._state.get(key)
            self._state[key] = state
            return previous
