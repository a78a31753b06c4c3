"""Stage 3: correlate hits into incidents and run their lifecycle.

``correlate`` places the cycle's hits (``correlator``), then counts quiet cycles and resolves
incidents that stayed quiet with their data present (``lifecycle``). Suspect changes are read
on demand with ``suspect_changes`` (and the agent's own remediations near it with
``nearby_changes``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from agent.context import Context
    from agent.flow.detection import Detection
    from agent.flow.incidents import Change, Incident
    from agent.store import Store


def correlate(ctx: "Context", seen: "Detection") -> list["Incident"]:
    """Incidents opened, updated or resolved by what the cycle's detection saw."""
    from agent.incidents.correlator import Correlator
    from agent.incidents.lifecycle import advance
    from agent.incidents.onset import with_onsets

    now = seen.at
    interval_s = ctx.config.agent.interval
    correlator = Correlator(ctx.store, ctx.config.incidents, interval_s=interval_s, metrics=ctx.metrics)
    hits = with_onsets(seen.hits, seen.samples, interval_s=interval_s)
    placed = correlator.ingest(hits, now=now, max_new=ctx.config.incidents.max_new_per_cycle)
    resolved = advance(ctx.store, ctx.config.incidents, seen.samples, placed.touched, now=now,
                       judged=seen.judged)
    ctx.metrics.open_incidents.set(ctx.store.count_open_incidents())
    touched = sorted(placed.touched | set(resolved))
    return [incident for i in touched if (incident := ctx.store.get_incident(i)) is not None]


def nearby_changes(store: "Store", incident: "Incident", *, lookback_s: float) -> list["Change"]:
    """Changes sharing a label with the incident or any of its signals, in the ``lookback_s``
    before it was detected (or started, whichever is later), nearest first: its suspects, and
    the remediations the agent applied (listed as such, never suspects)."""
    return changes_before(store, [incident.labels, *(s.labels for s in incident.signals)],
                          before=max(incident.detected_at, incident.started_at), lookback_s=lookback_s)


def suspect_changes(store: "Store", incident: "Incident", *, lookback_s: float) -> list["Change"]:
    """The nearby changes that may explain the incident: every one but the agent's remediations."""
    return [c for c in nearby_changes(store, incident, lookback_s=lookback_s) if not c.is_remediation]


def changes_before(store: "Store", label_sets: "Iterable[Mapping[str, str]]", *, before: "datetime",
                   lookback_s: float) -> list["Change"]:
    # One read for every label set: an incident can hold thousands of signals, lists show hundreds.
    pairs = {item for labels in label_sets for item in labels.items()}
    return store.changes_near(pairs, before=before + timedelta(seconds=1), lookback_s=lookback_s)
