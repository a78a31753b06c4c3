"""One cycle, top to bottom: collect → detect → correlate → remediate → rollouts → notify.

A stage that raises is logged with its traceback and counted; the stages after it still run
with what they have (an empty frame, no new hits). A stop request ends the cycle between stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.context import Context
from agent.detection import detect
from agent.incidents import correlate
from agent.log import kv
from agent.notify import notify
from agent.rollouts import roll
from agent.sources import Samples, collect
from detectors.base import Hit
from remediations import remediate

log = logging.getLogger(__name__)


@dataclass
class Cycle:
    """What one cycle has produced so far; each stage reads the ones before it."""

    started_at: datetime
    samples: Samples = field(default_factory=Samples.empty)
    hits: list[Hit] = field(default_factory=list)
    incidents: list[Any] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    rollouts: list[Any] = field(default_factory=list)
    # Signals the detectors judged with data this cycle, including subjects that are not a
    # column of ``samples`` (a model's drift, an entity's forest): judged and no hit = quiet.
    judged: set[str] = field(default_factory=set)
    notified: int = 0
    failed_stages: list[str] = field(default_factory=list)
    stopped_early: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed_stages and not self.stopped_early


Stage = Callable[[Context, Cycle], Any]

# (name, function, the Cycle attribute its result goes to)
STAGES: list[tuple[str, Stage, str]] = [
    ("collect", collect, "samples"),
    ("detect", detect, "hits"),
    ("correlate", correlate, "incidents"),
    ("remediate", remediate, "runs"),
    ("rollouts", roll, "rollouts"),
    ("notify", notify, "notified"),
]


def run_cycle(ctx: Context, *, now: datetime | None = None) -> Cycle:
    cycle = Cycle(started_at=now or ctx.clock())
    metrics = ctx.metrics
    metrics.cycles.inc()
    started = time.perf_counter()
    for name, stage, attr in STAGES:
        if ctx.stopping.is_set():
            cycle.stopped_early = True
            log.info(kv("cycle.stopped", before_stage=name))
            break
        ctx.heartbeat.beat()
        stage_started = time.perf_counter()
        try:
            result = stage(ctx, cycle)
        except Exception as exc:  # one stage's failure must not end the cycle or the daemon
            log.exception(kv("stage.failed", stage=name, error=type(exc).__name__))
            metrics.stage_failures.labels(stage=name).inc()
            cycle.failed_stages.append(name)
            continue
        finally:
            metrics.stage_duration.labels(stage=name).observe(time.perf_counter() - stage_started)
        if result is not None:
            setattr(cycle, attr, result)
    ctx.heartbeat.beat()
    cycle.duration_s = time.perf_counter() - started
    metrics.cycle_duration.observe(cycle.duration_s)
    metrics.last_cycle.set_to_current_time()
    if cycle.failed_stages:
        metrics.cycles_failed.inc()
    log.info(kv("cycle.done", duration_s=round(cycle.duration_s, 3), series=len(cycle.samples),
                hits=len(cycle.hits), incidents=len(cycle.incidents), runs=len(cycle.runs),
                notified=cycle.notified, failed=",".join(cycle.failed_stages) or None))
    return cycle
