"""Stage 5: turn incident timeline events into notifications and deliver them from the outbox.

Decoupled from correlation: the stage reads ``incident_events`` past its own cursor, routes each
opened, acknowledged, resolved, reopened, escalated and remediation event to channels by
severity and labels (``notify.routes``), writes one outbox row per channel, then delivers the
rows that are due with retries and exponential backoff. Paging channels stay quiet for silenced
incidents and flapping reopens; those rows are recorded as ``silenced``. Alertmanager channels
keep each routed incident as an alert there instead (``agent.notify.alertmanager``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from agent.incidents.catalog import catalog_of
from agent.log import kv
from agent.notify.alertmanager import sync
from agent.notify.channels import build_channels
from agent.notify.delivery import Delivered, deliver, enqueue

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)

__all__ = ["Delivered", "notify", "notify_once"]


def notify(ctx: "Context", now: datetime) -> int:
    """Queue the timeline's new events and deliver what is due at ``now``; returns how many went out."""
    return notify_once(ctx, now=now).sent


def notify_once(ctx: "Context", *, now: datetime | None = None) -> Delivered:
    now = now or ctx.clock()
    config = ctx.config.notify
    channels = build_channels(config.channels) if config.enabled else {}
    catalog = catalog_of(ctx.config)
    queued = enqueue(ctx.store, config, channels, now=now, base_url=ctx.config.http.base_url,
                     catalog=catalog, lookback_s=ctx.config.incidents.changes_lookback)
    if not config.enabled:  # the outbox keeps what it has until notifications are turned back on
        result = Delivered(sent=0, failed=0, expired=0, deferred=0)
    else:
        result = deliver(ctx.store, config, channels, now=now, metrics=ctx.metrics)
        # Alertmanager keeps alerts, not messages: its channels are kept in step with the incidents.
        sync(ctx.store, config, channels, now=now, interval_s=ctx.config.agent.interval,
             base_url=ctx.config.http.base_url, catalog=catalog, metrics=ctx.metrics)
    pending = ctx.store.outbox.count_pending()
    ctx.metrics.outbox_pending.set(pending)
    if queued or result.sent or result.failed or result.expired:
        log.info(kv("notify.done", queued=queued, sent=result.sent, failed=result.failed, expired=result.expired,
                    deferred=result.deferred, pending=pending))
    return result
