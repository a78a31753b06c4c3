"""The notify section: channel types, routes naming channels, secrets kept secret."""

from __future__ import annotations

import pytest

from agent.config import load_config, parse_config
from agent.config.notify import AlertmanagerChannel, EmailChannel, PagerDutyChannel, SlackChannel, WebhookChannel
from agent.errors import ConfigError
from tests.conftest import REPO


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, name="agent.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_example_config_defines_every_channel_type():
    notify = load_config(REPO / "config" / "agent.example.yaml").notify
    kinds = {type(c) for c in notify.channels.values()}
    assert kinds == {WebhookChannel, SlackChannel, PagerDutyChannel, EmailChannel, AlertmanagerChannel}
    assert all(set(route.channels) <= set(notify.channels) for route in notify.routes)
    assert notify.channels["pager"].paging is True and notify.channels["chat"].paging is False


def test_a_route_naming_an_unknown_channel_is_refused():
    assert problems("""
notify:
  channels:
    hook: {type: webhook, webhook_url: "http://127.0.0.1:1/"}
  routes:
    - channels: [hook, pagr]
""") == ["agent.yaml: notify: expected routes[0].channels to name a channel (hook), found 'pagr'"]


def test_unknown_events_and_bad_addresses_are_refused():
    assert problems("""
notify:
  channels:
    mail: {type: email, host: 127.0.0.1, to: ["ops@example.com, evil@example.com"]}
  routes:
    - channels: [mail]
      events: [opened, exploded]
""") == [
        "agent.yaml: notify.channels.mail.to: expected mail addresses like ops@example.com, "
        "found 'ops@example.com, evil@example.com'",
        "agent.yaml: notify.routes[0].events: expected events among opened, acknowledged, resolved, reopened, "
        "escalated, remediation, found 'exploded'",
    ]


def test_secrets_are_secret_and_can_come_from_files(tmp_path):
    key = tmp_path / "pd.key"
    key.write_text("pd-routing-key-from-file\n")
    key.chmod(0o600)
    notify = parse_config(f"""
notify:
  channels:
    pager: {{type: pagerduty, routing_key_file: "{key}"}}
    chat: {{type: slack, webhook_url: "https://hooks.example/services/T/B/t0ken"}}
""").notify
    assert notify.channels["pager"].routing_key.get_secret_value() == "pd-routing-key-from-file"
    assert "pd-routing-key" not in repr(notify) and "t0ken" not in repr(notify)


def test_an_alertmanager_channel_names_its_problems():
    assert problems("""
notify:
  channels:
    am: {type: alertmanager, url: "127.0.0.1:9093", paging: true, labels: {severity: page}}
""") == [
        "agent.yaml: notify.channels.am.paging: expected False, found true",
        "agent.yaml: notify.channels.am.url: expected an http:// or https:// URL, found '127.0.0.1:9093'",
        "agent.yaml: notify.channels.am.labels: expected label names other than alertname, severity and "
        "aiops_incident, made of letters, digits and _, found 'severity'",
    ]
    assert problems("""
notify:
  channels:
    am: {type: alertmanager, url: "http://127.0.0.1:9093", bearer_token: t, username: u}
""") == ["agent.yaml: notify.channels.am: expected either bearer_token or username/password, found both"]
