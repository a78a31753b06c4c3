"""What every stage is handed: the config, the store, the metrics, a heartbeat, the workers
that run playbooks beside the cycle, and the leases this process holds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.clock import utcnow
from agent.config import AgentConfig
from agent.incidents.budget import NewIncidentBudget
from agent.leases import LeaseKeeper, SoleAgent
from agent.log import kv
from agent.metrics import Metrics
from agent.store import Store, open_store
from agent.workers import Workers

log = logging.getLogger(__name__)

# How long a start may spend checking the store file's pages (about 500 MB here); the rest of a
# larger file is found damaged, if it is, by the first cycle that reads it.
STORE_CHECK_S = 5.0


class Heartbeat:
    """Long stages call ``beat()``; the watchdog pings systemd only while beats keep coming."""

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def age_s(self) -> float:
        with self._lock:
            return time.monotonic() - self._last


class Health:
    """Consecutive failed cycles, the last reason and when cycles finish, for ``/healthz``.

    Times are seconds of the Context's monotonic clock: ``start(at)`` when the daemon begins, so
    a first cycle that never finishes turns the daemon unhealthy as a later one would; a step of
    the wall clock (NTP, a VM resumed) neither hides a stall nor fakes one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failed_in_a_row = 0
        self.last_reason = ""
        self.started_at: float | None = None
        self.last_cycle_at: float | None = None
        self.waiting = False  # a standby: another agent holds this shard's lease

    def start(self, at: float) -> None:
        with self._lock:
            self.started_at = at

    def wait(self) -> None:
        """A standby is healthy while it waits: no cycle is expected of it."""
        with self._lock:
            self.waiting = True

    def work(self, at: float) -> None:
        """Cycles are expected again, counted from ``at`` (a standby that took over)."""
        with self._lock:
            if self.waiting:
                self.waiting, self.started_at, self.last_cycle_at = False, at, None

    def record(self, failed_stages: list[str], *, at: float, blind: str = "") -> None:
        """A finished cycle: failed when a stage failed, or when it was ``blind`` (the reason why
        every source failed): a cycle that read nothing is not health."""
        with self._lock:
            self.last_cycle_at = at
            if failed_stages or blind:
                self.failed_in_a_row += 1
                self.last_reason = "; ".join(filter(None, [
                    "stage failed: " + ", ".join(failed_stages) if failed_stages else "", blind]))
            else:
                self.failed_in_a_row = 0
                self.last_reason = ""

    def check(self, config: AgentConfig, *, at: float) -> tuple[bool, str]:
        with self._lock:
            if self.waiting:
                return True, ""
            if self.failed_in_a_row >= config.agent.unhealthy_after:
                return False, f"{self.failed_in_a_row} cycles failed in a row; last: {self.last_reason}"
            since = self.last_cycle_at if self.last_cycle_at is not None else self.started_at
            if since is not None:
                idle = at - since
                if idle > config.agent.stale_after_s:
                    what = "no cycle has" if self.last_cycle_at is not None else "the first cycle has not"
                    return False, f"{what} finished for {idle:.0f}s (limit {config.agent.stale_after_s:g}s)"
            return True, ""


@dataclass
class Context:
    config: AgentConfig
    store: Store
    state_dir: Path
    metrics: Metrics = field(default_factory=Metrics)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    health: Health = field(default_factory=Health)
    stopping: threading.Event = field(default_factory=threading.Event)
    # Playbook runs under way beside the cycle (remediation.workers).
    workers: Workers = field(default_factory=Workers)
    # What this process may do among the agents sharing the store (the daemon keeps leases).
    leases: LeaseKeeper | SoleAgent = field(default_factory=SoleAgent)
    # The wall clock dates what is recorded; the monotonic clock times schedules and staleness.
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic

    # What is left of incidents.max_new_per_cycle: shared by the cycle and Alertmanager's webhooks.
    budget: NewIncidentBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = NewIncidentBudget(limit=self.config.incidents.max_new_per_cycle,
                                        window_s=self.config.agent.interval, monotonic=self.monotonic)
        self.workers.on_thread_end = self.store.close  # each worker thread's own connection
        # MTTR at /metrics comes from this store, at the Context's clock (a test may set another)
        self.metrics.incident_figures.bind(self.store, lambda: self.clock(),
                                           answering=lambda: self.leases.store_answering())
        self.metrics.incident_marks.bind(self.store, lambda: self.clock(),
                                         answering=lambda: self.leases.store_answering())
        self.metrics.ledger_figures.bind(self.store, lambda: self.clock(), lambda: self.config,
                                         answering=lambda: self.leases.store_answering())

    @classmethod
    def create(cls, config: AgentConfig, state_dir: Path | None = None, **kwargs: object) -> "Context":
        """A Context on the store the config names; a damaged store file stops it here
        (StoreDamagedError), not one cycle at a time."""
        state_dir = Path(state_dir or config.agent.state_dir)
        store = open_store(state_dir, config.store)
        try:
            if not store.check_pages(STORE_CHECK_S):
                log.info(kv("store.check_cut", budget_s=STORE_CHECK_S))
        except Exception:
            store.close()
            raise
        return cls(config=config, store=store, state_dir=state_dir, **kwargs)  # type: ignore[arg-type]

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"
