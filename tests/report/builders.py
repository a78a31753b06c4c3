"""Known incidents written straight into a store, so report tests can check hand-computed figures.

Times are epoch seconds or aware datetimes; rows go in with plain SQL (bound values), the way
the incidents and remediation stages leave them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from agent.clock import to_epoch
from agent.store import Store

Time = float | datetime | None


def _t(value: Time) -> float | None:
    return to_epoch(value)


def add_incident(store: Store, *, started: Time, detected: Time, acked: Time = None, resolved: Time = None,
                 resolution: str | None = None, remediation_started: Time = None, verified: Time = None,
                 severity: str = "warning", labels: Mapping[str, str] | None = None, title: str = "",
                 signals: Sequence[Mapping[str, Any]] = (), runs: Sequence[Mapping[str, Any]] = ()) -> int:
    """One incident; ``signals`` items: series_id, detector, metric, labels, hits;
    ``runs`` items: rule, playbook, mode, status."""
    status = "resolved" if resolved is not None else ("acknowledged" if acked is not None else "open")
    conn = store.conn
    with store.transaction():
        cur = conn.execute(
            "INSERT INTO incidents (status, severity, title, labels, started_at, detected_at, acknowledged_at, "
            "acknowledged_by, remediation_started_at, remediation_verified_at, resolved_at, resolution, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (status, severity, title, json.dumps(dict(labels or {})), _t(started), _t(detected), _t(acked),
             "cli:alice" if acked is not None else None, _t(remediation_started), _t(verified), _t(resolved),
             resolution, _t(detected)))
        incident_id = int(cur.lastrowid)
        conn.execute(
            "INSERT INTO incident_episodes (incident_id, number, started_at, detected_at, acknowledged_at, "
            "acknowledged_by, remediation_started_at, remediation_verified_at, resolved_at, resolution) "
            "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, _t(started), _t(detected), _t(acked), "cli:alice" if acked is not None else None,
             _t(remediation_started), _t(verified), _t(resolved), resolution))
        for n, signal in enumerate(signals):
            series_id = signal.get("series_id", f"s{incident_id}-{n}")
            detector = signal.get("detector", "stl")
            conn.execute(
                "INSERT INTO incident_signals (incident_id, signal_key, series_id, detector, metric, labels, "
                "first_at, last_at, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (incident_id, f"{series_id}|{detector}", series_id, detector, signal.get("metric", ""),
                 json.dumps(dict(signal.get("labels", {}))), _t(started) + n, _t(started) + n,
                 signal.get("hits", 1)))
        for run in runs:
            begun = _t(remediation_started) or _t(detected)
            conn.execute(
                "INSERT INTO remediation_runs (incident_id, rule, playbook, mode, status, requested_at, "
                "started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (incident_id, run["rule"], run.get("playbook", run["rule"] + ".yml"), run.get("mode", "apply"),
                 run.get("status", "verified"), begun, begun, begun + 30))
    return incident_id


def add_reopen(store: Store, incident_id: int, *, started: Time, detected: Time, acked: Time = None,
               resolved: Time = None, resolution: str | None = None) -> None:
    """A later outage of the incident (a flapping reopen), as its next episode; the incident row
    takes the new outage's state the way ``transition_incident`` leaves it."""
    conn = store.conn
    with store.transaction():
        (number,) = conn.execute("SELECT max(number) FROM incident_episodes WHERE incident_id = ?",
                                 (incident_id,)).fetchone()
        conn.execute(
            "INSERT INTO incident_episodes (incident_id, number, started_at, detected_at, acknowledged_at, "
            "resolved_at, resolution, flapping) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (incident_id, number + 1, _t(started), _t(detected), _t(acked), _t(resolved), resolution))
        status = "resolved" if resolved is not None else ("acknowledged" if acked is not None else "open")
        conn.execute("UPDATE incidents SET status = ?, acknowledged_at = ?, resolved_at = ?, resolution = ?, "
                     "remediation_started_at = NULL, remediation_verified_at = NULL, reopened = reopened + 1, "
                     "flapping = 1 WHERE id = ?", (status, _t(acked), _t(resolved), resolution, incident_id))


DAY = 86400.0


def known_incidents(store: Store, t0: float) -> dict[str, int]:
    """Six incidents whose figures the tests compute by hand (see test_mttr.py)."""
    cpu = {"metric": "node_cpu_usage", "detector": "stl", "series_id": "node_cpu_usage{host=a}"}
    return {
        "A": add_incident(store, started=t0, detected=t0 + 60, acked=t0 + 180, remediation_started=t0 + 200,
                          verified=t0 + 800, resolved=t0 + 900, resolution="remediation", severity="critical",
                          labels={"service": "api"}, signals=[cpu], runs=[{"rule": "restart-api"}]),
        "B": add_incident(store, started=t0 + DAY, detected=t0 + DAY + 120, acked=t0 + DAY + 300,
                          resolved=t0 + DAY + 3600, resolution="manual", severity="critical",
                          labels={"service": "api"}, signals=[cpu]),
        "C": add_incident(store, started=t0 + 2 * DAY, detected=t0 + 2 * DAY + 30, resolved=t0 + 2 * DAY + 1200,
                          resolution="quiet", labels={"service": "db"},
                          signals=[{"metric": "disk_io", "detector": "iforest", "series_id": "disk_io{host=b}"}]),
        "D": add_incident(store, started=t0 + 3 * DAY, detected=t0 + 3 * DAY + 90, acked=t0 + 3 * DAY + 150,
                          labels={"service": "db"}, signals=[{**cpu, "series_id": "node_cpu_usage{host=b}"}]),
        "E": add_incident(store, started=t0 + 4 * DAY, detected=t0 + 4 * DAY + 300, resolved=t0 + 4 * DAY + 7200,
                          resolution="remediation", remediation_started=t0 + 4 * DAY + 400,
                          labels={"model": "churn"}, title="feature_x drifted",
                          signals=[{"metric": "feature_x", "detector": "drift", "series_id": "feature_x{model=churn}"}],
                          runs=[{"rule": "retrain-churn", "status": "failed"}]),
        "F": add_incident(store, started=t0 + 5 * DAY, detected=t0 + 5 * DAY + 60, severity="info",
                          labels={"service": "api"}, title="inference latency up",
                          signals=[{"metric": "model_inference_latency_seconds", "detector": "threshold",
                                    "series_id": "lat{model=churn}", "labels": {"model": "churn"}}]),
    }
