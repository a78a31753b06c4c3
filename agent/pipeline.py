"""One cycle, top to bottom: collect → detect → correlate → remediate → rollouts → notify.

A ``Pipeline`` is built once per Context and holds the stages that keep state between cycles
(the collector's source, the detectors, the remediation memory); correlation and notification
keep theirs in the store. Each stage is called with what it reads and returns what it makes:

    samples   = collect(at)
    seen      = detect(samples)             hits, and every signal judged with data
    incidents = correlate(seen)             opened, updated or resolved
    share(seen)                             shard agents: what they saw of open incidents' signals
    runs      = remediate(seen)             open incidents come from the store
    rollouts  = roll(at)                    each active model rollout moves one step
    notified  = notify(at)                  timeline events past the outbox's cursor

The last three act once for all agents sharing the store: only the leader runs them (see
``agent.leases``), remediation with what the other shards last shared of the incidents' signals.

A stage that raises is logged with its traceback and counted; the stages after it still run
with what they have (an empty frame, no new hits). A stop request ends the cycle between stages.
Refits are not part of the cycle: ``refit`` is the daemon's refit job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from agent.context import Context
from agent.detection import Engine
from agent.flow.detection import Detection
from agent.flow.incidents import Incident
from agent.flow.runs import Run
from agent.flow.samples import Samples
from agent.incidents import correlate
from agent.incidents.observations import from_other_shards, share
from agent.log import kv
from agent.notify import notify
from agent.rollouts import roll
from agent.sources import Collector
from agent.store.base import damaged_error, is_damaged
from detectors.base import Hit
from remediations import Remediation

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Cycle:
    """What one cycle produced, for the daemon's status line and ``aiops once``."""

    started_at: datetime
    samples: Samples = field(default_factory=Samples.empty)
    hits: list[Hit] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    rollouts: list[Any] = field(default_factory=list)
    notified: int = 0
    failed_stages: list[str] = field(default_factory=list)
    stopped_early: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed_stages and not self.stopped_early


class Pipeline:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.collector = Collector(ctx)
        self.engine = Engine(ctx, self.collector.history)
        self.remediation = Remediation(ctx)
        self.led = False  # whether this process led in the last cycle (see _leading)

    def close(self) -> None:
        self.collector.close()

    def run_cycle(self, *, now: datetime | None = None) -> Cycle:
        ctx = self.ctx
        at = now or ctx.clock()
        cycle = Cycle(started_at=at)
        ctx.metrics.cycles.inc()
        started = time.perf_counter()
        cycle.samples = self._stage(cycle, "collect", lambda: self.collector.collect(at), cycle.samples)
        seen = self._stage(cycle, "detect", lambda: self.engine.detect(cycle.samples, now=at),
                           Detection(at=at, samples=cycle.samples))
        cycle.hits = seen.hits
        cycle.incidents = self._stage(cycle, "correlate", lambda: correlate(ctx, seen), [])
        self._stage(cycle, "share", lambda: share(ctx, seen), 0)  # shard agents: for the leader's checks
        # The stages that act once for every agent on the store run on the leader only.
        if self._leading():
            seen = self._stage(cycle, "gather", lambda: from_other_shards(ctx, seen), seen)
            cycle.runs = self._stage(cycle, "remediate", lambda: self.remediation.remediate(seen), [])
            cycle.rollouts = self._stage(cycle, "rollouts", lambda: roll(ctx, at), [])
            cycle.notified = self._stage(cycle, "notify", lambda: notify(ctx, at), 0)
        ctx.heartbeat.beat()
        cycle.duration_s = time.perf_counter() - started
        ctx.metrics.cycle_duration.observe(cycle.duration_s)
        ctx.metrics.last_cycle.set_to_current_time()
        if cycle.failed_stages:
            ctx.metrics.cycles_failed.inc()
        log.info(kv("cycle.done", duration_s=round(cycle.duration_s, 3), series=len(cycle.samples),
                    hits=len(cycle.hits), incidents=len(cycle.incidents), runs=len(cycle.runs),
                    notified=cycle.notified, failed=",".join(cycle.failed_stages) or None))
        return cycle

    def _leading(self) -> bool:
        leading = self.ctx.leases.leading()
        if leading and not self.led:
            # Taking the lead (at start, or from an agent that died): the runs it left are recovered.
            self.remediation.recovered = False
        self.led = leading
        return leading

    def _stage(self, cycle: Cycle, name: str, run: Callable[[], T], nothing: T) -> T:
        """``run()``, timed and counted; ``nothing`` when it fails or the agent is stopping."""
        if cycle.stopped_early or self.ctx.stopping.is_set():
            if not cycle.stopped_early:
                cycle.stopped_early = True
                log.info(kv("cycle.stopped", before_stage=name))
            return nothing
        self.ctx.heartbeat.beat()
        started = time.perf_counter()
        try:
            return run()
        except Exception as exc:  # one stage's failure must not end the cycle or the daemon
            if is_damaged(exc):  # ... but a damaged store fails every stage of every cycle
                raise damaged_error(self.ctx.store.path, exc) from None
            log.exception(kv("stage.failed", stage=name, error=type(exc).__name__))
            self.ctx.metrics.stage_failures.labels(stage=name).inc()
            cycle.failed_stages.append(name)
            return nothing
        finally:
            self.ctx.metrics.stage_duration.labels(stage=name).observe(time.perf_counter() - started)

    def refit(self, *, now: datetime | None = None) -> int:
        """The refits due now, on the series of the last frame judged; how many were fitted."""
        return self.engine.refit(now=now or self.ctx.clock())
