"""Store methods for MTTR figures, reports and retention.

Reports read whole periods at once, so these methods return pandas frames (one row per
incident, series or playbook; columns documented per method) that the report code aggregates
without Python loops. Retention deletes in small batches, each its own short transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from agent.store.base import GENESIS, AuditBreak, StoreBase, entry_hash

# What makes an incident a model incident (besides a `model` label): a drift detector, or a
# signal whose metric is about inference latency or model errors.
MODEL_DETECTORS = ("drift",)
MODEL_METRIC_LIKE = ("%inference%", "%prediction%", "%model%")

AUDIT_ANCHOR_FLAG = "audit.anchor"

_IS_MODEL_SIGNAL = (
    "(s.detector IN ({detectors}) OR json_extract(s.labels, '$.model') IS NOT NULL OR {metrics})".format(
        detectors=", ".join(f"'{d}'" for d in MODEL_DETECTORS),
        metrics=" OR ".join(f"s.metric LIKE '{m}'" for m in MODEL_METRIC_LIKE)))

_INCIDENTS_SQL = f"""
WITH chosen AS (SELECT * FROM incidents WHERE started_at >= ? AND started_at < ?),
primary_signal AS (
    SELECT incident_id, detector, metric FROM (
        SELECT s.incident_id, s.detector, s.metric,
               row_number() OVER (PARTITION BY s.incident_id ORDER BY s.first_at, s.signal_key) AS n
        FROM incident_signals s JOIN chosen c ON c.id = s.incident_id)
    WHERE n = 1),
model_signal AS (
    SELECT s.incident_id, max(json_extract(s.labels, '$.model')) AS model
    FROM incident_signals s JOIN chosen c ON c.id = s.incident_id
    WHERE {_IS_MODEL_SIGNAL} GROUP BY s.incident_id),
last_run AS (
    SELECT incident_id, rule FROM (
        SELECT r.incident_id, r.rule,
               row_number() OVER (PARTITION BY r.incident_id ORDER BY r.requested_at DESC, r.id DESC) AS n
        FROM remediation_runs r JOIN chosen c ON c.id = r.incident_id WHERE r.mode != 'rollback')
    WHERE n = 1)
SELECT c.id, c.status, c.severity, c.title,
       coalesce(json_extract(c.labels, '$.service'), '(none)') AS service,
       c.started_at, c.detected_at, c.acknowledged_at, c.remediation_started_at,
       c.remediation_verified_at, c.resolved_at, c.resolution,
       coalesce(p.detector, '(none)') AS detector,
       coalesce(nullif(p.metric, ''), json_extract(c.labels, '$.alertname'), '(unknown)') AS kind,
       coalesce(l.rule, '(none)') AS rule,
       (json_extract(c.labels, '$.model') IS NOT NULL OR m.incident_id IS NOT NULL) AS is_model,
       coalesce(json_extract(c.labels, '$.model'), m.model, '(none)') AS model
FROM chosen c
LEFT JOIN primary_signal p ON p.incident_id = c.id
LEFT JOIN model_signal m ON m.incident_id = c.id
LEFT JOIN last_run l ON l.incident_id = c.id
ORDER BY c.started_at, c.id
"""

INCIDENT_COLUMNS = [
    "id", "status", "severity", "title", "service", "started_at", "detected_at", "acknowledged_at",
    "remediation_started_at", "remediation_verified_at", "resolved_at", "resolution", "detector", "kind",
    "rule", "is_model", "model"]

# Run statuses that count as a success or a failure of a playbook; others are still in flight.
RUN_SUCCESS = ("successful", "succeeded", "verified")
RUN_FAILURE = ("failed", "timeout", "error", "rolled_back", "verification_failed", "canceled")


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneBatch:
    """How many rows one batch deleted from one table."""

    table: str
    deleted: int


class ReportStore(StoreBase):
    """MTTR figures, reports and retention."""

    # -- reading for reports ---------------------------------------------------------------

    def incident_times(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Incidents that started in ``[since_s, until_s)``, one row each, times as epoch seconds.

        Columns: ``INCIDENT_COLUMNS``. ``detector`` and ``kind`` (the metric) come from the
        incident's first signal, ``rule`` from its latest non-rollback run, ``model`` from a
        ``model`` label on the incident or a model signal; ``(none)`` where there is none.
        """
        rows = self.conn.execute(_INCIDENTS_SQL, (since_s, until_s)).fetchall()
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=INCIDENT_COLUMNS)
        for column in ("started_at", "detected_at", "acknowledged_at", "remediation_started_at",
                       "remediation_verified_at", "resolved_at"):
            frame[column] = frame[column].astype("float64")
        frame["is_model"] = frame["is_model"].astype(bool)
        return frame

    def open_incident_rows(self) -> pd.DataFrame:
        """Every incident not yet resolved: id, status, severity, title, service, started_at."""
        rows = self.conn.execute(
            "SELECT id, status, severity, title, coalesce(json_extract(labels, '$.service'), '(none)') AS service, "
            "started_at, acknowledged_by FROM incidents WHERE status != 'resolved' ORDER BY started_at").fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows],
            columns=["id", "status", "severity", "title", "service", "started_at", "acknowledged_by"])

    def noisy_signals(self, since_s: float, until_s: float, *, limit: int = 15) -> pd.DataFrame:
        """The series and detectors in the most incidents of the period (the alert-fatigue view).

        Columns: series_id, detector, metric, incidents, pages (critical incidents), hits.
        """
        rows = self.conn.execute(
            """
            SELECT s.series_id, s.detector, max(s.metric) AS metric, count(DISTINCT i.id) AS incidents,
                   count(DISTINCT CASE WHEN i.severity = 'critical' THEN i.id END) AS pages,
                   sum(s.hits) AS hits
            FROM incident_signals s JOIN incidents i ON i.id = s.incident_id
            WHERE i.started_at >= ? AND i.started_at < ?
            GROUP BY s.series_id, s.detector
            ORDER BY incidents DESC, pages DESC, hits DESC, s.series_id, s.detector LIMIT ?
            """, (since_s, until_s, limit)).fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows], columns=["series_id", "detector", "metric", "incidents", "pages", "hits"])

    def run_outcomes(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Remediation runs requested in the period, per playbook and mode.

        Columns: playbook, mode, runs, succeeded, failed (see RUN_SUCCESS / RUN_FAILURE).
        """
        ok = ", ".join("?" for _ in RUN_SUCCESS)
        bad = ", ".join("?" for _ in RUN_FAILURE)
        rows = self.conn.execute(
            f"""
            SELECT playbook, mode, count(*) AS runs,
                   sum(status IN ({ok})) AS succeeded, sum(status IN ({bad})) AS failed
            FROM remediation_runs WHERE requested_at >= ? AND requested_at < ?
            GROUP BY playbook, mode ORDER BY playbook, mode
            """, (*RUN_SUCCESS, *RUN_FAILURE, since_s, until_s)).fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows], columns=["playbook", "mode", "runs", "succeeded", "failed"])

    def model_series_health(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Per model (``model`` label of a series): series seen, series with a drift hit, and
        the P95 of its inference-latency samples in the period (NaN without such samples).

        Columns: model, series, drifted, latency_p95.
        """
        series = self.conn.execute(
            """
            SELECT json_extract(se.labels, '$.model') AS model, count(*) AS series,
                   count(DISTINCT h.series_id) AS drifted
            FROM series se
            LEFT JOIN (SELECT DISTINCT series_id FROM hits
                       WHERE detector IN ('drift') AND ts >= ? AND ts < ?) h ON h.series_id = se.series_id
            WHERE json_extract(se.labels, '$.model') IS NOT NULL AND se.last_seen >= ? AND se.first_seen < ?
            GROUP BY model ORDER BY model
            """, (since_s, until_s, since_s, until_s)).fetchall()
        frame = pd.DataFrame.from_records([tuple(r) for r in series], columns=["model", "series", "drifted"])
        latency = self.conn.execute(
            """
            SELECT json_extract(se.labels, '$.model') AS model, sa.value
            FROM samples sa JOIN series se ON se.series_id = sa.series_id
            WHERE json_extract(se.labels, '$.model') IS NOT NULL AND se.metric LIKE '%latency%'
              AND sa.ts >= ? AND sa.ts < ? AND sa.value IS NOT NULL
            """, (since_s, until_s)).fetchall()
        values = pd.DataFrame.from_records([tuple(r) for r in latency], columns=["model", "value"])
        values["value"] = values["value"].astype("float64")
        p95 = values.groupby("model")["value"].quantile(0.95).rename("latency_p95")
        return frame.merge(p95, how="left", left_on="model", right_index=True)

    # -- audit: export and a verification that survives pruning ------------------------------

    def audit_rows(self, since_s: float, until_s: float) -> Iterator[tuple[Any, ...]]:
        """(id, ts, actor, action, subject, details JSON text, prev_hash, hash), oldest first."""
        yield from self.conn.execute(
            "SELECT id, ts, actor, action, subject, details, prev_hash, hash FROM audit "
            "WHERE ts >= ? AND ts < ? ORDER BY id", (since_s, until_s))

    def audit_anchor(self) -> tuple[int, str]:
        """The id and hash of the last entry retention deleted (``(0, GENESIS)`` when none)."""
        value = self.get_flag(AUDIT_ANCHOR_FLAG)
        if not value:
            return 0, GENESIS
        anchor = json.loads(value)
        return int(anchor["id"]), str(anchor["hash"])

    def verify_audit_chain(self) -> AuditBreak | None:
        """Like ``verify_audit``, but the chain starts at the retention anchor when old entries
        were pruned (the prune entry itself records that anchor, so it cannot be moved quietly)."""
        _, prev = self.audit_anchor()
        rows = self.conn.execute("SELECT id, ts, actor, action, subject, details, prev_hash, hash FROM audit ORDER BY id")
        for row_id, ts, actor, action, subject, details, prev_hash, digest in rows:
            if prev_hash != prev:
                return AuditBreak(id=row_id, reason="does not follow the entry before it (an entry was deleted or inserted)")
            if entry_hash(prev, ts, actor, action, subject, details) != digest:
                return AuditBreak(id=row_id, reason="its content does not match its hash (the entry was edited)")
            prev = digest
        return None

    def count_audit(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM audit").fetchone()[0])

    # -- retention: each call deletes at most ``limit`` rows in one short transaction ---------

    def prune_samples(self, before_s: float, limit: int) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM samples WHERE (series_id, ts) IN "
                "(SELECT series_id, ts FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)", (before_s, limit)).rowcount

    def prune_hits(self, before_s: float, limit: int) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM hits WHERE id IN (SELECT id FROM hits WHERE ts < ? ORDER BY ts LIMIT ?)",
                (before_s, limit)).rowcount

    def prune_runs(self, before_s: float, limit: int) -> int:
        """Finished runs that ended before ``before_s`` (their rollbacks lose the parent link)."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM remediation_runs WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY id LIMIT ?",
                (before_s, limit))]
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            conn.execute(f"UPDATE remediation_runs SET parent_id = NULL WHERE parent_id IN ({marks})", ids)
            return conn.execute(f"DELETE FROM remediation_runs WHERE id IN ({marks})", ids).rowcount

    def prune_incidents(self, before_s: float, limit: int) -> int:
        """Incidents resolved before ``before_s`` with no remediation run kept, and what hangs
        off them (signals, timeline, their hits, delivered notifications)."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM incidents i WHERE status = 'resolved' AND resolved_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM remediation_runs r WHERE r.incident_id = i.id) ORDER BY id LIMIT ?",
                (before_s, limit))]
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            for table in ("incident_signals", "incident_events", "hits", "outbox"):
                conn.execute(f"DELETE FROM {table} WHERE incident_id IN ({marks})", ids)
            return conn.execute(f"DELETE FROM incidents WHERE id IN ({marks})", ids).rowcount

    def prune_audit(self, before_s: float, limit: int, *, now_s: float) -> int:
        """The oldest entries written before ``before_s``: always a prefix of the chain, and the
        last deleted entry becomes the anchor ``verify_audit_chain`` starts from."""
        with self.transaction() as conn:
            prefix: list[tuple[int, str]] = []
            for row_id, ts, digest in conn.execute("SELECT id, ts, hash FROM audit ORDER BY id LIMIT ?", (limit,)):
                if ts >= before_s:
                    break
                prefix.append((row_id, digest))
            if not prefix:
                return 0
            last_id, last_hash = prefix[-1]
            conn.execute(
                "INSERT INTO flags (name, value, updated_at, updated_by) VALUES (?, ?, ?, 'retention') "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (AUDIT_ANCHOR_FLAG, json.dumps({"id": last_id, "hash": last_hash}), now_s))
            return conn.execute("DELETE FROM audit WHERE id <= ?", (last_id,)).rowcount
