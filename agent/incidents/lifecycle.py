"""The end of an incident: quiet cycles, auto-resolve, and the remediation check.

An open incident counts a quiet cycle when none of its signals fired in that cycle *and* the
data to say so was there: every unresolved signal's series is in the cycle's frame with at least
one value and is not in ``samples.gaps``. A gap (source down, series missing) leaves the count
where it was: silence from a dead exporter is not recovery. Signals fed by Alertmanager end only
through a ``resolved`` alert. After ``quiet_cycles`` quiet cycles the incident resolves, unless a
remediation ran and has not been verified yet.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from agent.config.incidents import IncidentsConfig
from agent.flow.incidents import Incident, IncidentStatus
from agent.flow.samples import Samples
from agent.incidents.rootcause import ALERT_DETECTOR
from agent.log import kv

if TYPE_CHECKING:
    from agent.store import Store

log = logging.getLogger(__name__)

OPEN_STATES = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING)


def data_present(incident: Incident, samples: Samples, judged: Collection[str] = ()) -> bool:
    """True when this cycle's data covers every unresolved signal of the incident: its series
    has values, or the detectors judged it with data (a model's drift, an entity's forest)."""
    columns = samples.values.columns
    for signal in incident.signals:
        if signal.resolved_at is not None:
            continue
        if signal.detector == ALERT_DETECTOR:
            return False  # still firing in Alertmanager
        if signal.series_id in judged:
            continue
        if signal.series_id in samples.gaps or signal.series_id not in columns:
            return False
        if not samples.values[signal.series_id].notna().any():
            return False
    return True


def advance(store: "Store", config: IncidentsConfig, samples: Samples, fired: Collection[int], *,
            now: datetime, judged: Collection[str] = ()) -> list[int]:
    """Count quiet cycles for open incidents that did not fire; resolve those quiet long enough."""
    resolved = []
    waiting = store.waiting_for_signals_of(ALERT_DETECTOR)  # no quiet cycle for them: their signals unread
    for incident in store.list_incidents(status=OPEN_STATES, without_signals_of=waiting):
        if incident.id in fired or incident.id in waiting:
            continue
        if not incident.signals:
            # Opened for something no signal watches (a failed canary analysis, a refused
            # retrain): nothing can turn quiet; the stage that opened it or a person resolves it.
            continue
        if not data_present(incident, samples, judged):
            continue
        quiet = incident.quiet_cycles + 1
        store.update_incident(incident.id, now=now, quiet_cycles=quiet)
        if quiet >= config.quiet_cycles and try_resolve(
                store, incident.id, now=now, reason=f"none of its signals fired for {quiet} cycles"):
            resolved.append(incident.id)
    return resolved


def try_resolve(store: "Store", incident_id: int, *, now: datetime, reason: str, resolution: str = "quiet",
                actor: str = "agent") -> bool:
    """Resolve unless a remediation ran and is not verified; False when it had to stay open."""
    ran, verified = store.remediation_outcome(incident_id)
    if ran and not verified:
        log.info(kv("incident.resolve_waits", id=incident_id, reason="remediation not verified"))
        return False
    if ran:
        resolution = "remediation"
    store.transition_incident(incident_id, IncidentStatus.RESOLVED, actor=actor, reason=reason, now=now,
                              resolution=resolution)
    log.info(kv("incident.resolved", id=incident_id, resolution=resolution))
    return True
