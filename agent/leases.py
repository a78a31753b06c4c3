"""The leases this agent process holds, kept by a thread of its own.

A daemon holds its shard's lease to work (collect, detect, correlate, refit) and, while it works,
asks for the ``leader`` lease, under which the stages that act once for the whole store run
(remediate, rollouts, notify, retention). A lease lives ``ttl_s`` (the cycle interval) and is renewed
every quarter of it, so an agent that dies is replaced within about 1.25 intervals; a clean stop
releases both at once. A lease is trusted locally only until a little before it would expire
in the store, counted from when its renewal was asked, so a process whose renewals stall stops
acting before anyone else may start. Starting a real playbook run also checks the leader lease
inside the store transaction that marks it running (``fence``): an agent that lost the lease
cannot start one.

Without a daemon (``aiops once``, the backtest, a test building a pipeline) ``SoleAgent`` stands in:
the process is the only agent and holds everything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.flow.leases import LEADER, holder_id, shard_lease
from agent.log import kv

if TYPE_CHECKING:
    from agent.store import Store

log = logging.getLogger(__name__)

# A lease is trusted locally for this share of its time to live after its renewal was asked.
TRUSTED_SHARE = 0.8


class SoleAgent:
    """The only agent on its store: it works and leads, nothing to fence."""

    holder: str | None = None

    def working(self) -> bool:
        return True

    def leading(self) -> bool:
        return True

    def fence(self) -> tuple[str, str] | None:
        return None

    def held(self) -> dict[str, str]:
        return {}


class LeaseKeeper:
    """Takes, renews and releases this process' shard lease and the leader lease. ``metrics``:
    the agent's ``Metrics`` (its ``lease_held`` gauge and ``lease_failures`` counter)."""

    def __init__(self, store: "Store", *, shard: str, ttl_s: float, clock: Callable[[], datetime],
                 metrics: Any, holder: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_taken: Callable[[str], None] | None = None) -> None:
        self.store, self.clock, self.metrics, self.monotonic = store, clock, metrics, monotonic
        self.on_taken = on_taken  # called with a lease's name when this agent takes it (not on renewals)
        self.shard = shard_lease(shard)
        self.ttl_s = ttl_s
        self.holder = holder or holder_id()
        self._until: dict[str, float] = {}  # lease name -> monotonic time it stops being trusted
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the stages ask --------------------------------------------------------------

    def working(self) -> bool:
        return self._trusted(self.shard)

    def leading(self) -> bool:
        return self._trusted(LEADER) and self.working()

    def fence(self) -> tuple[str, str] | None:
        return (LEADER, self.holder)

    def held(self) -> dict[str, str]:
        """Every live lease of the store and its holder (for /healthz)."""
        now = self.clock()
        return {lease.name: lease.holder for lease in self.store.leases() if lease.live(now)}

    def _trusted(self, name: str) -> bool:
        with self._lock:
            return self._until.get(name, 0.0) > self.monotonic()

    # -- keeping them -----------------------------------------------------------------------

    def renew(self) -> None:
        """One round: the shard lease, then the leader lease while the shard's is held."""
        self._ask(self.shard)
        if self.working():
            self._ask(LEADER)
        elif self._trusted(LEADER) or self._held_in_store(LEADER):
            self._give_up(LEADER)

    def _ask(self, name: str) -> None:
        asked = self.monotonic()
        had = self._trusted(name)
        try:
            got = self.store.take_lease(name, self.holder, ttl_s=self.ttl_s, now=self.clock())
        except Exception as exc:  # a busy or unreachable store: keep trusting until the deadline
            log.warning(kv("lease.renew_failed", lease=name, error=str(exc)))
            self.metrics.lease_failures.inc()
            return
        with self._lock:
            if got:
                self._until[name] = asked + self.ttl_s * TRUSTED_SHARE
            else:
                self._until.pop(name, None)
        self.metrics.lease_held.labels(lease=name).set(1 if got else 0)
        if got and not had:
            log.info(kv("lease.taken", lease=name, holder=self.holder))
            if self.on_taken is not None:
                self.on_taken(name)
        elif had and not got:
            log.warning(kv("lease.lost", lease=name, holder=self.holder))

    def _held_in_store(self, name: str) -> bool:
        try:
            return self.store.holds_lease(name, self.holder, now=self.clock())
        except Exception:
            return False

    def _give_up(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)
        self.metrics.lease_held.labels(lease=name).set(0)
        try:
            self.store.release_lease(name, self.holder, now=self.clock())
        except Exception as exc:  # it expires on its own
            log.warning(kv("lease.release_failed", lease=name, error=str(exc)))

    def start(self) -> None:
        """Ask once now (a lone agent starts its first cycle holding both), then renew in a thread."""
        self.renew()
        self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(max(self.ttl_s / 4, 0.1)):
            self.renew()

    def stop(self) -> None:
        """Stop renewing and release what is held, so a waiting agent takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for name in (LEADER, self.shard):
            if self._trusted(name) or self._held_in_store(name):
                self._give_up(name)
