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
A cycle in which every target of the source failed read nothing: it is ``blind``, not ok, and
says which targets failed and why. Last, the cycle reports on the agent (``status``: its
targets, the detectors warming up, the cycle itself) to the store, for ``aiops status``.
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
from agent.flow.leases import holder_id
from agent.flow.runs import Run
from agent.flow.samples import Samples
from agent.flow.status import AgentStatus, CycleStatus, TargetStatus
from agent.incidents import correlate
from agent.incidents.observations import from_other_shards, share
from agent.log import kv
from agent.notify import notify
from agent.rollouts import roll
from agent.sources import Collector, Source
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
    # Set when every target (or query) of the source failed: what each said.
    blind: tuple[TargetStatus, ...] = ()
    stopped_early: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed_stages and not self.stopped_early and not self.blind

    @property
    def blind_reason(self) -> str:
        """Why the cycle read nothing: ``every source failed: node at URL: why; …``, or ""."""
        if not self.blind:
            return ""
        return "every source failed: " + "; ".join(
            f"{t.target} at {t.url}: {t.last_error} ({t.last_error_kind})" for t in self.blind)


class Pipeline:
    def __init__(self, ctx: Context, *, report: bool = True, source: Source | None = None) -> None:
        """``report``: write the agent's status to the store after each cycle (a backtest does not);
        ``source``: read samples from it instead of the configured source (a replay of history)."""
        self.ctx = ctx
        self.report = report
        self.collector = Collector(ctx, fixed=source)
        self.engine = Engine(ctx, self.collector.history)
        self.remediation = Remediation(ctx)
        self.led = False  # whether this process led in the last cycle (see _leading)
        self.status: AgentStatus | None = None  # what the last cycle reported

    def close(self) -> None:
        self.collector.close()

    def run_cycle(self, *, now: datetime | None = None) -> Cycle:
        ctx = self.ctx
        at = now or ctx.clock()
        cycle = Cycle(started_at=at)
        ctx.metrics.cycles.inc()
        started = time.perf_counter()
        cycle.samples = self._stage(cycle, "collect", lambda: self.collector.collect(at), cycle.samples)
        if "collect" not in cycle.failed_stages and self.collector.blind:
            cycle.blind = self.collector.failed
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
        if self.report:
            self._stage(cycle, "status", lambda: self._report(cycle, judged=len(seen.judged)), None)
        ctx.metrics.cycle_duration.observe(cycle.duration_s)
        ctx.metrics.last_cycle.set_to_current_time()
        if cycle.failed_stages:
            ctx.metrics.cycles_failed.inc()
        log.info(kv("cycle.done", duration_s=round(cycle.duration_s, 3), series=len(cycle.samples),
                    hits=len(cycle.hits), incidents=len(cycle.incidents), runs=len(cycle.runs),
                    notified=cycle.notified, failed=",".join(cycle.failed_stages) or None,
                    blind=cycle.blind_reason or None))
        return cycle

    def _report(self, cycle: Cycle, *, judged: int) -> None:
        """The agent's status after ``cycle``: kept for /healthz, written to the store for ``aiops status``."""
        ctx = self.ctx
        warming = self.engine.warming()
        waiting = sum(w.series + w.calibrating for w in warming)
        ctx.metrics.series_warming.set(waiting)
        before = self.status.series_warming if self.status is not None else 0
        if waiting and not before:  # said once as warm-up starts, and once as it ends
            first = min((w.first_fit_at for w in warming if w.first_fit_at is not None), default=None)
            log.info(kv("detect.warming_up", series=waiting, detectors=",".join(w.detector for w in warming),
                        first_fit_at=first, hint="aiops status says when each detector's series are scored"))
        elif before and not waiting:
            log.info(kv("detect.warmed_up", series_scored=judged))
        self.status = AgentStatus(
            shard=ctx.config.agent.shard, holder=ctx.leases.holder or holder_id(), role="leader" if self.led else "active",
            updated_at=ctx.clock(), source=ctx.config.sources.kind, interval_s=ctx.config.agent.interval,
            cycle=CycleStatus(started_at=cycle.started_at, duration_s=round(cycle.duration_s, 3),
                              series=len(cycle.samples), hits=len(cycle.hits),
                              failed_stages=tuple(cycle.failed_stages), blind=bool(cycle.blind)),
            targets=tuple(self.collector.targets()), warming=warming, series_scored=judged)
        ctx.store.status.save(self.status)

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
