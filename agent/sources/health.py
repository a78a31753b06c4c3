"""Up or down, per target: logged once per change of state, counted every time, and remembered
(URL, last success, last error and its kind, series) for ``aiops status`` and ``/status``.

A target that stays down for a day must not write a warning every cycle, yet the operator needs
to see when it went down, why, where (the URL, without credentials), and when it came back. The
counters and the ``aiops_source_up`` gauge carry the every-cycle view.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent.clock import utcnow
from agent.flow.status import TargetState, TargetStatus
from agent.log import kv
from agent.metrics import Metrics
from agent.sources.base import FetchError
from agent.urls import without_credentials

log = logging.getLogger(__name__)

UP = "up"


class TargetHealth:
    def __init__(self, metrics: Metrics, clock: Callable[[], datetime] = utcnow) -> None:
        self._metrics = metrics
        self._clock = clock
        self._state: dict[tuple[str, str], str] = {}
        self._notes: dict[tuple[str, str, str], str] = {}
        self._targets: dict[tuple[str, str], TargetStatus] = {}
        self._lock = threading.Lock()

    def describe(self, source: str, targets: dict[str, str], *, optional: frozenset[str] = frozenset()) -> None:
        """The targets a (re)built source reads, name -> URL: what ``targets()`` reports, in this
        order, and the URL each log line names. Targets no longer configured are forgotten."""
        with self._lock:
            known = {k: v for k, v in self._targets.items() if k[0] == source}
            for key in known:
                del self._targets[key]
            for name, url in targets.items():
                old = known.get((source, name))
                url = without_credentials(url)
                self._targets[(source, name)] = (replace(old, url=url, optional=name in optional) if old else
                                                 TargetStatus(source=source, target=name, url=url,
                                                              optional=name in optional))

    def targets(self, source: str | None = None) -> list[TargetStatus]:
        """What the last attempts left of each described target (of ``source``, else of all)."""
        with self._lock:
            return [t for (s, _), t in self._targets.items() if source is None or s == source]

    def state(self, source: str, target: str) -> str | None:
        """``"up"``, the failure kind, or None before the first attempt."""
        with self._lock:
            return self._state.get((source, target))

    def up(self, source: str, target: str, *, series: int | None = None) -> None:
        self._metrics.source_up.labels(source=source, target=target).set(1)
        previous = self._swap((source, target), UP)
        self._remember(source, target, state=TargetState.UP, last_success_at=self._clock(), series=series)
        if previous is not None and previous != UP:
            log.info(kv("source.recovered", source=source, target=target, url=self._url(source, target), was=previous))

    def down(self, error: FetchError, *, expected: bool = False) -> None:
        """Record a failure; ``expected`` (an optional target) logs its absence at info, not warning."""
        self._metrics.source_up.labels(source=error.source, target=error.target).set(0)
        self._metrics.source_errors.labels(source=error.source, kind=str(error.kind)).inc()
        previous = self._swap((error.source, error.target), str(error.kind))
        self._remember(error.source, error.target, state=TargetState.DOWN, last_error_at=self._clock(),
                       last_error_kind=str(error.kind), last_error=error.problem)
        if previous != str(error.kind):
            level = logging.INFO if expected else logging.WARNING
            log.log(level, kv("source.down", source=error.source, target=error.target,
                              url=self._url(error.source, error.target), kind=str(error.kind), error=error.problem))

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

    def _url(self, source: str, target: str) -> str | None:
        with self._lock:
            known = self._targets.get((source, target))
        return known.url if known is not None and known.url else None

    def _remember(self, source: str, target: str, **changes: object) -> None:
        with self._lock:
            known = self._targets.get((source, target)) or TargetStatus(source=source, target=target, url="")
            if changes.get("series") is None:
                changes.pop("series", None)
            self._targets[(source, target)] = replace(known, **changes)  # type: ignore[arg-type]

    def _swap(self, key: tuple[str, str], state: str) -> str | None:
        with self._lock:
            previous = self._state.get(key)
            self._state[key] = state
            return previous
