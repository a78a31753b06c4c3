"""How many incidents this agent may still open before the rest go into the storm incident.

``incidents.max_new_per_cycle`` bounds what one cycle opens: the cycle's correlation and every
Alertmanager webhook received until the next cycle share it, so an outage that fires 100,000
alerts pages 50 times and once for the storm, not 100,000 times. The budget is whole again at each
cycle's start, or ``window_s`` (the cycle interval) of the monotonic clock after it was last
whole, for an agent that receives webhooks without cycling (a standby). One webhook body takes
at most what was left when it arrived (``for_one_body``), however many cycles start while its
100,000 alerts are placed: it opens at most ``max_new_per_cycle`` incidents and one storm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class NewIncidentBudget:
    def __init__(self, *, limit: int, window_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._spent = 0
        self._since = monotonic()

    def new_cycle(self, *, limit: int | None = None, window_s: float | None = None) -> None:
        """Whole again (with the config's limit and window, which a reload may have changed)."""
        with self._lock:
            self.limit = self.limit if limit is None else limit
            self.window_s = self.window_s if window_s is None else window_s
            self._spent, self._since = 0, self.monotonic()

    def left(self) -> int:
        with self._lock:
            if self.monotonic() - self._since >= self.window_s:
                self._spent, self._since = 0, self.monotonic()
            return max(0, self.limit - self._spent)

    def spend(self, opened: int) -> None:
        with self._lock:
            self._spent += opened

    def for_one_body(self) -> "BodyBudget":
        return BodyBudget(self, self.left())


class BodyBudget:
    """What one webhook body may open: what the agent's budget has left, and no more than
    ``allowed`` in all, however often the agent's budget is whole again meanwhile."""

    def __init__(self, shared: NewIncidentBudget, allowed: int) -> None:
        self.shared, self.allowed = shared, allowed
        self.spent = 0

    @property
    def limit(self) -> int:
        return self.shared.limit

    def left(self) -> int:
        return max(0, min(self.shared.left(), self.allowed - self.spent))

    def spend(self, opened: int) -> None:
        self.spent += opened
        self.shared.spend(opened)
