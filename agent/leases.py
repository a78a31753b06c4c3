"""The leases this agent process holds, kept by a thread of its own.

A daemon holds its shard's lease to work (collect, detect, correlate, refit) and, while it works,
asks for the ``leader`` lease, under which the stages that act once for the whole store run
(remediate, rollouts, notify, retention). A lease lives ``ttl_s`` (the cycle interval) of the
store's clock and is renewed every quarter of it, so an agent that dies is replaced within about
1.25 intervals; a clean stop releases both at once.

Two clocks, each for what it can answer. Whether a lease expired is the store's word (its clock,
in the transaction that takes or renews it), so an agent whose wall clock is hours off neither
steals a healthy holder's lease nor leaves its own rows expiring in the future. How long this
process trusts what it holds is counted on its monotonic clock from when it asked: a share of the
time to live, so a process whose renewals stall stops acting before anyone else may start.

A renewal round that does not answer within a quarter interval (at least 2 s: a hung server, not
a turn waited behind the agent's own writes) is left to finish on its own and counted
(``aiops_lease_rounds_blocked_total``); the next round starts only once it has, and meanwhile the
agent tells webhooks that the store does not answer. A renewal that fails (a busy or unreachable store) costs the lease nothing while no other
agent has asked for it: an agent alone on its lease needs no renewal to stay active. Once another
agent has been refused it (the store notes who waited), the holder keeps acting only as long as
it trusts its last renewal. Starting a real playbook run also checks the leader lease inside the
store transaction that marks it running (``fence``): an agent that lost the lease cannot start one.

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

from agent.flow.leases import LEADER, Lease, holder_id, shard_lease
from agent.log import kv
from agent.store.base import first_line

if TYPE_CHECKING:
    from agent.store import Store

log = logging.getLogger(__name__)

# A lease is trusted locally for this share of its time to live after its renewal was asked.
TRUSTED_SHARE = 0.8
# Another agent refused a lease within this many times to live: the holder is not alone on it.
CONTESTED_TTLS = 3.0
# A renewal round unanswered this long (or a renewal period, if longer) counts as blocked.
MIN_ROUND_BOUND_S = 2.0


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

    def store_answering(self) -> bool:
        return True


class LeaseKeeper:
    """Takes, renews and releases this process' shard lease and the leader lease. ``metrics``:
    the agent's ``Metrics`` (its ``lease_held`` gauge, ``lease_failures`` and
    ``lease_rounds_blocked`` counters)."""

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
        self._contested: set[str] = set()  # leases another agent asked for lately
        self._mine: set[str] = set()  # leases the store last said this agent holds
        self._seen: dict[str, str] = {}  # live leases and holders, as the last round read them
        self._lock = threading.Lock()
        self._rounds = threading.Lock()  # one round (or the release) at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # keeps time
        self._worker: threading.Thread | None = None  # does the store's work, one connection
        self._job: Callable[[], None] = self.renew
        self._asked, self._answered = threading.Event(), threading.Event()
        self._busy_since: float | None = None  # when the job under way was handed over

    # -- what the stages ask --------------------------------------------------------------

    def working(self) -> bool:
        return self._trusted(self.shard)

    def leading(self) -> bool:
        return self._trusted(LEADER) and self.working()

    def fence(self) -> tuple[str, str] | None:
        return (LEADER, self.holder)

    def held(self) -> dict[str, str]:
        """Every live lease of the store and its holder, as the last renewal round read them (for
        /healthz, which must answer while the store does not)."""
        with self._lock:
            return dict(self._seen)

    def store_answering(self) -> bool:
        """False while a renewal round has gone unanswered for its bound (a hung server); a round
        that waits its turn behind the agent's own writes for a moment is not that."""
        with self._lock:
            since = self._busy_since
        return since is None or self.monotonic() - since < self.round_bound_s

    def _trusted(self, name: str) -> bool:
        with self._lock:
            return self._until.get(name, 0.0) > self.monotonic()

    # -- keeping them -----------------------------------------------------------------------

    @property
    def period_s(self) -> float:
        return max(self.ttl_s / 4, 0.1)

    @property
    def round_bound_s(self) -> float:
        """How long a round may go unanswered before it counts as blocked."""
        return max(self.period_s, MIN_ROUND_BOUND_S)

    def renew(self) -> None:
        """One round: the shard lease, then the leader lease while the shard's is held; then what
        the store holds now."""
        with self._rounds:
            if self._stop.is_set():
                return  # stopping: a round that was blocked must not take anything back
            self._ask(self.shard)
            if self.working():
                self._ask(LEADER)
            elif self._trusted(LEADER) or self._held_in_store(LEADER):
                self._give_up(LEADER)
            self._read()

    def _ask(self, name: str) -> None:
        asked = self.monotonic()
        had = self._trusted(name)
        try:
            got = self.store.leases.take(name, self.holder, ttl_s=self.ttl_s, now=self.clock(),
                                        wait_s=self.period_s / 2)
        except Exception as exc:  # a busy or unreachable store: keep trusting until the deadline
            alone = name in self._mine and name not in self._contested
            log.warning(kv("lease.renew_failed", lease=name, error=first_line(exc), alone=alone or None))
            self.metrics.lease_failures.inc()
            if alone:  # nobody else asked for it: nobody will take it over
                self._trust(name, self.monotonic())
            return
        with self._lock:
            if got:
                self._until[name] = asked + self.ttl_s * TRUSTED_SHARE
                self._mine.add(name)
            else:
                self._until.pop(name, None)
                self._mine.discard(name)
        self.metrics.lease_held.labels(lease=name).set(1 if got else 0)
        if got and not had:
            log.info(kv("lease.taken", lease=name, holder=self.holder))
            if self.on_taken is not None:
                self.on_taken(name)
        elif had and not got:
            log.warning(kv("lease.lost", lease=name, holder=self.holder))

    def _trust(self, name: str, asked: float) -> None:
        with self._lock:
            self._until[name] = max(self._until.get(name, 0.0), asked + self.ttl_s * TRUSTED_SHARE)

    def _read(self) -> None:
        """What the store holds now (for /healthz), and which of this agent's leases another
        agent asked for lately."""
        try:
            leases = self.store.leases.all()
        except Exception as exc:
            log.warning(kv("lease.read_failed", error=type(exc).__name__))
            return
        contested = {lease.name for lease in leases if self._contests(lease)}
        with self._lock:
            self._seen = {lease.name: lease.holder for lease in leases if lease.live}
            self._contested = contested

    def _contests(self, lease: Lease) -> bool:
        if lease.name not in (self.shard, LEADER):
            return False
        if lease.holder != self.holder:
            return True
        return lease.waiter not in (None, self.holder) and lease.waited_within(CONTESTED_TTLS * self.ttl_s)

    def _held_in_store(self, name: str) -> bool:
        try:
            return self.store.leases.holds(name, self.holder)
        except Exception:
            return False

    def _give_up(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)
            self._mine.discard(name)
        self.metrics.lease_held.labels(lease=name).set(0)
        try:
            self.store.leases.release(name, self.holder, now=self.clock())
        except Exception as exc:  # it expires on its own
            log.warning(kv("lease.release_failed", lease=name, error=type(exc).__name__))

    def start(self) -> None:
        """Ask once now (a lone agent starts its first cycle holding both), then renew: a thread
        keeps time, another (with the keeper's one store connection) does the store's work."""
        self.renew()
        self._worker = threading.Thread(target=self._work, name="leases-store", daemon=True)
        self._worker.start()
        self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.bounded_round()

    def _work(self) -> None:
        """Runs the jobs handed over by ``_hand_over``, one at a time, until the release."""
        while True:
            self._asked.wait()
            self._asked.clear()
            job = self._job
            try:
                job()
            except Exception:  # never let the lease thread die: the next round tries again
                log.exception(kv("lease.round_failed"))
            finally:
                with self._lock:
                    self._busy_since = None
                self._answered.set()
            if job == self._release_all:
                self.store.close()  # this thread's connection
                return

    def _hand_over(self, job: Callable[[], None], timeout_s: float) -> bool | None:
        """``job`` to the store thread, waited for at most ``timeout_s``: True when it answered,
        False when it did not in time, None when the job before it still has not."""
        with self._lock:
            if self._busy_since is not None:
                return None
            self._busy_since = self.monotonic()
            self._job = job
            self._answered.clear()
        self._asked.set()
        return self._answered.wait(timeout_s)

    def bounded_round(self) -> bool:
        """One renewal round, waited for at most ``round_bound_s``; False when it (or the round
        before it) is still blocked on the store. Counted, and the agent keeps what it trusts."""
        answered = self._hand_over(self.renew, self.round_bound_s)
        if answered is None:
            self._blocked("the previous round has not answered")
        elif not answered:
            self._blocked(f"no answer within {self.round_bound_s:g}s")
        return bool(answered)

    def _blocked(self, why: str) -> None:
        self.metrics.lease_rounds_blocked.inc()
        log.warning(kv("lease.round_blocked", why=why))
        now = self.monotonic()
        for name in (self.shard, LEADER):  # alone on a lease: nobody will take it meanwhile
            if name in self._mine and name not in self._contested:
                self._trust(name, now)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop renewing and release what is held, so a waiting agent takes over at once; waits
        at most ``timeout_s`` for a round under way and for the release (a store that does not
        answer: the leases expire on their own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        if self._worker is None:  # never started: release from here
            self._release_all()
            return
        if not self._hand_over(self._release_all, timeout_s):
            log.warning(kv("lease.release_abandoned", waited_s=timeout_s))

    def _release_all(self) -> None:
        with self._rounds:
            for name in (LEADER, self.shard):
                if self._trusted(name) or self._held_in_store(name):
                    self._give_up(name)
