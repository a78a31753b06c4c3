"""Stage 4: match incidents to remediation rules and run playbooks safely.

``Remediation`` is the stage, one per Context. ``remediate(seen)`` does one cycle's work, in this
order: recover the runs an agent that died left behind (the first time only), expire approvals,
verify applied runs against what the cycle's detection saw, hand back incidents left
``remediating`` with nothing under way (``verify.settle``), move the rules that earn their trust as
their record says (``trust``), plan runs for the open incidents (read from the store) that match a
rule, and start the runs that are due on the worker pool
(``agent.workers``; ``workers: 0``: execute them here, one after the other). It returns
every run it created or changed, and those its workers finished since the last cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.flow.detection import Detection
from agent.flow.runs import Run
from remediations.engine import Remediator
from remediations.recovery import recover
from remediations.trust import review
from remediations.verify import settle, verify_all

if TYPE_CHECKING:
    from agent.context import Context


class Remediation:
    def __init__(self, ctx: "Context") -> None:
        self.ctx = ctx
        self.recovered = False
        # The last deferral or decision audited per run or key (see Remediator.decided).
        self.decided: dict[int | str, str] = {}

    def remediate(self, seen: Detection) -> list[Run]:
        """Remediation runs started, verified or rolled back this cycle."""
        if not self.ctx.config.remediation.enabled:
            return []
        r = Remediator(self.ctx, seen, self.decided)
        if not self.recovered:
            self.recovered = True  # a recovery that fails is not tried again every cycle
            recover(r)
        r.expire_approvals()
        verify_all(r)
        settle(r)
        review(self.ctx.store, self.ctx.config.remediation, now=seen.at, metrics=self.ctx.metrics)
        r.plan_all()
        r.execute_due()
        return latest(self.ctx, [*self.ctx.workers.finished(), *r.touched.values()])


def latest(ctx: "Context", runs: list[Run]) -> list[Run]:
    """``runs`` once each, as the store has them now (a worker may have moved them on), by id."""
    found = (ctx.store.get_run(run_id) for run_id in sorted({run.id for run in runs}))
    return [run for run in found if run is not None]
