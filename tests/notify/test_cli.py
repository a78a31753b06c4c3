"""``aiops notify outbox`` and ``aiops notify test CHANNEL`` against real servers."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli.notify import notify_group


def run(write_config, tmp_path, text: str, *args: str):
    path = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\n" + text)
    return CliRunner().invoke(notify_group, [*args, "--config", str(path)])


def test_notify_test_sends_through_the_channel(write_config, tmp_path, webhook, pagerduty):
    text = f"""
notify:
  channels:
    hook: {{type: webhook, webhook_url: "{webhook.url()}"}}
    pd: {{type: pagerduty, routing_key: t3st-k3y, url: "{pagerduty.url()}"}}
"""
    result = run(write_config, tmp_path, text, "test", "hook")
    assert (result.exit_code, result.output) == (0, "sent a test message through hook\n")
    [body] = webhook.bodies()
    assert (body["title"], body["event"]) == ("aiops-agent test notification", "opened")
    assert run(write_config, tmp_path, text, "test", "pd").exit_code == 0
    assert pagerduty.actions() == [("trigger", "test"), ("resolve", "test")]
    assert pagerduty.incidents == {"test": "resolved"}


def test_notify_test_fires_and_resolves_a_test_alert_in_alertmanager(write_config, tmp_path, webhook):
    text = f"""
notify:
  channels:
    am: {{type: alertmanager, url: "{webhook.url('')}", labels: {{team: payments}}}}
"""
    result = run(write_config, tmp_path, text, "test", "am")
    assert (result.exit_code, result.output) == (0, "sent a test message through am\n")
    [fired], [resolved] = webhook.bodies()
    assert [r.path for r in webhook.requests] == ["/api/v2/alerts", "/api/v2/alerts"]
    assert fired["labels"] == resolved["labels"] == {"team": "payments", "alertname": "AiopsIncident",
                                                     "aiops_incident": "test", "severity": "info"}
    assert fired["endsAt"] > fired["startsAt"] and resolved["endsAt"] == resolved["startsAt"]


def test_notify_test_reports_failures_and_unknown_channels(write_config, tmp_path, webhook):
    text = f"""
notify:
  channels:
    hook: {{type: webhook, webhook_url: "{webhook.url()}"}}
"""
    webhook.stop()
    result = run(write_config, tmp_path, text, "test", "hook")
    assert (result.exit_code, result.output) == (1, "channel hook: connection refused\n")
    result = run(write_config, tmp_path, text, "test", "chat")
    assert (result.exit_code, result.output) == (1, "no channel 'chat' in notify.channels (configured: hook)\n")


def test_notify_outbox_lists_rows(write_config, tmp_path, webhook):
    from datetime import timedelta

    from agent.config import load_config
    from agent.context import Context
    from agent.notify import notify_once
    from tests.notify.incident_data import T0, make_incident

    text = f"""
http:
  public_url: http://aiops.example:9847
notify:
  channels:
    hook: {{type: webhook, webhook_url: "{webhook.url()}"}}
  routes:
    - channels: [hook]
"""
    assert run(write_config, tmp_path, text, "outbox").output == "outbox empty\n"
    ctx = Context.create(load_config(write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\n" + text)))
    make_incident(ctx.store, with_hits=False)
    webhook.stop()
    notify_once(ctx, now=T0 + timedelta(minutes=13))
    ctx.store.close()
    result = run(write_config, tmp_path, text, "outbox", "--status", "pending")
    assert result.exit_code == 0
    [line] = result.output.splitlines()
    assert line.startswith("1      pending  hook             #1     opened        attempts=1 next=2026-11-24 14:13:")
    assert line.endswith(" connection refused")
