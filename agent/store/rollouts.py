"""Store methods for model operations: guarded rollouts and their measurements, the model
registry (versions, who deployed them, gate results, outcomes) and retrains.

Every change of a rollout's state writes its audit entry in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from agent.clock import from_epoch, to_epoch
from agent.errors import TransitionError
from agent.flow.rollouts import (
    ACTIVE,
    Measurement,
    ModelVersion,
    Retrain,
    RetrainStatus,
    Rollout,
    RolloutStatus,
    Served,
    Verdict,
)
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script

# Moves a rollout may make; anything else is a TransitionError.
TRANSITIONS: dict[RolloutStatus, frozenset[RolloutStatus]] = {
    RolloutStatus.PENDING: frozenset({RolloutStatus.ANALYSING, RolloutStatus.FAILED, RolloutStatus.ABORTED}),
    RolloutStatus.ANALYSING: frozenset({RolloutStatus.PAUSED, RolloutStatus.WAITING_APPROVAL,
                                        RolloutStatus.ROLLING_BACK, RolloutStatus.PROMOTING}),
    RolloutStatus.PAUSED: frozenset({RolloutStatus.ANALYSING, RolloutStatus.PROMOTING, RolloutStatus.ROLLING_BACK}),
    RolloutStatus.WAITING_APPROVAL: frozenset({RolloutStatus.ROLLING_BACK}),
    RolloutStatus.ROLLING_BACK: frozenset({RolloutStatus.ROLLED_BACK, RolloutStatus.ABORTED, RolloutStatus.FAILED}),
    RolloutStatus.PROMOTING: frozenset({RolloutStatus.PROMOTED, RolloutStatus.FAILED}),
    RolloutStatus.PROMOTED: frozenset(),
    RolloutStatus.ROLLED_BACK: frozenset(),
    RolloutStatus.ABORTED: frozenset(),
    RolloutStatus.FAILED: frozenset(),
}


@migration(60, "models: rollouts, measurements, registry, retrains")
def _models(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE rollouts (
            id INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, previous_version TEXT,
            status TEXT NOT NULL, canary TEXT NOT NULL DEFAULT '[]', rest TEXT NOT NULL DEFAULT '[]',
            actor TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', change_id INTEGER REFERENCES changes(id),
            incident_id INTEGER REFERENCES incidents(id), retrain_id INTEGER,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, analysis_started_at REAL, next_at REAL,
            ended_at REAL, aborted_by TEXT, reference TEXT NOT NULL DEFAULT '{}');
        CREATE INDEX rollouts_model ON rollouts(model, created_at);
        CREATE INDEX rollouts_status ON rollouts(status);

        CREATE TABLE rollout_measurements (
            id INTEGER PRIMARY KEY, rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
            metric TEXT NOT NULL, at REAL NOT NULL, value REAL, verdict TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '');
        CREATE INDEX rollout_measurements_rollout ON rollout_measurements(rollout_id, at);

        CREATE TABLE model_versions (
            model TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
            created_at REAL NOT NULL, created_by TEXT NOT NULL, deployed_at REAL, deployed_by TEXT,
            baseline_id INTEGER, metrics TEXT NOT NULL DEFAULT '{}', gate TEXT NOT NULL DEFAULT '{}',
            rollout_id INTEGER, outcome TEXT,
            PRIMARY KEY (model, version));

        CREATE TABLE retrains (
            id INTEGER PRIMARY KEY, model TEXT NOT NULL, candidate TEXT, status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '', at REAL NOT NULL, actor TEXT NOT NULL,
            incident_id INTEGER REFERENCES incidents(id), metrics TEXT NOT NULL DEFAULT '{}',
            current_metrics TEXT NOT NULL DEFAULT '{}', gate TEXT NOT NULL DEFAULT '{}', rollout_id INTEGER);
        CREATE INDEX retrains_model ON retrains(model, at);
    """)


@migration(61, "models: what served when, gate overrides, who promoted")
def _serving(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE model_serving (
            id INTEGER PRIMARY KEY, model TEXT NOT NULL, version TEXT NOT NULL, since REAL NOT NULL, until REAL,
            source TEXT NOT NULL, actor TEXT NOT NULL);
        CREATE INDEX model_serving_model ON model_serving(model, since);
        ALTER TABLE rollouts ADD COLUMN promoted_by TEXT;
        ALTER TABLE rollouts ADD COLUMN gate_override TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE model_versions ADD COLUMN override TEXT NOT NULL DEFAULT '{}'
    """)


def _hosts(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text or "[]"))


def _rollout(row: sqlite3.Row) -> Rollout:
    return Rollout(
        id=row["id"], model=row["model"], version=row["version"], previous_version=row["previous_version"],
        status=RolloutStatus(row["status"]), canary=_hosts(row["canary"]), rest=_hosts(row["rest"]),
        actor=row["actor"], reason=row["reason"], change_id=row["change_id"], incident_id=row["incident_id"],
        retrain_id=row["retrain_id"], created_at=from_epoch(row["created_at"]),
        updated_at=from_epoch(row["updated_at"]), analysis_started_at=from_epoch(row["analysis_started_at"]),
        next_at=from_epoch(row["next_at"]), ended_at=from_epoch(row["ended_at"]),
        aborted_by=row["aborted_by"], reference=json.loads(row["reference"] or "{}"), promoted_by=row["promoted_by"],
        gate_override=json.loads(row["gate_override"] or "{}"))


def _measurement(row: sqlite3.Row) -> Measurement:
    return Measurement(rollout_id=row["rollout_id"], metric=row["metric"], at=from_epoch(row["at"]),
                       value=row["value"], verdict=Verdict(row["verdict"]), reason=row["reason"])


def _version(row: sqlite3.Row) -> ModelVersion:
    return ModelVersion(
        model=row["model"], version=row["version"], status=row["status"], created_at=from_epoch(row["created_at"]),
        created_by=row["created_by"], deployed_at=from_epoch(row["deployed_at"]), deployed_by=row["deployed_by"],
        baseline_id=row["baseline_id"], metrics=json.loads(row["metrics"]), gate=json.loads(row["gate"]),
        rollout_id=row["rollout_id"], outcome=row["outcome"], override=json.loads(row["override"] or "{}"))


def _served(row: sqlite3.Row) -> Served:
    return Served(model=row["model"], version=row["version"], since=from_epoch(row["since"]),
                  until=from_epoch(row["until"]), source=row["source"], actor=row["actor"])


def _retrain(row: sqlite3.Row) -> Retrain:
    return Retrain(
        id=row["id"], model=row["model"], candidate=row["candidate"], status=RetrainStatus(row["status"]),
        reason=row["reason"], at=from_epoch(row["at"]), actor=row["actor"], incident_id=row["incident_id"],
        metrics=json.loads(row["metrics"]), current_metrics=json.loads(row["current_metrics"]),
        gate=json.loads(row["gate"]), rollout_id=row["rollout_id"])


class RolloutStore(StoreBase):
    """rollouts, rollout_measurements, model_versions and retrains."""

    # -- rollouts ---------------------------------------------------------------------------

    def create_rollout(self, *, model: str, version: str, previous_version: str | None, canary: Sequence[str],
                       rest: Sequence[str], actor: str, reason: str, now: datetime,
                       retrain_id: int | None = None, gate_override: Mapping[str, Any] | None = None) -> Rollout:
        """A pending rollout, recorded as a ``model_rollout`` change (a suspect for any incident of
        the model that follows), its version in the registry as ``canary``. ``gate_override``: it
        starts although the version's gate failed or it never passed one (who, why, the gate):
        audited as ``rollout.gate_override`` and kept on the rollout and the version."""
        with self.transaction():
            change = self.add_change(ts=now, kind="model_rollout", labels={"model": model, "version": version},
                                     description=f"roll out {model} {version}"
                                                 + (f" (canary {', '.join(canary)})" if canary else ""),
                                     actor=actor, now=now)
            ts = to_epoch(now)
            rollout_id = self._insert("rollouts", {
                "model": model, "version": version, "previous_version": previous_version,
                "status": RolloutStatus.PENDING.value, "canary": dumps(list(canary)), "rest": dumps(list(rest)),
                "actor": actor, "reason": reason, "change_id": change.id, "retrain_id": retrain_id,
                "created_at": ts, "updated_at": ts, "next_at": ts, "gate_override": dumps(dict(gate_override or {}))})
            self.register_version(model, version, status="canary", actor=actor, now=now, rollout_id=rollout_id)
            if gate_override:
                self._update("model_versions", {"model": model, "version": version},
                             {"override": dumps({**gate_override, "rollout": rollout_id})})
                self.audit(actor, "rollout.gate_override", f"rollout:{rollout_id}",
                           {"model": model, "version": version, **gate_override}, now=now)
            self.audit(actor, "rollout.start", f"rollout:{rollout_id}",
                       {"model": model, "version": version, "previous_version": previous_version,
                        "canary": list(canary), "rest": list(rest), "change": change.id, "reason": reason}, now=now)
        return self.get_rollout(rollout_id)  # type: ignore[return-value]

    def get_rollout(self, rollout_id: int) -> Rollout | None:
        row = self.conn.execute("SELECT * FROM rollouts WHERE id = ?", (rollout_id,)).fetchone()
        return _rollout(row) if row else None

    def list_rollouts(self, *, model: str | None = None, active: bool | None = None,
                      since: datetime | None = None, limit: int | None = 100) -> list[Rollout]:
        sql = "SELECT * FROM rollouts WHERE created_at >= ?"
        params: list[Any] = [to_epoch(since) if since else float("-inf")]
        if model is not None:
            sql += " AND model = ?"
            params.append(model)
        if active is not None:
            marks = ", ".join("?" for _ in ACTIVE)
            sql += f" AND status {'IN' if active else 'NOT IN'} ({marks})"
            params += [s.value for s in ACTIVE]
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(-1 if limit is None else limit)
        return [_rollout(r) for r in self.conn.execute(sql, params)]

    def rollout_of_incident(self, incident_id: int) -> Rollout | None:
        """The rollout whose incident this is (the newest, should several name it)."""
        row = self.conn.execute("SELECT * FROM rollouts WHERE incident_id = ? ORDER BY id DESC LIMIT 1",
                                (incident_id,)).fetchone()
        return _rollout(row) if row else None

    def rollouts_around(self, model: str, at: datetime) -> list[Rollout]:
        """Rollouts of ``model`` under way at ``at`` (started by then, not ended before), newest first."""
        rows = self.conn.execute("SELECT * FROM rollouts WHERE model = ? AND created_at <= ? AND (ended_at IS NULL "
                                 "OR ended_at >= ?) ORDER BY id DESC", (model, to_epoch(at), to_epoch(at)))
        return [_rollout(r) for r in rows]

    def transition_rollout(self, rollout_id: int, to: RolloutStatus, *, actor: str, reason: str, now: datetime,
                           details: Mapping[str, Any] | None = None, **values: Any) -> Rollout:
        """Move along ``TRANSITIONS`` (else ``TransitionError``), with the audit entry; ``values``
        sets other columns (``next_at``, ``incident_id`` …) in the same transaction."""
        with self.transaction():
            rollout = self.get_rollout(rollout_id)
            if rollout is None:
                raise TransitionError(f"rollout {rollout_id}", "missing", to.value, "there is no such rollout")
            if to not in TRANSITIONS[rollout.status]:
                allowed = ", ".join(sorted(TRANSITIONS[rollout.status])) or "nothing (it has ended)"
                raise TransitionError(f"rollout {rollout_id}", rollout.status.value, to.value,
                                      f"from {rollout.status} it can move to {allowed}")
            columns = {k: (to_epoch(v) if isinstance(v, datetime) else v) for k, v in values.items()}
            columns.update(status=to.value, updated_at=to_epoch(now))
            if to.done:
                columns["ended_at"] = to_epoch(now)
            self._update("rollouts", {"id": rollout_id}, columns)
            self.audit(actor, f"rollout.{to.value}", f"rollout:{rollout_id}",
                       {"model": rollout.model, "version": rollout.version, "from": rollout.status.value,
                        "reason": reason, **dict(details or {})}, now=now)
        return self.get_rollout(rollout_id)  # type: ignore[return-value]

    def set_rollout(self, rollout_id: int, *, now: datetime, **values: Any) -> None:
        """Bookkeeping that is not a change of state (the next measurement's time, the reference)."""
        columns = {k: (to_epoch(v) if isinstance(v, datetime) else dumps(v) if isinstance(v, dict) else v)
                   for k, v in values.items()}
        columns["updated_at"] = to_epoch(now)
        self._update("rollouts", {"id": rollout_id}, columns)

    def add_measurements(self, measurements: Sequence[Measurement]) -> None:
        with self.transaction():
            for m in measurements:
                self._insert("rollout_measurements", {
                    "rollout_id": m.rollout_id, "metric": m.metric, "at": to_epoch(m.at), "value": m.value,
                    "verdict": m.verdict.value, "reason": m.reason})

    def measurements(self, rollout_id: int) -> list[Measurement]:
        rows = self.conn.execute("SELECT * FROM rollout_measurements WHERE rollout_id = ? ORDER BY at, id",
                                 (rollout_id,))
        return [_measurement(r) for r in rows]

    # -- registry ---------------------------------------------------------------------------

    def register_version(self, model: str, version: str, *, status: str, actor: str, now: datetime,
                         metrics: Mapping[str, float] | None = None, gate: Mapping[str, Any] | None = None,
                         rollout_id: int | None = None, baseline_id: int | None = None) -> ModelVersion:
        """Add a version, or update the one known: given fields replace the stored ones."""
        with self.transaction():
            found = self.model_version(model, version)
            values: dict[str, Any] = {"status": status}
            if metrics is not None:
                values["metrics"] = dumps(dict(metrics))
            if gate is not None:
                values["gate"] = dumps(dict(gate))
            if rollout_id is not None:
                values["rollout_id"] = rollout_id
            if baseline_id is not None:
                values["baseline_id"] = baseline_id
            if found is None:
                self._add_version({"model": model, "version": version, "created_at": to_epoch(now),
                                   "created_by": actor, **values})
            else:
                self._update("model_versions", {"model": model, "version": version}, values)
            self.audit(actor, "model.version", f"model:{model}",
                       {"version": version, "status": status, "rollout": rollout_id}, now=now)
        return self.model_version(model, version)  # type: ignore[return-value]

    def _add_version(self, row: Mapping[str, Any]) -> None:
        """A new registry row (keyed by model and version: no ``id`` to return, which
        ``_insert`` asks PostgreSQL for)."""
        self.conn.execute(f"INSERT INTO model_versions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                          list(row.values()))

    def deploy_version(self, model: str, version: str, *, actor: str, now: datetime, outcome: str,
                       baseline_id: int | None, source: str | None = None) -> None:
        """``version`` now serves everywhere, put there by ``actor``: the one serving before it is
        retired, and the serving history says what did it (``source``, default ``outcome``)."""
        with self.transaction():
            self.serve_version(model, version, source=source or outcome, actor=actor, now=now)
            if baseline_id is not None:
                self._update("model_versions", {"model": model, "version": version}, {"baseline_id": baseline_id})
            self._update("model_versions", {"model": model, "version": version}, {"outcome": outcome})

    def serve_version(self, model: str, version: str, *, source: str, actor: str, now: datetime,
                      previous_status: str = "retired") -> None:
        """Record that ``version`` serves from ``now`` (registered if unknown), put there by
        ``actor`` through ``source``; the version that served before ends (``previous_status``,
        unless its rollout already ended it otherwise). Audited as ``model.serving``."""
        with self.transaction():
            before = self.serving_version(model)
            self.conn.execute("UPDATE model_versions SET status = ? WHERE model = ? AND status = 'serving' "
                              "AND version != ?", (previous_status, model, version))
            found = self.model_version(model, version)
            if found is None:
                self._add_version({"model": model, "version": version, "status": "serving",
                                   "created_at": to_epoch(now), "created_by": actor})
            self._update("model_versions", {"model": model, "version": version},
                         {"status": "serving", "deployed_at": to_epoch(now), "deployed_by": actor})
            self.conn.execute("UPDATE model_serving SET until = ? WHERE model = ? AND until IS NULL",
                              (to_epoch(now), model))
            self._insert("model_serving", {"model": model, "version": version, "since": to_epoch(now),
                                           "source": source, "actor": actor})
            self.audit(actor, "model.serving", f"model:{model}",
                       {"version": version, "from": before.version if before else None, "source": source}, now=now)

    def serving_history(self, model: str, *, since: datetime | None = None) -> list[Served]:
        """What served, oldest first (the stretches still going on at ``since`` included)."""
        rows = self.conn.execute("SELECT * FROM model_serving WHERE model = ? AND (until IS NULL OR until >= ?) "
                                 "ORDER BY since, id", (model, to_epoch(since) if since else float("-inf")))
        return [_served(r) for r in rows]

    def has_served(self, model: str, version: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM model_serving WHERE model = ? AND version = ? LIMIT 1",
                                (model, version)).fetchone()
        return row is not None

    def end_version(self, model: str, version: str, *, status: str, outcome: str, actor: str, now: datetime) -> None:
        with self.transaction():
            self.register_version(model, version, status=status, actor=actor, now=now)
            self._update("model_versions", {"model": model, "version": version}, {"outcome": outcome})

    def model_version(self, model: str, version: str) -> ModelVersion | None:
        row = self.conn.execute("SELECT * FROM model_versions WHERE model = ? AND version = ?",
                                (model, version)).fetchone()
        return _version(row) if row else None

    def serving_version(self, model: str) -> ModelVersion | None:
        row = self.conn.execute("SELECT * FROM model_versions WHERE model = ? AND status = 'serving' "
                                "ORDER BY deployed_at DESC LIMIT 1", (model,)).fetchone()
        return _version(row) if row else None

    def model_versions(self, model: str | None = None) -> list[ModelVersion]:
        if model is None:
            rows = self.conn.execute("SELECT * FROM model_versions ORDER BY model, created_at")
        else:
            rows = self.conn.execute("SELECT * FROM model_versions WHERE model = ? ORDER BY created_at", (model,))
        return [_version(r) for r in rows]

    # -- retrains ---------------------------------------------------------------------------

    def record_retrain(self, *, model: str, candidate: str | None, status: RetrainStatus, reason: str,
                       actor: str, now: datetime, incident_id: int | None = None,
                       metrics: Mapping[str, float] | None = None, current_metrics: Mapping[str, float] | None = None,
                       gate: Mapping[str, Any] | None = None) -> Retrain:
        with self.transaction():
            retrain_id = self._insert("retrains", {
                "model": model, "candidate": candidate, "status": status.value, "reason": reason,
                "at": to_epoch(now), "actor": actor, "incident_id": incident_id,
                "metrics": dumps(dict(metrics or {})), "current_metrics": dumps(dict(current_metrics or {})),
                "gate": dumps(dict(gate or {}))})
            self.audit(actor, f"retrain.{status.value}", f"model:{model}",
                       {"retrain": retrain_id, "candidate": candidate, "reason": reason, "gate": dict(gate or {}),
                        "incident": incident_id}, now=now)
        return self.get_retrain(retrain_id)  # type: ignore[return-value]

    def link_retrain(self, retrain_id: int, rollout_id: int) -> None:
        self._update("retrains", {"id": retrain_id}, {"rollout_id": rollout_id})

    def get_retrain(self, retrain_id: int) -> Retrain | None:
        row = self.conn.execute("SELECT * FROM retrains WHERE id = ?", (retrain_id,)).fetchone()
        return _retrain(row) if row else None

    def list_retrains(self, model: str, *, since: datetime | None = None) -> list[Retrain]:
        rows = self.conn.execute("SELECT * FROM retrains WHERE model = ? AND at >= ? ORDER BY at, id",
                                 (model, to_epoch(since) if since else float("-inf")))
        return [_retrain(r) for r in rows]

    def count_retrains_since(self, model: str, since: datetime) -> int:
        """Retrains that ran a playbook (skipped ones do not count against the limit)."""
        row = self.conn.execute("SELECT count(*) FROM retrains WHERE model = ? AND at >= ? AND status != ?",
                                (model, to_epoch(since), RetrainStatus.SKIPPED.value)).fetchone()
        return int(row[0])

    def retrained_for(self, incident_id: int) -> bool:
        row = self.conn.execute("SELECT 1 FROM retrains WHERE incident_id = ? LIMIT 1", (incident_id,)).fetchone()
        return row is not None

    # -- what the governance report reads ----------------------------------------------------------

    def model_incident_ids(self, model: str, since: datetime, until: datetime) -> list[int]:
        """Incidents started in ``[since, until)`` that carry ``model`` as a label of their own or
        of a signal, oldest first."""
        rows = self.conn.execute(
            "SELECT i.id FROM incidents i WHERE i.started_at >= ? AND i.started_at < ? AND ("
            "json_extract(i.labels, '$.model') = ? OR EXISTS (SELECT 1 FROM incident_signals s "
            "WHERE s.incident_id = i.id AND json_extract(s.labels, '$.model') = ?)) ORDER BY i.started_at, i.id",
            (to_epoch(since), to_epoch(until), model, model))
        return [int(r[0]) for r in rows]

    def model_daily_health(self, model: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Per UTC day: the model's drift hits and their peak (the share of drifted features), and
        the mean of its latency P95 samples (seconds; None without samples)."""
        days: dict[str, dict[str, Any]] = {}
        for day, hits, peak in self.conn.execute(
                "SELECT date(ts, 'unixepoch'), count(*), max(value) FROM hits WHERE detector = 'drift' "
                "AND coalesce(json_extract(labels, '$.model'), entity) = ? AND ts >= ? AND ts < ? GROUP BY 1",
                (model, to_epoch(since), to_epoch(until))):
            days.setdefault(day, {})["drift_hits"] = int(hits)
            days[day]["drift_peak"] = peak
        latency = [info.series_id for info in self.known_series(labels={"model": model})  # type: ignore[attr-defined]
                   if info.kind == "quantile" and "latency" in info.metric]
        if latency:
            frame = self.sample_history(to_epoch(since), to_epoch(until), latency)  # type: ignore[attr-defined]
            frame = frame[(frame["ts"] < to_epoch(until)) & frame["value"].notna()]
            if len(frame):
                day_of = pd.to_datetime(frame["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
                for day, p95 in frame["value"].groupby(day_of.to_numpy()).mean().items():
                    days.setdefault(day, {})["latency_p95"] = float(p95)
        return [{"day": day, "drift_hits": v.get("drift_hits", 0), "drift_peak": v.get("drift_peak"),
                 "latency_p95": v.get("latency_p95")} for day, v in sorted(days.items())]

    def audit_for(self, subjects: Sequence[str], since: datetime, until: datetime) -> list[Any]:
        """Audit entries about any of ``subjects`` in the period, oldest first."""
        wanted = set(subjects)
        return [e for e in self.audit_entries(since=since, until=until) if e.subject in wanted]
