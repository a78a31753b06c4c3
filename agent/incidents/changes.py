"""The changes near an incident: its suspects (deploys, rollouts, config changes sharing a label
with it, shortly before it) and the agent's own remediations there."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from agent.flow.incidents import Change, Incident
    from agent.store import Store


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
