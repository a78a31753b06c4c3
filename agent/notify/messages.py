"""What a notification says: built once, when the event is queued, and stored in the outbox row,
so a retry sends the same words even after the incident has moved on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.flow.incidents import Incident, IncidentEvent
from agent.incidents.catalog import Catalog
from agent.incidents.render import render_text
from agent.incidents.summary import CHANGES_LOOKBACK_S, build, clean

if TYPE_CHECKING:
    from agent.store import Store

# Which word of the lifecycle a timeline event stands for; other kinds do not notify.
LIFECYCLE = {"opened": "opened", "acknowledged": "acknowledged", "resolved": "resolved", "reopened": "reopened",
             "escalated": "escalated"}


def notify_kind(kind: str) -> str | None:
    """``opened``, ``acknowledged``, ``resolved``, ``reopened``, ``escalated``, ``remediation``
    (every remediation outcome) or None for events that do not notify."""
    if kind in LIFECYCLE:
        return LIFECYCLE[kind]
    if kind.startswith("remediation"):
        return "remediation"
    return None


def quiet_for_pagers(event: IncidentEvent) -> bool:
    """True when a paging channel must stay quiet: a silence covers the incident, or it reopened
    while flapping (it paged already when it first opened)."""
    details: Mapping[str, Any] = event.details or {}
    return bool(details.get("silenced")) or (event.kind == "reopened" and bool(details.get("flapping")))


def payload_for(store: "Store", event: IncidentEvent, incident: Incident, *, base_url: str | None,
                catalog: Catalog | None, lookback_s: float = CHANGES_LOOKBACK_S) -> dict[str, Any]:
    """The channel-neutral message: the summary's title, a link to the incident page, the event."""
    summary = build(store, incident.id, base_url=base_url, catalog=catalog, lookback_s=lookback_s)
    severity = str((event.details or {}).get("severity") or incident.severity.value)
    return {
        "version": 1,
        "event": event.kind,
        "event_id": event.id,
        "event_message": event.message,
        "event_at": event.ts.isoformat(),
        "actor": event.actor,
        "incident_id": incident.id,
        "title": summary.title,
        "url": summary.url,
        "severity": severity,
        "status": incident.status.value,
        "labels": dict(incident.labels),
        "started_at": incident.started_at.isoformat(),
        "root_cause": incident.root_cause,
        "text": render_text(summary),
    }


def headline(payload: Mapping[str, Any]) -> str:
    """``[CRITICAL] opened #12: <title>`` on one line, control characters escaped."""
    return clean(f"[{str(payload['severity']).upper()}] {payload['event']} #{payload['incident_id']}: {payload['title']}")
