"""Model operations: guarded rollouts analysed on a canary, retraining behind a gate, the model
registry and the per-model governance report.

``roll(ctx, cycle)`` is the cycle's stage: retrain models whose drift incidents ask for it, then
move every active rollout one step, by the cycle's clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agent.log import kv

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle

log = logging.getLogger(__name__)


def roll(ctx: Context, cycle: Cycle) -> list[Any]:
    """Rollouts that moved this cycle."""
    from agent.errors import AiopsError
    from agent.rollouts.engine import advance
    from agent.rollouts.retrain import retrain_on_drift

    if not ctx.config.models:
        return []
    try:
        retrain_on_drift(ctx, cycle.started_at)
    except (AiopsError, OSError) as exc:  # retraining must not hold rollouts up
        log.exception(kv("retrain.failed", error=type(exc).__name__))
    return advance(ctx, cycle.started_at)
