"""Stage 3: correlate hits into incidents and run their lifecycle.

``correlate`` places the cycle's hits (``correlator``), then counts quiet cycles and resolves
incidents that stayed quiet with their data present (``lifecycle``). Suspect changes are read
on demand with ``changes.suspect_changes`` (and the agent's own remediations near it with
``changes.nearby_changes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Where they were first defined: kept importable from here while callers move to ``changes``.
from agent.incidents.changes import changes_before, nearby_changes, suspect_changes

if TYPE_CHECKING:
    from agent.context import Context
    from agent.flow.detection import Detection
    from agent.flow.incidents import Incident

__all__ = ["changes_before", "correlate", "nearby_changes", "suspect_changes"]


def correlate(ctx: "Context", seen: "Detection") -> list["Incident"]:
    """Incidents opened, updated or resolved by what the cycle's detection saw."""
    from agent.incidents.correlator import Correlator
    from agent.incidents.lifecycle import advance
    from agent.incidents.onset import with_onsets

    now = seen.at
    interval_s = ctx.config.agent.interval
    correlator = Correlator(ctx.store, ctx.config.incidents, interval_s=interval_s, metrics=ctx.metrics)
    hits = with_onsets(seen.hits, seen.samples, interval_s=interval_s)
    ctx.budget.new_cycle(limit=ctx.config.incidents.max_new_per_cycle, window_s=interval_s)
    placed = correlator.ingest(hits, now=now, budget=ctx.budget)
    resolved = advance(ctx.store, ctx.config.incidents, seen.samples, placed.touched, now=now,
                       judged=seen.judged)
    ctx.metrics.open_incidents.set(ctx.store.count_open_incidents())
    touched = sorted(placed.touched | set(resolved))
    return ctx.store.get_incidents(touched)
