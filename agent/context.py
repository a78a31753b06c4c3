"""What every stage is handed: the config, the store, the metrics, a heartbeat, and the workers
that run playbooks beside the cycle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.clock import utcnow
from agent.config import AgentConfig
from agent.metrics import Metrics
from agent.store import Store, open_store
from remediations.workers import Workers


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
    """Consecutive failed cycles and the last reason, for ``/healthz``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failed_in_a_row = 0
        self.last_reason = ""
        self.last_cycle_at: float | None = None  # monotonic

    def record(self, failed_stages: list[str]) -> None:
        with self._lock:
            self.last_cycle_at = time.monotonic()
            if failed_stages:
                self.failed_in_a_row += 1
                self.last_reason = "stage failed: " + ", ".join(failed_stages)
            else:
                self.failed_in_a_row = 0
                self.last_reason = ""

    def check(self, config: AgentConfig) -> tuple[bool, str]:
        with self._lock:
            if self.failed_in_a_row >= config.agent.unhealthy_after:
                return False, f"{self.failed_in_a_row} cycles failed in a row; last: {self.last_reason}"
            if self.last_cycle_at is not None:
                idle = time.monotonic() - self.last_cycle_at
                if idle > max(3 * config.agent.interval, 60.0):
                    return False, f"no cycle has finished for {idle:.0f}s"
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
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.metrics.incident_figures.bind(self)  # MTTR at /metrics comes from this store

    @classmethod
    def create(cls, config: AgentConfig, state_dir: Path | None = None, **kwargs: object) -> "Context":
        state_dir = Path(state_dir or config.agent.state_dir)
        return cls(config=config, store=open_store(state_dir), state_dir=state_dir, **kwargs)  # type: ignore[arg-type]

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"
