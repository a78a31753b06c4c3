"""Each channel against a real server on loopback: Slack-compatible webhook, PagerDuty Events v2,
SMTP; paging channels stay quiet for silenced incidents and flapping reopens."""

from __future__ import annotations

from datetime import timedelta

from agent.flow.incidents import IncidentStatus, Matcher, MatchOp
from agent.notify import notify_once
from agent.store.outbox import OutboxStatus
from tests.notify.conftest import sample
from tests.notify.incident_data import HOSTILE, T0, make_incident

NOW = T0 + timedelta(minutes=13)
TITLE = "http_request_duration_seconds 4.2x expected on service=api, instance=web-1 (+1 more signal)"


def pagerduty_yaml(pagerduty, extra_channels: str = "", route_channels: str = "pd") -> str:
    return f"""
notify:
  channels:
    pd:
      type: pagerduty
      routing_key: R0UT1NGKEY0000000000000000000000
      url: {pagerduty.url()}
{extra_channels}
  routes:
    - channels: [{route_channels}]
"""


def test_slack_message_escapes_labels_and_links_the_incident(notify_ctx, webhook):
    ctx = notify_ctx(f"""
notify:
  channels:
    chat: {{type: slack, webhook_url: "{webhook.url('/services/T0/B0/xyz')}", channel: "#ops"}}
  routes:
    - channels: [chat]
""")
    labels = {**HOSTILE, "service": "<!channel> <http://evil|click>"}
    incident = make_incident(ctx.store, labels=labels, with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 1
    [body] = webhook.bodies()
    assert webhook.requests[0].path == "/services/T0/B0/xyz"
    assert body["channel"] == "#ops" and body["username"] == "aiops-agent"
    text = body["blocks"][0]["text"]["text"]
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert text.startswith(f"*[CRITICAL] opened #{incident.id}: http_request_duration_seconds 4.2x expected")
    assert f"<http://aiops.example:9847/incidents/{incident.id}|incident page>" in text
    # the only <…> left is our link: no @channel, no label-made link, no raw escape character
    assert [part.split(">")[0] for part in text.split("<")[1:]] == [
        f"http://aiops.example:9847/incidents/{incident.id}|incident page"]
    assert "&lt;!channel&gt; &lt;http://evil|click&gt;" in text
    assert text.splitlines()[-1].startswith("`instance=**web-1**[click](http://evil.example), service=&lt;!channel&gt;")
    assert text.splitlines()[-1].count("`") == 2
    assert "\x1b" not in text and "\\u001b" in text
    assert body["text"].endswith(f"<http://aiops.example:9847/incidents/{incident.id}|incident page>")


def test_pagerduty_trigger_acknowledge_resolve_share_the_incident_id(notify_ctx, pagerduty):
    ctx = notify_ctx(pagerduty_yaml(pagerduty))
    incident = make_incident(ctx.store, with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 1
    ctx.store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="alice", reason="on it",
                                  now=NOW + timedelta(minutes=1))
    ctx.store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="alice", reason="fixed",
                                  now=NOW + timedelta(minutes=2))
    assert notify_once(ctx, now=NOW + timedelta(minutes=3)).sent == 2
    key = str(incident.id)
    assert pagerduty.actions() == [("trigger", key), ("acknowledge", key), ("resolve", key)]
    assert pagerduty.incidents == {key: "resolved"}
    trigger = pagerduty.bodies()[0]
    assert trigger["routing_key"] == "R0UT1NGKEY0000000000000000000000"
    assert trigger["payload"]["summary"] == TITLE
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "web-1" and trigger["payload"]["component"] == "api"
    assert trigger["links"] == [{"href": f"http://aiops.example:9847/incidents/{key}", "text": "incident page"}]
    assert "payload" not in pagerduty.bodies()[1]


def test_pagerduty_429_is_retried_after_its_retry_after_and_order_is_kept(notify_ctx, pagerduty):
    ctx = notify_ctx(pagerduty_yaml(pagerduty))
    incident = make_incident(ctx.store, with_hits=False)
    ctx.store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="bob", reason="",
                                  now=NOW - timedelta(seconds=30))
    pagerduty.fail_next(1, status=429, headers={"Retry-After": "120"})
    result = notify_once(ctx, now=NOW)
    assert (result.sent, result.failed, result.deferred) == (0, 1, 1)  # acknowledge waits behind trigger
    trigger, ack = ctx.store.outbox.items()
    assert trigger.last_error == "answered HTTP 429"
    assert trigger.next_attempt_at >= NOW + timedelta(seconds=120)
    assert (ack.status, ack.attempts) == (OutboxStatus.PENDING, 0)
    assert notify_once(ctx, now=NOW + timedelta(seconds=60)).sent == 0
    assert notify_once(ctx, now=NOW + timedelta(seconds=150)).sent == 2
    assert pagerduty.actions() == [("trigger", str(incident.id)), ("acknowledge", str(incident.id))]
    assert pagerduty.incidents == {str(incident.id): "acknowledged"}


def test_pagerduty_server_error_then_recovery(notify_ctx, pagerduty):
    ctx = notify_ctx(pagerduty_yaml(pagerduty))
    make_incident(ctx.store, with_hits=False)
    pagerduty.fail_next(2, status=500)
    assert notify_once(ctx, now=NOW).failed == 1
    [row] = ctx.store.outbox.items()
    assert notify_once(ctx, now=row.next_attempt_at).failed == 1
    [row] = ctx.store.outbox.items()
    assert notify_once(ctx, now=row.next_attempt_at).sent == 1
    assert len(pagerduty.refused) == 2 and pagerduty.incidents == {"1": "triggered"}


def test_remediation_events_go_to_chat_but_not_to_pagerduty(notify_ctx, pagerduty, webhook):
    ctx = notify_ctx(pagerduty_yaml(pagerduty, f"    hook: {{type: webhook, webhook_url: \"{webhook.url()}\"}}",
                                    "pd, hook"))
    incident = make_incident(ctx.store, with_hits=False)
    ctx.store.add_incident_event(incident.id, kind="remediation", actor="remediator",
                                 message="restart-api applied and verified", now=NOW)
    ctx.store.add_incident_event(incident.id, kind="signal_added", actor="agent", message="another signal", now=NOW)
    assert notify_once(ctx, now=NOW).sent == 3
    assert [b["event"] for b in webhook.bodies()] == ["opened", "remediation"]
    assert pagerduty.actions() == [("trigger", str(incident.id))]


def test_silenced_incident_is_recorded_but_does_not_page(notify_ctx, pagerduty, webhook):
    ctx = notify_ctx(pagerduty_yaml(pagerduty, f"    hook: {{type: webhook, webhook_url: \"{webhook.url()}\"}}",
                                    "pd, hook"))
    ctx.store.add_silence([Matcher(name="service", op=MatchOp.EQUAL, value="api")], starts_at=T0,
                          ends_at=T0 + timedelta(hours=2), reason="maintenance", actor="alice", now=T0)
    make_incident(ctx.store, with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 1
    assert pagerduty.requests == []
    assert [b["event"] for b in webhook.bodies()] == ["opened"]
    statuses = {(r.channel, r.status) for r in ctx.store.outbox.items()}
    assert statuses == {("pd", OutboxStatus.SILENCED), ("hook", OutboxStatus.SENT)}
    assert sample(ctx, "aiops_outbox_pending") == 0.0


def test_a_flapping_reopen_does_not_page_again(notify_ctx, pagerduty, webhook):
    ctx = notify_ctx(pagerduty_yaml(pagerduty, f"    hook: {{type: webhook, webhook_url: \"{webhook.url()}\"}}",
                                    "pd, hook"))
    incident = make_incident(ctx.store, with_hits=False)
    ctx.store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="agent", reason="quiet",
                                  now=NOW, resolution="quiet")
    ctx.store.transition_incident(incident.id, IncidentStatus.OPEN, actor="agent", reason="recurred",
                                  now=NOW + timedelta(minutes=2), flapping=True)
    notify_once(ctx, now=NOW + timedelta(minutes=3))
    assert pagerduty.actions() == [("trigger", "1"), ("resolve", "1")]
    assert [b["event"] for b in webhook.bodies()] == ["opened", "resolved", "reopened"]


def test_email_is_sent_over_smtp_with_title_and_link(notify_ctx, smtp_server):
    ctx = notify_ctx(f"""
notify:
  channels:
    mail:
      type: email
      host: 127.0.0.1
      port: {smtp_server.port}
      from: aiops@example.com
      to: [oncall@example.com, sre@example.com]
  routes:
    - channels: [mail]
      min_severity: warning
""")
    incident = make_incident(ctx.store, labels={"service": "api", "instance": "web-1\r\nBcc: victim@example.com"},
                             with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 1
    [mail] = smtp_server.messages
    assert mail.mail_from == "aiops@example.com"
    assert mail.rcpt_to == ["oncall@example.com", "sre@example.com"]
    msg = mail.message
    assert msg["Subject"].startswith(f"[CRITICAL] opened #{incident.id}: http_request_duration_seconds 4.2x expected")
    assert msg["Bcc"] is None and "victim" not in str(msg["To"])
    [row] = ctx.store.outbox.items()
    assert msg["Message-ID"] == f"<mail.{row.dedup_key.split(':')[1]}.{row.created_at.timestamp():.0f}@aiops-agent>"
    body = msg.get_content()
    assert f"Incident page: http://aiops.example:9847/incidents/{incident.id}" in body
    assert "Root cause: http_errors_ratio on service=api" in body


def test_email_server_down_then_temporary_failure_then_delivered(notify_ctx, smtp_server):
    ctx = notify_ctx(f"""
notify:
  channels:
    mail: {{type: email, host: 127.0.0.1, port: {smtp_server.port}, to: [oncall@example.com]}}
  routes:
    - channels: [mail]
""")
    make_incident(ctx.store, with_hits=False)
    smtp_server.stop()
    assert notify_once(ctx, now=NOW).failed == 1
    [row] = ctx.store.outbox.items()
    assert row.last_error == "connection refused"
    smtp_server.start()
    smtp_server.fail_next(1, code=451)
    assert notify_once(ctx, now=row.next_attempt_at).failed == 1
    [row] = ctx.store.outbox.items()
    assert row.last_error == "SMTP server answered 451"
    assert notify_once(ctx, now=row.next_attempt_at).sent == 1
    assert len(smtp_server.messages) == 1


def test_severity_below_the_route_minimum_is_not_sent(notify_ctx, webhook):
    from agent.flow.incidents import Severity

    ctx = notify_ctx(f"""
notify:
  channels:
    hook: {{type: webhook, webhook_url: "{webhook.url()}"}}
  routes:
    - channels: [hook]
      min_severity: critical
""")
    make_incident(ctx.store, severity=Severity.WARNING, with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 0
    assert ctx.store.outbox.items() == [] and ctx.store.outbox.cursor() == 1


def test_an_escalation_to_critical_pages_an_incident_that_opened_as_warning(notify_ctx, pagerduty):
    from agent.flow.incidents import Severity

    ctx = notify_ctx(pagerduty_yaml(pagerduty).replace("    - channels: [pd]", "    - channels: [pd]\n      min_severity: critical"))
    incident = make_incident(ctx.store, severity=Severity.WARNING, with_hits=False)
    assert notify_once(ctx, now=NOW).sent == 0
    ctx.store.escalate_incident(incident.id, Severity.CRITICAL, actor="agent", reason="error ratio above SLO",
                                now=NOW + timedelta(minutes=1))
    assert notify_once(ctx, now=NOW + timedelta(minutes=2)).sent == 1
    [body] = pagerduty.bodies()
    assert (body["event_action"], body["dedup_key"], body["payload"]["severity"]) == ("trigger", "1", "critical")
    assert pagerduty.incidents == {"1": "triggered"}
