"""Model operations: guarded rollouts analysed on a canary, retraining behind a gate, the model
registry and the per-model governance report.

``roll(ctx, now)`` is the cycle's stage: bring the registry to what each model's serving link
serves (``serving``), join incidents of a model's signals to its rollout's and resolve those a
rollback settled (``story``), retrain models whose drift incidents ask for it, then move every
active rollout one step, by the cycle's clock, on the remediation workers (the cycle does not
wait for a rollout's playbook).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.log import kv

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)


def roll(ctx: Context, now: datetime) -> list[Any]:
    """Rollouts that moved this cycle."""
    from agent.errors import AiopsError
    from agent.rollouts.engine import advance
    from agent.rollouts.retrain import drift_to_retrain, retrain_on_drift
    from agent.rollouts.serving import reconcile
    from agent.rollouts.story import fold, settle
    from remediations.engine import worker_limit

    if not ctx.config.models:
        return []
    for model in ctx.config.models:
        if model.serving is not None:
            reconcile(ctx, model, now=now)
    fold(ctx, now)
    settle(ctx, now)

    def retrain_job() -> list[Any]:
        try:
            retrain_on_drift(ctx, now)
        except (AiopsError, OSError) as exc:  # retraining must not hold rollouts up
            log.exception(kv("retrain.failed", error=type(exc).__name__))
        finally:
            if limit:
                ctx.store.close()  # this worker thread's connection
        return []

    limit = worker_limit(ctx.config.remediation)
    if drift_to_retrain(ctx, now):
        ctx.workers.start("retrain", retrain_job, limit=limit)  # one retrain job at a time
    return advance(ctx, now, beside=True)
