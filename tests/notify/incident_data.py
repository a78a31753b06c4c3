"""Incidents with signals, hits, changes and runs, written through the incident store, for the
summary, page and notification tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from agent.clock import to_epoch
from agent.flow.incidents import Incident, Severity, Signal
from agent.store import Store
from detectors.base import Direction, Hit

T0 = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)

HOSTILE = {
    "service": "<script>alert(1)</script>",
    "instance": "**web-1**[click](http://evil.example)",
    "team": "`rm -rf` <img src=x onerror=alert(2)> & \x1b[31mred\u202eevil",
}


def signal(series_id: str, metric: str, labels: Mapping[str, str], *, score: float, value: float, expected: float,
           minute: int = 0) -> Signal:
    return Signal(series_id=series_id, detector="stl", metric=metric, labels=dict(labels),
                  first_at=T0 + timedelta(minutes=minute), last_at=T0 + timedelta(minutes=minute + 9), hits=10,
                  peak_score=score, last_value=value, last_expected=expected, direction="up",
                  explanation=f"{metric} far above its seasonal expectation")


def hits_for(sig: Signal, *, count: int = 10) -> list[Hit]:
    base = sig.last_expected or 0.0
    return [Hit(series_id=sig.series_id, detector=sig.detector, ts=sig.first_at + timedelta(minutes=i),
                value=(sig.last_value or 0.0) * (0.82 + 0.02 * i), score=(sig.peak_score or 1.0) * (0.5 + 0.05 * i),
                direction=Direction.UP, expected=base, lower=base * 0.8, upper=base * 1.2, metric=sig.metric,
                labels=dict(sig.labels)) for i in range(count)]


def make_incident(store: Store, *, labels: Mapping[str, str] | None = None, severity: Severity = Severity.CRITICAL,
                  now: datetime | None = None, with_hits: bool = True) -> Incident:
    """An open incident on service=api with two signals (latency the worse), hits and samples."""
    labels = dict(labels if labels is not None else {"service": "api", "instance": "web-1"})
    latency = signal("latency|api", "http_request_duration_seconds", labels, score=9.5, value=0.84, expected=0.2,
                     minute=2)
    errors = signal("errors|api", "http_errors_ratio", labels, score=4.0, value=0.05, expected=0.04, minute=0)
    incident = store.open_incident(
        severity=severity, title="api latency", labels=labels, started_at=T0, now=now or T0 + timedelta(minutes=12),
        signals=[latency, errors], root_cause="service=api",
        root_cause_reason="earliest signal furthest upstream: service=api has no dependencies")
    if with_hits:
        for sig in (latency, errors):
            store.record_hits(hits_for(sig), incident_id=incident.id, now=now or T0 + timedelta(minutes=12))
        store.record_samples([], [("latency|api", to_epoch(T0 + timedelta(minutes=m)), 0.2 + 0.01 * (m % 3))
                                  for m in range(-60, 2)], now=to_epoch(T0 + timedelta(minutes=2)))
    return store.get_incident(incident.id)  # type: ignore[return-value]


def add_run(store: Store, incident_id: int, *, status: str = "verified",
            reason: str = "signals quiet for 300s") -> None:
    """A finished remediation run row, as the remediator records it."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO remediation_runs (incident_id, rule, playbook, mode, status, rc, requested_at, started_at, "
            "ended_at, verification, reason) VALUES (?, 'restart-api', 'restart_service.yml', 'apply', ?, 0, ?, ?, ?, "
            "'{}', ?)",
            (incident_id, status, to_epoch(T0 + timedelta(minutes=13)), to_epoch(T0 + timedelta(minutes=13)),
             to_epoch(T0 + timedelta(minutes=14)), reason))
