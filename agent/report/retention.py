"""Retention: delete raw history past its configured age, in small batches, and audit it.

``prune(ctx, now=...)`` is what the daemon schedules every ``retention.interval``. Samples and
hits go after their configured age; incidents, remediation runs and audit entries only when a
period is set for them (the default keeps them). Each batch of at most ``retention.batch_size``
rows is its own short transaction, so a cycle waiting to write never waits for more than one
batch; a call stops after ``retention.budget`` seconds (or when the agent is stopping) and the
next call carries on. Whatever a call deleted is written to the audit log as one
``retention.prune`` entry, with the cut-off of each table and how many rows went.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.clock import to_epoch
from agent.log import kv

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)

ACTOR = "agent:retention"


def _batches(ctx: "Context", now_s: float) -> list[tuple[str, float | None, Callable[[float, int], int]]]:
    """(table, max age in seconds or None to keep, batch function), in an order that keeps
    references valid: runs before the incidents they point to."""
    config = ctx.config.retention
    store = ctx.store
    return [
        ("samples", config.samples, store.prune_samples),
        ("hits", config.hits, store.prune_hits),
        ("remediation_runs", config.runs, store.prune_runs),
        ("incidents", config.incidents, store.prune_incidents),
        ("audit", config.audit, lambda before, limit: store.prune_audit(before, limit, now_s=now_s)),
    ]


def prune(ctx: "Context", *, now: datetime) -> dict[str, Any]:
    """Delete what retention allows; returns ``{"deleted": {table: rows}, "cutoffs": {table:
    epoch}, "complete": bool}`` (complete is False when the time budget or a stop cut it short)."""
    config = ctx.config.retention
    now_s = float(to_epoch(now))
    deadline = time.monotonic() + config.budget
    deleted: dict[str, int] = {}
    cutoffs: dict[str, float] = {}
    complete = True
    for table, max_age, batch in _batches(ctx, now_s):
        if max_age is None:
            continue
        cutoffs[table] = before = now_s - max_age
        deleted[table] = 0
        while True:
            if ctx.stopping.is_set() or time.monotonic() > deadline:
                complete = False
                break
            ctx.heartbeat.beat()
            count = batch(before, config.batch_size)
            deleted[table] += count
            ctx.metrics.retention_pruned.labels(table=table).inc(count)
            if count < config.batch_size:
                break
        if not complete:
            break
    outcome = {"deleted": deleted, "cutoffs": cutoffs, "complete": complete}
    if any(deleted.values()):
        ctx.store.audit(ACTOR, "retention.prune", "store", {
            "reason": "older than the configured retention", **outcome,
            "audit_anchor": ctx.store.audit_anchor()[1] if deleted.get("audit") else None}, now=now)
    log.info(kv("retention.pruned", complete=complete, **{k: v for k, v in deleted.items()}))
    return outcome
