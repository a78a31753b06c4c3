"""Routing incident events to channels by event kind, severity and labels."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.flow.incidents import Severity
from agent.notify.routing import channels_for

CONFIG = parse_config("""
notify:
  channels:
    pager: {type: pagerduty, routing_key: k3y-k3y-k3y}
    chat: {type: slack, webhook_url: "http://127.0.0.1:1/slack"}
    hook: {type: webhook, webhook_url: "http://127.0.0.1:1/hook"}
    mail: {type: email, host: 127.0.0.1, to: [ops@example.com]}
  routes:
    - channels: [pager, chat]
      min_severity: critical
      labels: {service: payments}
      events: [opened, resolved, acknowledged, reopened, escalated]
      stop: true
    - channels: [chat, hook]
      min_severity: warning
    - channels: [mail]
      labels: {team: "*"}
""").notify


@pytest.mark.parametrize(("kind", "severity", "labels", "expected"), [
    ("opened", Severity.CRITICAL, {"service": "payments"}, ["pager", "chat"]),  # stop: true ends the search
    ("remediation", Severity.CRITICAL, {"service": "payments"}, ["chat", "hook"]),  # first route takes no remediation
    ("opened", Severity.WARNING, {"service": "payments"}, ["chat", "hook"]),
    ("opened", Severity.CRITICAL, {"service": "api"}, ["chat", "hook"]),
    ("opened", Severity.INFO, {"service": "api"}, []),
    ("opened", Severity.INFO, {"service": "api", "team": "core"}, ["mail"]),
    ("resolved", Severity.WARNING, {"team": ""}, ["chat", "hook", "mail"]),
])
def test_routes_pick_channels(kind, severity, labels, expected):
    assert channels_for(CONFIG, kind, severity, labels) == expected


def test_no_routes_send_nothing():
    config = parse_config("notify:\n  channels:\n    hook: {type: webhook, webhook_url: 'http://127.0.0.1:1/'}\n").notify
    assert channels_for(config, "opened", Severity.CRITICAL, {"service": "api"}) == []
