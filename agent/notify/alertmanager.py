"""Alertmanager as a notification channel: each incident routed to it is an alert there.

Alertmanager keeps alerts, not messages: so this channel does not go through the outbox. Each
notify stage compares, per channel, the incidents that should fire with what Alertmanager was
last told (``alertmanager_alerts``) and posts what is due to ``/api/v2/alerts`` in one request:

- an open incident routed to the channel (``notify.routes``, as its ``opened`` event would be)
  fires: the cycle it opens, again every ``resend`` while it stays open, and at once when its
  outage or severity changes; its ``endsAt`` lies four resends (or cycles) ahead, so an alert
  the agent stops refreshing resolves by itself;
- a resolved incident whose alert still fires is sent once more with ``endsAt`` its resolution.

Labels name an alert in Alertmanager, so they never change: ``alertname``, ``aiops_incident``
(the id), the incident's labels as they were at its first push, the channel's own ``labels`` and
``severity``. When the severity rises, the alert under the old labels is resolved and one under
the new fires. Annotations carry the summary's title, the status and root-cause line, and the
incident page. A push Alertmanager refuses is logged and counted, and everything in it is due
again next cycle: nothing is lost while it is down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.config.notify import AlertmanagerChannel, NotifyConfig
from agent.detection.gauges import safe_labels
from agent.flow.incidents import IncidentStatus
from agent.incidents.cause import root_cause_line
from agent.incidents.summary import build, clean, status_line
from agent.log import kv
from agent.notify.channels import LIFETIMES, Alertmanager, DeliveryError, rfc3339
from agent.notify.routing import channels_for
from agent.store.pushed import AlertState, Pushed

if TYPE_CHECKING:
    from agent.incidents.catalog import Catalog
    from agent.metrics import Metrics
    from agent.store import Store

log = logging.getLogger(__name__)

RESERVED = ("alertname", "aiops_incident", "severity")
ANNOTATION_CHARS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    """One alert to post, and what to remember of it once Alertmanager took it."""

    incident_id: int
    body: Mapping[str, Any]
    pushed: Pushed | None  # None: nothing to remember (the old labels' alert resolved on a severity change)


def sync(store: "Store", config: NotifyConfig, channels: Mapping[str, Any], *, now: datetime, interval_s: float,
         base_url: str | None, catalog: "Catalog | None", metrics: "Metrics | None" = None) -> int:
    """Post what each Alertmanager channel is due; returns the alerts it took."""
    taken = 0
    for channel in channels.values():
        if not isinstance(channel, Alertmanager):
            continue
        due = due_alerts(store, config, channel, now=now, interval_s=interval_s, base_url=base_url, catalog=catalog)
        if not due:
            continue
        try:
            channel.post([d.body for d in due], channel.timeout_s)
        except DeliveryError as exc:
            log.warning(kv("notify.alertmanager_failed", channel=channel.name, alerts=len(due), error=exc.problem))
            _count(metrics, channel.name, "failed", len(due))
            continue
        store.pushed.record(channel.name, [(d.incident_id, d.pushed) for d in due if d.pushed is not None])
        taken += len(due)
        _count(metrics, channel.name, "sent", len(due))
        log.info(kv("notify.alertmanager_sent", channel=channel.name, alerts=len(due),
                    resolved=sum(1 for d in due if d.body["endsAt"] <= rfc3339(now))))
    return taken


def due_alerts(store: "Store", config: NotifyConfig, channel: Alertmanager, *, now: datetime, interval_s: float,
               base_url: str | None, catalog: "Catalog | None") -> list[Due]:
    c = channel.config
    refresh = timedelta(seconds=c.resend)
    ends = now + timedelta(seconds=LIFETIMES * max(c.resend, interval_s))
    due: list[Due] = []
    for state in store.pushed.states(channel.name):
        pushed = state.pushed
        routed = state.status is not IncidentStatus.RESOLVED and channel.name in channels_for(
            config, "opened", state.severity, state.labels)
        firing_there = pushed is not None and not pushed.resolved
        if not routed:
            if firing_there:
                assert pushed is not None
                end = max(state.resolved_at or now, state.started_at)
                due.append(_due(store, state, pushed.labels, ends_at=end, now=now, resolved=True, base_url=base_url,
                                catalog=catalog))
            continue
        labels = alert_labels(c, state, pushed)
        if firing_there and pushed is not None and pushed.labels != labels:  # the severity changed
            due.append(_due(store, state, pushed.labels, ends_at=now, now=now, resolved=True, base_url=base_url,
                            catalog=catalog, remember=False))
        if (pushed is None or pushed.resolved or pushed.episode != state.episode or pushed.labels != labels
                or now - pushed.pushed_at >= refresh):
            due.append(_due(store, state, labels, ends_at=ends, now=now, resolved=False, base_url=base_url,
                            catalog=catalog))
    return due


def alert_labels(c: AlertmanagerChannel, state: AlertState, pushed: Pushed | None) -> dict[str, str]:
    """The alert's labels: those it was first sent with (with the severity as it is now), or, the
    first time, the incident's own (a clashing or unusable name renamed), the channel's, and ours."""
    if pushed is not None:
        return {**pushed.labels, "severity": state.severity.value}
    return {**safe_labels(state.labels, RESERVED), **c.labels, "alertname": c.alertname, "aiops_incident": str(state.incident_id),
            "severity": state.severity.value}


def _due(store: "Store", state: AlertState, labels: Mapping[str, str], *, ends_at: datetime, now: datetime,
         resolved: bool, base_url: str | None, catalog: "Catalog | None", remember: bool = True) -> Due:
    summary = build(store, state.incident_id, base_url=base_url, catalog=catalog)
    annotations = {"summary": clean(summary.title), "description": _cut(clean(
        status_line(summary.incident) + "\nRoot cause: " + (root_cause_line(summary) or "-")))}
    if summary.url:
        annotations["incident_url"] = summary.url
    body = {"labels": dict(labels), "annotations": annotations, "startsAt": rfc3339(state.started_at),
            "endsAt": rfc3339(ends_at), "generatorURL": summary.url or ""}
    return Due(incident_id=state.incident_id, body=body,
               pushed=Pushed(labels=dict(labels), episode=state.episode, pushed_at=now, resolved=resolved)
               if remember else None)


def _cut(text: str) -> str:
    return text if len(text) <= ANNOTATION_CHARS else text[:ANNOTATION_CHARS - 1] + "…"


def _count(metrics: "Metrics | None", channel: str, outcome: str, n: int) -> None:
    if metrics is not None:
        metrics.notifications.labels(channel=channel, outcome=outcome).inc(n)


__all__ = ["Alertmanager", "due_alerts", "sync"]
