"""Stage 4: match incidents to remediation rules and run playbooks safely.

``remediate(ctx, cycle)`` does one cycle's work, in this order: recover runs an agent that died
left behind (once per process), expire approvals, verify applied runs against this cycle's hits
and samples, plan runs for open incidents that match a rule, and start the runs that are due on
the worker pool (``remediations.workers``; ``workers: 0``: execute them here, one after the other).
It returns every run it created or changed, and those its workers finished since the last cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle


def remediate(ctx: "Context", cycle: "Cycle") -> list[Any]:
    """Remediation runs started, verified or rolled back this cycle."""
    # Imported here: the store imports remediations.model, and this package must not pull the
    # store in before it has finished loading.
    from remediations.engine import Remediator
    from remediations.recovery import recover
    from remediations.verify import verify_all

    if not ctx.config.remediation.enabled:
        return []
    r = Remediator(ctx, cycle)
    recover(r)
    r.expire_approvals()
    verify_all(r)
    r.plan_all()
    r.execute_due()
    return latest(ctx, [*ctx.workers.finished(), *r.touched.values()])


def latest(ctx: Context, runs: list[Any]) -> list[Any]:
    """``runs`` once each, as the store has them now (a worker may have moved them on), by id."""
    found = (ctx.store.get_run(run_id) for run_id in sorted({run.id for run in runs}))
    return [run for run in found if run is not None]
