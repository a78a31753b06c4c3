"""Stage 3: correlate hits into incidents and run their lifecycle.

``correlate`` places the cycle's hits (``correlator``), then counts quiet cycles and resolves
incidents that stayed quiet with their data present (``lifecycle``). Suspect changes are read
on demand with ``suspect_changes``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.context import Context
    from agent.flow.detection import Detection
    from agent.flow.incidents import Change, Incident
    from agent.store import Store


def correlate(ctx: "Context", seen: "Detection") -> list["Incident"]:
    """Incidents opened, updated or resolved by what the cycle's detection saw."""
    from agent.incidents.correlator import Correlator
    from agent.incidents.lifecycle import advance

    now = seen.at
    correlator = Correlator(ctx.store, ctx.config.incidents, interval_s=ctx.config.agent.interval,
                            metrics=ctx.metrics)
    ctx.budget.new_cycle(limit=ctx.config.incidents.max_new_per_cycle, window_s=ctx.config.agent.interval)
    placed = correlator.ingest(seen.hits, now=now, budget=ctx.budget)
    resolved = advance(ctx.store, ctx.config.incidents, seen.samples, placed.touched, now=now,
                       judged=seen.judged)
    ctx.metrics.open_incidents.set(ctx.store.count_open_incidents())
    touched = sorted(placed.touched | set(resolved))
    return [incident for i in touched if (incident := ctx.store.get_incident(i)) is not None]


def suspect_changes(store: "Store", incident: "Incident", *, lookback_s: float) -> list["Change"]:
    """Changes sharing a label with the incident or any of its signals, in the ``lookback_s``
    before it was detected (or started, whichever is later), nearest first."""
    before = max(incident.detected_at, incident.started_at) + timedelta(seconds=1)
    # One read for every label set: an incident can hold thousands of signals, lists show hundreds.
    pairs = {item for labels in [incident.labels, *(s.labels for s in incident.signals)] for item in labels.items()}
    return store.changes_near(pairs, before=before, lookback_s=lookback_s)
