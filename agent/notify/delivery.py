"""Two halves of the notify stage: ``enqueue`` turns new timeline events into outbox rows, and
``deliver`` sends the rows that are due.

Enqueueing is idempotent (one row per channel and event, by ``dedup_key``) and moves the cursor
in the same transaction, so a crash between cycles loses and repeats nothing. Delivery is
bounded: each attempt has the channel's timeout clipped to what is left of ``cycle_budget``,
and a channel that fails once is not tried again in the same cycle, so one dead endpoint costs a
cycle at most one timeout.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from agent.config.notify import NotifyConfig
from agent.flow.incidents import Incident, Severity
from agent.incidents.summary import CHANGES_LOOKBACK_S
from agent.log import kv
from agent.notify.channels import Channel, DeliveryError
from agent.notify.messages import notify_kind, payload_for, quiet_for_pagers
from agent.notify.routing import channels_for
from agent.store.outbox import NewNotification, OutboxItem, OutboxStatus

if TYPE_CHECKING:
    from agent.incidents.catalog import Catalog
    from agent.metrics import Metrics
    from agent.store import Store

log = logging.getLogger(__name__)

EVENT_BATCH = 500
MAX_EVENT_BATCHES = 10  # per cycle; the rest waits for the next cycle
LEASE = timedelta(minutes=5)  # a claimed row is retried after this if its attempt never ended


class Outcome(StrEnum):
    """What one delivery attempt came to (the ``outcome`` label of ``aiops_notifications_total``)."""

    SENT = "sent"
    FAILED = "failed"  # retried later
    EXPIRED = "expired"  # failed past ``give_up_after``: not retried


def backoff_s(attempts: int, *, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Wait after the ``attempts``-th failure: initial, doubling, capped at ``max_s``, ±20 % jitter
    (so channels that failed together do not retry together)."""
    base = min(max_s, initial_s * 2 ** max(0, attempts - 1))
    return base * (rng or random).uniform(0.8, 1.2)


def enqueue(store: "Store", config: NotifyConfig, channels: Mapping[str, Channel], *, now: datetime,
            base_url: str | None, catalog: "Catalog | None" = None, lookback_s: float = CHANGES_LOOKBACK_S) -> int:
    """Write an outbox row per routed channel for every timeline event past the cursor; returns
    the rows added. Events older than ``give_up_after`` are passed over (not worth sending)."""
    added = 0
    oldest = now - timedelta(seconds=config.give_up_after)
    for _ in range(MAX_EVENT_BATCHES):
        cursor = store.outbox.cursor()
        events = store.events_since(cursor, limit=EVENT_BATCH)
        if not events:
            break
        incidents: dict[int, Incident | None] = {}
        payloads: dict[int, dict] = {}
        items: list[NewNotification] = []
        for event in events:
            kind = notify_kind(event.kind)
            if kind is None or event.ts < oldest:
                continue
            if event.incident_id not in incidents:
                incidents[event.incident_id] = store.get_incident(event.incident_id)
            incident = incidents[event.incident_id]
            if incident is None:
                continue
            severity = Severity(str((event.details or {}).get("severity") or incident.severity.value))
            quiet = quiet_for_pagers(event)
            for name in channels_for(config, kind, severity, incident.labels):
                channel = channels.get(name)
                if channel is None or not channel.accepts(event.kind):
                    continue
                if event.id not in payloads:
                    payloads[event.id] = payload_for(store, event, incident, base_url=base_url, catalog=catalog,
                                                     lookback_s=lookback_s)
                status = OutboxStatus.SILENCED if quiet and channel.paging else OutboxStatus.PENDING
                items.append(NewNotification(channel=name, incident_id=incident.id, event=event.kind,
                                             dedup_key=f"{name}:{event.id}", payload=payloads[event.id],
                                             status=status))
        added += store.outbox.enqueue(items, cursor=events[-1].id, now=now)
        if len(events) < EVENT_BATCH:
            break
    return added


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivered:
    sent: int
    failed: int
    expired: int
    deferred: int  # due, but left for the next cycle (budget spent or its channel failed)


def deliver(store: "Store", config: NotifyConfig, channels: Mapping[str, Channel], *, now: datetime,
            metrics: "Metrics | None" = None, rng: random.Random | None = None,
            monotonic: Callable[[], float] = time.monotonic) -> Delivered:
    """Send what is due, oldest first, within ``config.cycle_budget`` seconds."""
    deadline = monotonic() + config.cycle_budget
    down: set[str] = set()
    held: set[tuple[str, int | None]] = set()  # channel and incident with an unsent older row
    sent = failed = expired = deferred = 0
    for item in store.outbox.due(now=now, limit=config.batch):
        left = deadline - monotonic()
        if item.channel in down or (item.channel, item.incident_id) in held or left <= 0.05:
            held.add((item.channel, item.incident_id))
            deferred += 1
            continue
        channel = channels.get(item.channel)
        # Two agents on one store (the daemon and `aiops once`) never send the same row together.
        if not store.outbox.claim(item.id, now=now, lease_until=now + LEASE):
            continue
        try:
            if channel is None:
                raise DeliveryError(item.channel, "is not configured (any more)")
            channel.send(item, timeout_s=min(channel.timeout_s, left))
        except DeliveryError as exc:
            down.add(item.channel)
            held.add((item.channel, item.incident_id))
            outcome = _failed(store, config, item, exc, now=now, rng=rng)
            failed += outcome is Outcome.FAILED
            expired += outcome is Outcome.EXPIRED
            _count(metrics, item.channel, outcome)
            continue
        store.outbox.mark_sent(item.id, now=now)
        sent += 1
        _count(metrics, item.channel, Outcome.SENT)
        log.info(kv("notify.sent", channel=item.channel, incident=item.incident_id, kind=item.event,
                    attempts=item.attempts + 1))
    return Delivered(sent=sent, failed=failed, expired=expired, deferred=deferred)


def _failed(store: "Store", config: NotifyConfig, item: OutboxItem, exc: DeliveryError, *, now: datetime,
            rng: random.Random | None) -> Outcome:
    attempts = item.attempts + 1
    if now - item.created_at >= timedelta(seconds=config.give_up_after):
        store.outbox.mark_failed(item.id, error=exc.problem, retry_at=None, now=now)
        log.warning(kv("notify.expired", channel=item.channel, incident=item.incident_id, kind=item.event,
                       attempts=attempts, error=exc.problem))
        return Outcome.EXPIRED
    wait = backoff_s(attempts, initial_s=config.retry_initial, max_s=config.retry_max, rng=rng)
    if exc.retry_after_s is not None:
        wait = max(wait, min(exc.retry_after_s, config.retry_max))
    store.outbox.mark_failed(item.id, error=exc.problem, retry_at=now + timedelta(seconds=wait), now=now)
    log.warning(kv("notify.failed", channel=item.channel, incident=item.incident_id, kind=item.event,
                   attempts=attempts, retry_in_s=round(wait, 1), error=exc.problem))
    return Outcome.FAILED


def _count(metrics: "Metrics | None", channel: str, outcome: Outcome) -> None:
    if metrics is not None:
        metrics.notifications.labels(channel=channel, outcome=outcome).inc()
