"""The outbox: an endpoint that is down loses nothing, a restart sends nothing twice, and a dead
endpoint never holds a cycle for long."""

from __future__ import annotations

import logging
import random
import socket
from datetime import timedelta

import pytest

from agent.notify import notify, notify_once
from agent.notify.delivery import backoff_s
from agent.store.outbox import OutboxStatus
from tests.notify.conftest import sample
from tests.notify.incident_data import T0, make_incident

NOW = T0 + timedelta(minutes=13)


def webhook_yaml(url: str, extra: str = "") -> str:
    return f"""
notify:
  channels:
    hook:
      type: webhook
      webhook_url: {url}
      timeout: 2s
{extra}
  routes:
    - channels: [hook]
"""


def test_an_opened_incident_is_posted_with_title_and_link(notify_ctx, webhook):
    ctx = notify_ctx(webhook_yaml(webhook.url()))
    incident = make_incident(ctx.store, with_hits=False)
    result = notify_once(ctx, now=NOW)
    assert (result.sent, result.failed) == (1, 0)
    [request] = webhook.requests
    body = request.json()
    assert body["event"] == "opened" and body["incident_id"] == incident.id
    assert body["title"] == "http_request_duration_seconds 4.2x expected on service=api, instance=web-1 (+1 more signal)"
    assert body["url"] == f"http://aiops.example:9847/incidents/{incident.id}"
    assert body["severity"] == "critical" and body["labels"] == {"service": "api", "instance": "web-1"}
    assert body["dedup_key"] == f"hook:{body['event_id']}"
    assert request.headers["idempotency-key"] == body["dedup_key"]
    assert request.headers["content-type"] == "application/json"
    [row] = ctx.store.outbox.items()
    assert (row.status, row.attempts, row.sent_at) == (OutboxStatus.SENT, 1, NOW)
    assert sample(ctx, "aiops_notifications_total", channel="hook", outcome="sent") == 1.0
    assert sample(ctx, "aiops_outbox_pending") == 0.0


def test_the_pipeline_stage_returns_what_went_out(notify_ctx, webhook):
    ctx = notify_ctx(webhook_yaml(webhook.url()))
    make_incident(ctx.store, with_hits=False)
    assert notify(ctx, NOW) == 1
    assert notify(ctx, NOW + timedelta(minutes=1)) == 0
    assert len(webhook.requests) == 1


def test_endpoint_down_then_up_across_a_restart_delivers_exactly_once(notify_ctx, webhook):
    yaml = webhook_yaml(webhook.url())
    first = notify_ctx(yaml)
    make_incident(first.store, with_hits=False)
    webhook.stop()
    result = notify_once(first, now=NOW)
    assert (result.sent, result.failed) == (0, 1)
    [row] = first.store.outbox.items()
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.PENDING, 1, "connection refused")
    assert NOW + timedelta(seconds=24) <= row.next_attempt_at <= NOW + timedelta(seconds=36)
    assert sample(first, "aiops_outbox_pending") == 1.0
    assert sample(first, "aiops_notifications_total", channel="hook", outcome="failed") == 1.0
    first.store.close()

    webhook.start()  # the endpoint comes back on the same port; the agent restarts
    second = notify_ctx(yaml)
    assert notify_once(second, now=NOW + timedelta(seconds=5)).sent == 0  # backoff not over yet
    assert webhook.requests == []
    assert notify_once(second, now=NOW + timedelta(seconds=40)).sent == 1
    assert notify_once(second, now=NOW + timedelta(seconds=90)).sent == 0
    second.store.close()

    third = notify_ctx(yaml)  # and once more: nothing is queued or sent again
    assert notify_once(third, now=NOW + timedelta(minutes=5)).sent == 0
    assert len(webhook.requests) == 1
    [row] = third.store.outbox.items()
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    actions = [e.action for e in third.store.audit_entries() if e.action.startswith("notification.")]
    assert actions == ["notification.queued", "notification.failed", "notification.sent"]


def test_server_errors_back_off_exponentially_then_deliver(notify_ctx, webhook):
    ctx = notify_ctx(webhook_yaml(webhook.url(), "  retry_initial: 10s\n  retry_max: 30s"))
    make_incident(ctx.store, with_hits=False)
    webhook.fail_next(3, status=503)
    now = NOW
    waits = []
    for _ in range(3):
        assert notify_once(ctx, now=now).failed == 1
        [row] = ctx.store.outbox.items()
        assert row.last_error == "answered HTTP 503"
        waits.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    assert 8 <= waits[0] <= 12 and 16 <= waits[1] <= 24 and 24 <= waits[2] <= 36  # 10, 20, capped at 30
    assert notify_once(ctx, now=now).sent == 1
    assert len(webhook.refused) == 3 and len(webhook.requests) == 1


def test_backoff_doubles_and_is_capped():
    rng = random.Random(7)
    waits = [backoff_s(n, initial_s=30, max_s=3600, rng=rng) for n in range(1, 10)]
    for n, wait in enumerate(waits, 1):
        base = min(3600, 30 * 2 ** (n - 1))
        assert 0.8 * base <= wait <= 1.2 * base


def test_a_notification_still_failing_after_give_up_after_expires(notify_ctx, webhook):
    ctx = notify_ctx(webhook_yaml(webhook.url(), "  give_up_after: 1h"))
    make_incident(ctx.store, with_hits=False)
    webhook.stop()
    assert notify_once(ctx, now=NOW).failed == 1
    result = notify_once(ctx, now=NOW + timedelta(hours=1, seconds=1))
    assert (result.failed, result.expired) == (0, 1)
    [row] = ctx.store.outbox.items()
    assert (row.status, row.attempts) == (OutboxStatus.EXPIRED, 2)
    assert sample(ctx, "aiops_notifications_total", channel="hook", outcome="expired") == 1.0
    assert sample(ctx, "aiops_outbox_pending") == 0.0


def test_events_are_queued_once_per_channel_even_when_runs_overlap(notify_ctx, webhook):
    ctx = notify_ctx(webhook_yaml(webhook.url()))
    make_incident(ctx.store, with_hits=False)
    from agent.notify.channels import build_channels
    from agent.notify.delivery import enqueue

    channels = build_channels(ctx.config.notify.channels)
    assert enqueue(ctx.store, ctx.config.notify, channels, now=NOW, base_url=None) == 1
    ctx.store.conn.execute("DELETE FROM notify_cursor")  # as if the cursor had not been moved
    assert enqueue(ctx.store, ctx.config.notify, channels, now=NOW, base_url=None) == 0
    assert len(ctx.store.outbox.items()) == 1


@pytest.fixture
def black_hole():
    """A port that accepts connections and never answers (a hung endpoint)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


def test_a_hung_endpoint_costs_one_timeout_per_cycle(notify_ctx, webhook, black_hole):
    ctx = notify_ctx(f"""
notify:
  channels:
    hung: {{type: webhook, webhook_url: "{black_hole}", timeout: 0.3s}}
    hook: {{type: webhook, webhook_url: "{webhook.url()}"}}
  routes:
    - channels: [hung, hook]
""")
    for service in ("a", "b", "c", "d", "e"):
        make_incident(ctx.store, labels={"service": service}, with_hits=False)
    result = notify_once(ctx, now=NOW)
    assert (result.sent, result.failed, result.deferred) == (5, 1, 4)
    assert len(webhook.requests) == 5
    hung = ctx.store.outbox.items(status=OutboxStatus.PENDING)
    assert len(hung) == 5 and [r.attempts for r in hung] == [1, 0, 0, 0, 0]
    assert hung[0].last_error == "no answer within 0.3s"


def test_the_cycle_budget_bounds_delivery_time(notify_ctx, black_hole):
    ctx = notify_ctx(f"""
notify:
  cycle_budget: 0.5s
  channels:
    h1: {{type: webhook, webhook_url: "{black_hole}", timeout: 0.4s}}
    h2: {{type: webhook, webhook_url: "{black_hole}", timeout: 0.4s}}
    h3: {{type: webhook, webhook_url: "{black_hole}", timeout: 0.4s}}
  routes:
    - channels: [h1, h2, h3]
""")
    make_incident(ctx.store, with_hits=False)
    result = notify_once(ctx, now=NOW)
    assert result.failed == 2 and result.deferred == 1  # 0.4 s + the 0.1 s left, then nothing


def test_secrets_in_webhook_urls_never_reach_logs_or_the_outbox(notify_ctx, caplog):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{port.getsockname()[1]}/services/T000/B000/s3cr3t-t0ken"
    port.close()
    ctx = notify_ctx(webhook_yaml(url))
    make_incident(ctx.store, with_hits=False)
    with caplog.at_level(logging.DEBUG):
        assert notify_once(ctx, now=NOW).failed == 1
    assert "s3cr3t-t0ken" not in caplog.text
    assert "event=notify.failed channel=hook incident=1 kind=opened attempts=1" in caplog.text
    [row] = ctx.store.outbox.items()
    assert row.last_error == "connection refused"
    assert all("s3cr3t" not in str(e.details) for e in ctx.store.audit_entries())


def test_turned_off_nothing_is_sent_and_the_outbox_is_kept(notify_ctx, webhook):
    on = webhook_yaml(webhook.url())
    ctx = notify_ctx(on)
    make_incident(ctx.store, with_hits=False)
    webhook.stop()
    assert notify_once(ctx, now=NOW).failed == 1
    webhook.start()
    off = notify_ctx(on.replace("notify:\n", "notify:\n  enabled: false\n"))
    make_incident(off.store, labels={"service": "billing"}, with_hits=False)
    result = notify_once(off, now=NOW + timedelta(hours=1))
    assert (result.sent, result.failed) == (0, 0)
    assert webhook.requests == [] and len(off.store.outbox.items()) == 1  # the second event was passed over
    assert notify_once(notify_ctx(on), now=NOW + timedelta(hours=1)).sent == 1
    assert [b["labels"] for b in webhook.bodies()] == [{"service": "api", "instance": "web-1"}]


def test_a_row_claimed_by_another_agent_is_not_sent_again(notify_ctx, webhook):
    yaml = webhook_yaml(webhook.url())
    daemon, once = notify_ctx(yaml), notify_ctx(yaml)
    make_incident(daemon.store, with_hits=False)
    from agent.notify.channels import build_channels
    from agent.notify.delivery import enqueue

    enqueue(daemon.store, daemon.config.notify, build_channels(daemon.config.notify.channels), now=NOW,
            base_url=None)
    [row] = daemon.store.outbox.due(now=NOW)
    assert daemon.store.outbox.claim(row.id, now=NOW, lease_until=NOW + timedelta(minutes=5))
    assert notify_once(once, now=NOW + timedelta(seconds=1)).sent == 0  # the other agent holds it
    assert webhook.requests == []
    # the holder died mid-attempt: after the lease the row is due again and goes out once
    assert notify_once(once, now=NOW + timedelta(minutes=5)).sent == 1
    assert len(webhook.requests) == 1
