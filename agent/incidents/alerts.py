"""Prometheus Alertmanager webhook payloads (version 4) as hits and signal resolutions.

Alerts go through the same correlation as detector hits, under the same limit: what opens past
``incidents.max_new_per_cycle`` in a cycle goes into the storm incident. A body that says
Alertmanager truncated it (``truncatedAlerts``) is logged, counted and noted on the incidents it
touched.

A firing alert becomes a hit of detector ``alertmanager`` on the series
``ALERTS{alertname=…,fingerprint=…}`` and goes through the same correlation as detector hits.
Alerts with one fingerprint are one signal (within a body the last one wins; the fingerprint is
computed from the labels when the sender left it out), so a re-sent alert updates its signal
instead of adding one. A resolved alert resolves that signal;
when an incident has no unresolved signal left it resolves (resolution ``alert``), unless a
remediation ran and is not verified yet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.clock import EARLIEST
from agent.flow.incidents import EventKind
from agent.flow.samples import series_id
from agent.incidents.budget import BodyBudget, NewIncidentBudget
from agent.incidents.correlator import Correlator, Placed
from agent.incidents.lifecycle import try_resolve
from agent.incidents.rootcause import ALERT_DETECTOR
from agent.log import kv
from agent.store.incidents import signal_key
from detectors.base import Direction, Hit

if TYPE_CHECKING:
    from agent.context import Context
    from agent.store import Store

log = logging.getLogger(__name__)

_NO_OFFSET = timedelta(0)
MAX_VALUE_CHARS = 1024  # a label or annotation value is kept up to this length
CHUNK_ALERTS = 1000  # alerts placed in one transaction
MAX_TRUNCATION_EVENTS = 100  # incidents told that their group came truncated
SEVERITIES = {"critical": "critical", "page": "critical", "error": "critical", "warning": "warning",
              "warn": "warning", "info": "info", "none": "info"}


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @field_validator("labels", "annotations")
    @classmethod
    def _capped(cls, value: dict[str, str]) -> dict[str, str]:
        """Values past ``MAX_VALUE_CHARS`` are cut, and say so: a 1 MB label would make every page
        and message that shows it megabytes long."""
        if all(len(v) <= MAX_VALUE_CHARS for v in value.values()):
            return value  # nearly always: no copy (a webhook may hold 100,000 alerts)
        return {k: v if len(v) <= MAX_VALUE_CHARS else f"{v[:MAX_VALUE_CHARS]}…[truncated: {len(v)} characters]"
                for k, v in value.items()}

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC (Alertmanager always sends one; hand-written clients may not)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() == _NO_OFFSET:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @field_validator("ends_at")
    @classmethod
    def _no_end(cls, value: datetime | None) -> datetime | None:
        """An end before 1970 (Alertmanager's zero time, 0001-01-01, on a firing alert) is no end.
        Runs after ``_utc``: the time is aware by then."""
        return None if value is None or value < EARLIEST else value

    def within(self, now: datetime) -> "AlertPayload":
        """Times the store can keep: a start outside [1970, now] (Alertmanager's zero time
        0001-01-01 means unknown) is taken as ``now``; an end before 1970 is no end (read so);
        an end is clamped to [start, now]."""
        starts = self.starts_at if EARLIEST <= self.starts_at <= now else now
        ends = self.ends_at
        if ends is not None:
            ends = min(max(ends, starts), now)
        if starts == self.starts_at and ends == self.ends_at:
            return self  # nearly always: no copy
        return self.model_copy(update={"starts_at": starts, "ends_at": ends})


class WebhookPayload(BaseModel):
    """The body Alertmanager posts to a webhook receiver."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertPayload] = Field(min_length=1)


class MalformedPayload(ValueError):
    """Why a webhook body was refused; ``str()`` is the reason sent back with the 400."""


def parse_webhook(body: bytes) -> WebhookPayload:
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False)[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
        more = exc.error_count() - len(problems)
        raise MalformedPayload("; ".join(problems) + (f" (and {more} more)" if more > 0 else "")) from None


def fingerprint_of(alert: AlertPayload) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    body = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def alert_series_id(alert: AlertPayload) -> str:
    """``ALERTS{alertname="…",fingerprint="…"}``: the fingerprint is the alert's identity (the
    labels stay on the signal), so a sender's own dedup key holds even if a label changes."""
    return series_id("ALERTS", {"alertname": alert.labels.get("alertname", ""), "fingerprint": fingerprint_of(alert)})


def alert_hit(alert: AlertPayload) -> Hit:
    explanation = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    return Hit(series_id=alert_series_id(alert), detector=ALERT_DETECTOR, ts=alert.starts_at, value=1.0, score=1.0,
               direction=Direction.BOTH, metric=alert.labels.get("alertname", "alert"), labels=dict(alert.labels),
               explanation=explanation, entity=fingerprint_of(alert),
               onset=f"the alert's start ({alert.starts_at:%H:%M:%S}) as its sender gave it")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingested:
    firing: int
    resolved: int
    opened: list[int]
    incidents: list[int]
    resolved_incidents: list[int]
    truncated: int = 0  # alerts Alertmanager left out of the body (its max_alerts)
    storm: int | None = None  # the storm incident that took what was past the cycle's limit


def ingest_webhook(store: "Store", correlator: Correlator, payload: WebhookPayload, *, now: datetime,
                   actor: str, budget: NewIncidentBudget | None = None, chunk: int = CHUNK_ALERTS) -> Ingested:
    """One payload, ``chunk`` alerts to a transaction: a body of 100,000 alerts holds the store's
    lock a moment at a time, so the cycle and the leases go on meanwhile. A failure leaves the
    chunks before it written; Alertmanager sends the whole group again, and alerts already in
    their incidents are repeats. ``budget``: what this agent may still open this cycle."""
    latest: dict[str, AlertPayload] = {}
    for alert in payload.alerts:  # the same fingerprint twice in one body: the last word counts
        latest[fingerprint_of(alert)] = alert.within(now)
    alerts = list(latest.values())
    allowance = budget.for_one_body() if budget is not None else None
    totals = {"firing": 0, "resolved": 0}
    opened: list[int] = []
    touched: set[int] = set()
    closed: list[int] = []
    storm = None
    for start in range(0, max(len(alerts), 1), chunk):
        part = alerts[start:start + chunk]
        with store.transaction():
            placed, ended, done = _ingest_chunk(store, correlator, part, now=now, actor=actor, budget=allowance)
            for alert in part:
                totals[alert.status] += 1
            opened += placed.opened
            touched |= placed.touched | set(ended)
            closed += done
            storm = placed.storm if placed.storm is not None else storm
            if start + chunk >= len(alerts):  # the last chunk: the record of the body goes with it
                if payload.truncated_alerts:
                    _say_truncated(store, payload, sorted(touched), now=now, actor=actor)
                store.audit(actor, "alerts.ingest", payload.receiver or "alertmanager",
                            {**totals, "opened": opened[:100], "opened_count": len(opened), "storm": storm,
                             "truncated": payload.truncated_alerts, "group_key": payload.group_key}, now=now)
    return Ingested(firing=totals["firing"], resolved=totals["resolved"], opened=opened, incidents=sorted(touched),
                    resolved_incidents=sorted(closed), truncated=payload.truncated_alerts, storm=storm)


def _ingest_chunk(store: "Store", correlator: Correlator, alerts: list[AlertPayload], *, now: datetime, actor: str,
                  budget: BodyBudget | None) -> tuple[Placed, dict[int, str], list[int]]:
    """In the caller's transaction: the firing alerts placed, the resolved ones' signals
    resolved, and the incidents left with nothing unresolved closed."""
    firing = [a for a in alerts if a.status == "firing"]
    resolved = [a for a in alerts if a.status == "resolved"]
    severities = [SEVERITIES.get(a.labels.get("severity", "").lower()) for a in firing]
    placed = correlator.ingest([alert_hit(a) for a in firing], now=now, actor=actor, severities=severities,
                               budget=budget)
    keys = {fingerprint_of(a): signal_key(alert_series_id(a), ALERT_DETECTOR) for a in resolved}
    owners = store.open_signal_owners(keys.values())  # one read for the whole chunk
    ended: dict[int, str] = {}
    for alert in resolved:
        key = keys[fingerprint_of(alert)]
        if key not in owners:
            continue  # never seen firing, or its incident is already resolved
        incident_id = owners[key][0]
        if store.resolve_signal(incident_id, key, at=alert.ends_at or now, now=now, actor=actor):
            ended[incident_id] = alert.labels.get("alertname", key)
    closed = []
    for incident_id, last in sorted(ended.items()):
        if store.unresolved_signal_count(incident_id) == 0 and try_resolve(
                store, incident_id, now=now, actor=actor, resolution="alert",
                reason=f"every alert resolved (last: {last})"):
            closed.append(incident_id)
    return placed, ended, closed


def _say_truncated(store: "Store", payload: WebhookPayload, incidents: list[int], *, now: datetime,
                   actor: str) -> None:
    """Alertmanager left alerts out of the body (``max_alerts``): the incidents the group touched
    say so, since what they hold is not the whole group."""
    message = (f"Alertmanager left {payload.truncated_alerts} alerts of group {payload.group_key or '(none)'} out "
               "of its webhook (its max_alerts): they are not in this incident")
    with store.transaction():
        for incident_id in incidents[:MAX_TRUNCATION_EVENTS]:
            store.add_incident_event(incident_id, kind=EventKind.ALERTS_TRUNCATED, actor=actor, message=message,
                                     details={"truncated": payload.truncated_alerts, "group_key": payload.group_key},
                                     now=now)


class AlertIntake:
    """Alertmanager's webhooks into the store, for one agent process: one body at a time (a
    thread waiting here is cheaper than threads polling the store's lock against each other and
    the cycle), with the correlator of the config in effect and the cycle's budget of new
    incidents. ``ingest`` logs and counts what it took, and says when a body came truncated."""

    def __init__(self, ctx: "Context") -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._correlator: Correlator | None = None

    def correlator(self) -> Correlator:
        """One correlator per loaded config (the topology is built once, not per body)."""
        ctx = self.ctx
        found = self._correlator
        if found is None or found.config is not ctx.config.incidents or found.store is not ctx.store:
            found = Correlator(ctx.store, ctx.config.incidents, interval_s=ctx.config.agent.interval,
                               metrics=ctx.metrics)
            self._correlator = found
        return found

    def receive(self, body: bytes, *, actor: str) -> tuple[WebhookPayload, Ingested]:
        """``parse_webhook`` (``MalformedPayload`` for a body that cannot be used), then ``ingest``:
        one call for a worker thread, as reading 100,000 alerts takes seconds."""
        payload = parse_webhook(body)
        return payload, self.ingest(payload, actor=actor)

    def ingest(self, payload: WebhookPayload, *, actor: str) -> Ingested:
        ctx = self.ctx
        with self._lock:
            done = ingest_webhook(ctx.store, self.correlator(), payload, now=ctx.clock(), actor=actor,
                                  budget=ctx.budget)
            ctx.metrics.open_incidents.set(ctx.store.count_open_incidents())
        ctx.metrics.alerts_ingested.inc(len(payload.alerts))
        if payload.truncated_alerts:
            ctx.metrics.alerts_truncated.inc(payload.truncated_alerts)
            log.warning(kv("alerts.truncated", group_key=payload.group_key, received=len(payload.alerts),
                           left_out=payload.truncated_alerts, incidents=len(done.incidents)))
        if done.storm is not None:
            log.warning(kv("alerts.storm", storm=done.storm, opened=len(done.opened), alerts=len(payload.alerts)))
        return done
