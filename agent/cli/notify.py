"""``aiops notify``: look at the outbox, and send a test message through a channel."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from agent.cli.common import AiopsGroup, format_option, output_option, with_context
from agent.errors import AiopsError
from agent.notify.channels import Alertmanager, PagerDuty, build_channels
from agent.store.outbox import OutboxItem, OutboxStatus


class UnknownChannelError(AiopsError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no channel {name!r} in notify.channels (configured: {', '.join(known) or 'none'})")


@click.group("notify", cls=AiopsGroup)
def notify_group() -> None:
    """Notifications: the outbox and channel tests.

    Example: aiops notify outbox --status pending
    """


@notify_group.command("outbox")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]), default=None,
              help="Only rows in this state.")
@format_option("text", "json")
@output_option
@with_context
def outbox_command(ctx: Any, status: str | None, fmt: str) -> None:
    """List queued notifications, oldest first: state, attempts, next attempt, last error.

    Example: aiops notify outbox --status pending --format json
    """
    rows = ctx.store.outbox.items(status=OutboxStatus(status) if status else None)
    if fmt == "json":
        click.echo(json.dumps([_row_dict(row) for row in rows], indent=2))
        return
    for row in rows:
        nxt = row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") if row.status is OutboxStatus.PENDING else "-"
        click.echo(f"{row.id:<6} {row.status.value:<8} {row.channel:<16} #{row.incident_id or '-':<5} "
                   f"{row.event:<13} attempts={row.attempts} next={nxt} {row.last_error or ''}".rstrip())
    if not rows:
        click.echo("outbox empty")


@notify_group.command("test")
@click.argument("channel")
@with_context
def test_command(ctx: Any, channel: str) -> None:
    """Send a test message through CHANNEL now (not through the outbox); exits 1 if it fails.
    For PagerDuty and Alertmanager, a test alert is triggered and resolved at once.

    Example: aiops notify test chat
    """
    channels = build_channels(ctx.config.notify.channels)
    if channel not in channels:
        raise UnknownChannelError(channel, sorted(channels))
    now = ctx.clock()
    target = channels[channel]
    events = ["opened", "resolved"] if isinstance(target, (PagerDuty, Alertmanager)) else ["opened"]
    for event in events:
        target.send(_test_item(channel, event, now, ctx.config.http.base_url), timeout_s=target.timeout_s)
    click.echo(f"sent a test message through {channel}")


def _row_dict(row: OutboxItem) -> dict[str, Any]:
    return {"id": row.id, "status": row.status.value, "channel": row.channel, "incident_id": row.incident_id,
            "event": row.event, "attempts": row.attempts, "created_at": row.created_at.isoformat(),
            "next_attempt_at": row.next_attempt_at.isoformat() if row.status is OutboxStatus.PENDING else None,
            "sent_at": row.sent_at.isoformat() if row.sent_at else None, "last_error": row.last_error}


def _test_item(channel: str, event: str, now: datetime, base_url: str) -> OutboxItem:
    payload = {"version": 1, "event": event, "event_id": 0, "event_message": "a test of this notification channel",
               "event_at": now.isoformat(), "actor": "cli", "incident_id": "test",
               "title": "aiops-agent test notification", "url": f"{base_url}/incidents", "severity": "info",
               "status": "resolved" if event == "resolved" else "open", "labels": {}, "started_at": now.isoformat(),
               "root_cause": None, "text": "This is a test notification from aiops-agent.\n"}
    return OutboxItem(id=0, channel=channel, incident_id=None, event=event, dedup_key=f"{channel}:test",
                      payload=payload, created_at=now, next_attempt_at=now, attempts=0, status=OutboxStatus.PENDING)


commands: tuple[click.Command, ...] = (notify_group,)
