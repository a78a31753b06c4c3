"""Prometheus Alertmanager webhook payloads (version 4) as hits and signal resolutions.

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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.clock import EARLIEST
from agent.flow.samples import series_id
from agent.incidents.correlator import Correlator
from agent.incidents.lifecycle import try_resolve
from agent.incidents.rootcause import ALERT_DETECTOR
from agent.store.incidents import signal_key
from detectors.base import Direction, Hit

if TYPE_CHECKING:
    from agent.store import Store

MAX_VALUE_CHARS = 1024  # a label or annotation value is kept up to this length
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
        return {k: v if len(v) <= MAX_VALUE_CHARS else f"{v[:MAX_VALUE_CHARS]}…[truncated: {len(v)} characters]"
                for k, v in value.items()}

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC (Alertmanager always sends one; hand-written clients may not)."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def within(self, now: datetime) -> "AlertPayload":
        """Times the store can keep: a start outside [1970, now] (Alertmanager's zero time
        0001-01-01 means unknown) is taken as ``now``; an end before 1970 is no end; an end is
        clamped to [start, now]."""
        starts = self.starts_at if EARLIEST <= self.starts_at <= now else now
        ends = self.ends_at if self.ends_at is not None and self.ends_at >= EARLIEST else None
        if ends is not None:
            ends = min(max(ends, starts), now)
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


def ingest_webhook(store: "Store", correlator: Correlator, payload: WebhookPayload, *, now: datetime,
                   actor: str) -> Ingested:
    """All of one payload in one transaction: a failure leaves nothing half-written."""
    latest: dict[str, AlertPayload] = {}
    for alert in payload.alerts:  # the same fingerprint twice in one body: the last word counts
        latest[fingerprint_of(alert)] = alert.within(now)
    firing = [a for a in latest.values() if a.status == "firing"]
    resolved = [a for a in latest.values() if a.status == "resolved"]
    severities = [SEVERITIES.get(a.labels.get("severity", "").lower()) for a in firing]
    with store.transaction():
        placed = correlator.ingest([alert_hit(a) for a in firing], now=now, actor=actor, severities=severities)
        touched = set(placed.touched)
        keys = {fingerprint_of(a): signal_key(alert_series_id(a), ALERT_DETECTOR) for a in resolved}
        owners = store.open_signal_owners(keys.values())  # one read for the whole body
        ended: dict[int, str] = {}
        for alert in resolved:
            key = keys[fingerprint_of(alert)]
            if key not in owners:
                continue  # never seen firing, or its incident is already resolved
            incident_id = owners[key][0]
            if store.resolve_signal(incident_id, key, at=alert.ends_at or now, now=now, actor=actor):
                ended[incident_id] = alert.labels.get("alertname", key)
        touched.update(ended)
        closed = []
        for incident_id, last in sorted(ended.items()):
            if store.unresolved_signal_count(incident_id) == 0 and try_resolve(
                    store, incident_id, now=now, actor=actor, resolution="alert",
                    reason=f"every alert resolved (last: {last})"):
                closed.append(incident_id)
        store.audit(actor, "alerts.ingest", payload.receiver or "alertmanager",
                    {"firing": len(firing), "resolved": len(resolved), "opened": placed.opened,
                     "group_key": payload.group_key}, now=now)
    return Ingested(firing=len(firing), resolved=len(resolved), opened=placed.opened, incidents=sorted(touched),
                    resolved_incidents=closed)
