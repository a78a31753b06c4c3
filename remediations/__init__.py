"""Stage 4: match incidents to remediation rules and run playbooks safely.

``remediate(ctx, cycle)`` does one cycle's work, in this order: recover runs an agent that died
left behind (once per process), expire approvals, verify applied runs against this cycle's hits
and samples, plan runs for open incidents that match a rule, and execute the runs that are due.
It returns every run it created or changed.
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
    return sorted(r.touched.values(), key=lambda run: run.id)
