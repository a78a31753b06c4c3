"""Alertmanager as a notification channel, against the real Debian ``prometheus-alertmanager``
routing to a recording receiver: an incident fires there within the cycle it opens, is re-sent
before it would expire, resolves within the cycle it resolves; a silence set in Alertmanager
keeps its page from the receiver; a severity rise swaps the alert; a refused push is retried.

Alertmanager keeps real time: the agent's clock runs a minute behind the wall, so every time the
agent sends is already past for Alertmanager."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import requests

from agent.clock import ManualClock, utcnow
from agent.flow.incidents import IncidentStatus, Severity
from agent.flow.samples import Samples
from agent.incidents.correlator import Correlator
from agent.incidents.onset import with_onsets
from agent.incidents.summary import title_of
from agent.notify import notify_once
from tests.conftest import wait_until
from tests.fixtures.alertmanager import needs_alertmanager
from tests.incidents.conftest import hit
from tests.notify.conftest import sample

CHANNEL = """
notify:
  channels:
    am: {{type: alertmanager, url: "{url}", resend: 30s, labels: {{team: payments}}}}
  routes:
    - channels: [am]
"""


def start(notify_ctx, url: str, at: datetime):
    ctx = notify_ctx(CHANNEL.format(url=url))
    ctx.clock = ManualClock(at)
    return ctx


def open_incident(ctx, at: datetime, **labels: str) -> int:
    correlator = Correlator(ctx.store, ctx.config.incidents, interval_s=ctx.config.agent.interval)
    found = hit("http_request_duration_seconds", **labels)
    return correlator.ingest(with_onsets([replace(found, ts=at)], Samples.empty(), interval_s=60), now=at).opened[0]


def alerts(manager) -> dict[str, dict]:
    """Alertmanager's alerts (every state) by incident id."""
    answer = requests.get(f"{manager.url}/api/v2/alerts", timeout=10)
    assert answer.status_code == 200
    return {a["labels"]["aiops_incident"]: a for a in answer.json()}


def received(receiver) -> list[tuple[str, str]]:
    """(status, incident id) of every alert the receiver got from Alertmanager."""
    return [(a["status"], a["labels"]["aiops_incident"]) for body in receiver.bodies() for a in body["alerts"]]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@needs_alertmanager
@pytest.mark.slow
def test_an_incident_fires_is_kept_alive_and_resolves_in_a_real_alertmanager(notify_ctx, webhook,
                                                                            alertmanager_factory):
    manager = alertmanager_factory(webhook.url(), "receiver-token")
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    ctx = start(notify_ctx, manager.url, t0)
    incident_id = open_incident(ctx, t0, service="api", instance="web-1")

    notify_once(ctx, now=t0)  # the cycle it opened in
    alert = alerts(manager)[str(incident_id)]
    assert alert["status"]["state"] == "active"
    assert alert["labels"] == {"alertname": "AiopsIncident", "aiops_incident": str(incident_id), "severity": "warning",
                               "service": "api", "instance": "web-1", "team": "payments"}
    assert alert["annotations"]["summary"] == title_of(ctx.store, ctx.store.get_incident(incident_id))
    assert alert["annotations"]["incident_url"] == f"http://aiops.example:9847/incidents/{incident_id}"
    assert alert["annotations"]["description"].startswith("open · began ")
    assert when(alert["startsAt"]) == t0 - timedelta(seconds=30)  # the outage's start, not the push
    assert when(alert["endsAt"]) == t0 + timedelta(minutes=4)  # four cycles of 60 s ahead
    wait_until(lambda: ("firing", str(incident_id)) in received(webhook), timeout_s=30, message="the page")

    notify_once(ctx, now=t0 + timedelta(seconds=5))  # nothing due yet
    assert sample(ctx, "aiops_notifications_total", channel="am", outcome="sent") == 1
    notify_once(ctx, now=t0 + timedelta(seconds=31))  # re-sent before it expires
    assert when(alerts(manager)[str(incident_id)]["endsAt"]) == t0 + timedelta(seconds=31 + 240)
    assert sample(ctx, "aiops_notifications_total", channel="am", outcome="sent") == 2

    resolved_at = t0 + timedelta(seconds=40)
    ctx.store.transition_incident(incident_id, IncidentStatus.RESOLVED, actor="agent", reason="quiet",
                                  now=resolved_at, resolution="quiet")
    notify_once(ctx, now=resolved_at)  # the cycle it resolved in
    wait_until(lambda: ("resolved", str(incident_id)) in received(webhook), timeout_s=30, message="the resolution")
    assert ctx.store.pushed.get("am", incident_id).resolved
    notify_once(ctx, now=resolved_at + timedelta(minutes=5))  # nothing more to say
    assert sample(ctx, "aiops_notifications_total", channel="am", outcome="sent") == 3
    assert manager.metric("alertmanager_notifications_failed_total") == 0


@needs_alertmanager
@pytest.mark.slow
def test_a_silence_set_in_alertmanager_keeps_the_page_from_its_receiver(notify_ctx, webhook, alertmanager_factory):
    manager = alertmanager_factory(webhook.url(), "receiver-token")
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    silence = requests.post(f"{manager.url}/api/v2/silences", timeout=10, json={
        "matchers": [{"name": "service", "value": "api", "isRegex": False, "isEqual": True}],
        "startsAt": (t0 - timedelta(minutes=5)).isoformat(), "endsAt": (t0 + timedelta(hours=1)).isoformat(),
        "createdBy": "alice", "comment": "failover drill"}).json()["silenceID"]
    ctx = start(notify_ctx, manager.url, t0)
    silenced = open_incident(ctx, t0, service="api", instance="web-1")
    paged = open_incident(ctx, t0, service="web", instance="web-2")

    notify_once(ctx, now=t0)
    wait_until(lambda: ("firing", str(paged)) in received(webhook), timeout_s=30, message="the unsilenced page")
    assert ("firing", str(silenced)) not in received(webhook)
    state = alerts(manager)[str(silenced)]["status"]
    assert (state["state"], state["silencedBy"]) == ("suppressed", [silence])


@needs_alertmanager
@pytest.mark.slow
def test_a_severity_rise_resolves_the_old_alert_and_fires_the_new(notify_ctx, webhook, alertmanager_factory):
    manager = alertmanager_factory(webhook.url(), "receiver-token")
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    ctx = start(notify_ctx, manager.url, t0)
    incident_id = open_incident(ctx, t0, service="api")
    notify_once(ctx, now=t0)
    ctx.store.escalate_incident(incident_id, Severity.CRITICAL, actor="agent", reason="worse", now=t0)
    notify_once(ctx, now=t0 + timedelta(seconds=1))
    listed = requests.get(f"{manager.url}/api/v2/alerts", timeout=10).json()
    firing = [a["labels"]["severity"] for a in listed if a["status"]["state"] == "active"]
    assert firing == ["critical"]
    assert ctx.store.pushed.get("am", incident_id).labels["severity"] == "critical"


def test_a_push_alertmanager_refuses_is_counted_and_sent_again_next_cycle(notify_ctx, webhook):
    t0 = utcnow().replace(microsecond=0)
    ctx = start(notify_ctx, webhook.url(""), t0)
    incident_id = open_incident(ctx, t0, service="api")
    webhook.fail_next(1, status=503)
    notify_once(ctx, now=t0)
    assert sample(ctx, "aiops_notifications_total", channel="am", outcome="failed") == 1
    assert ctx.store.pushed.get("am", incident_id) is None
    notify_once(ctx, now=t0 + timedelta(seconds=10))
    [body] = webhook.bodies()
    assert webhook.requests[0].path == "/api/v2/alerts"
    assert [a["labels"]["aiops_incident"] for a in body] == [str(incident_id)]
    assert ctx.store.pushed.get("am", incident_id).pushed_at == t0 + timedelta(seconds=10)
    # nothing of it goes through the outbox
    assert ctx.store.outbox.items() == []
