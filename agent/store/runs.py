"""Store methods for remediation runs: create, move through their states, count for the limits.

Every change writes its audit entry in the same transaction. Run states and their meaning live in
``agent.flow.runs``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from agent.clock import from_epoch, to_epoch, utcnow
from agent.errors import LeaseLostError, StoreError, TransitionError
from agent.flow.runs import LEDGER_SEP, HostSummary, Run, RunMode, RunStatus
from agent.store.base import StoreBase, dumps, each_value
from agent.store.leases import LeaseRepository
from agent.store.ledger import DAY_S, LedgerColumns, LedgerDays, columns_of, concat, rebuild
from agent.store.migrations import migration, run_script


@migration(40, "remediation runs: owner, batch, rule mode")
def _run_columns(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        ALTER TABLE remediation_runs ADD COLUMN owner TEXT;
        ALTER TABLE remediation_runs ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE remediation_runs ADD COLUMN rule_mode TEXT NOT NULL DEFAULT '';
        CREATE INDEX runs_ended ON remediation_runs(rule, ended_at)
    """)


# ``ledger_runs``' outcome code of each run state (others: 0).
_LEDGER_CODES = {"verified": 1, "not_fixed": 2, "failed": 3, "timeout": 3, "interrupted": 4, "running": 5,
                 "verifying": 5}

_TIME_COLUMNS = ("requested_at", "started_at", "ended_at", "approved_at", "expires_at", "verify_until")


class RunStore(StoreBase):
    """remediation runs."""

    def create_run(self, *, incident_id: int | None, rule: str, rule_mode: str, playbook: str,
                   playbook_sha256: str, mode: RunMode, status: RunStatus, targets: Sequence[str],
                   extravars: Mapping[str, Any], batch: int = 0,
                   parent_id: int | None = None, expires_at: datetime | None = None, reason: str = "",
                   actor: str = "agent", now: datetime | None = None) -> Run:
        now = now or utcnow()
        with self.transaction():
            run_id = self._insert("remediation_runs", {
                "incident_id": incident_id, "rule": rule, "rule_mode": rule_mode, "playbook": playbook,
                "playbook_sha256": playbook_sha256, "mode": str(mode), "status": str(status),
                "targets": dumps(list(targets)), "extravars": dumps(dict(extravars)), "batch": batch,
                "parent_id": parent_id, "requested_at": to_epoch(now),
                "expires_at": to_epoch(expires_at), "reason": reason,
            })
            days = LedgerDays(self.conn)
            days.apply({}, days.runs("r.id = ?", [run_id]))  # a shadow run counts from its start
            self.audit(actor, f"remediation.{status}", f"run:{run_id}", {
                "incident": incident_id, "rule": rule, "playbook": playbook, "sha256": playbook_sha256,
                "mode": str(mode), "targets": list(targets), "batch": batch, "reason": reason,
            }, now=now)
        return self._run_or_fail(run_id)

    def get_run(self, run_id: int) -> Run | None:
        row = self.conn.execute("SELECT * FROM remediation_runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list_runs(self, *, incident_id: int | None = None, rule: str | None = None,
                  statuses: Iterable[RunStatus] | None = None, mode: RunMode | None = None,
                  limit: int | None = None) -> list[Run]:
        """Newest first."""
        where, params = ["1 = 1"], []
        if incident_id is not None:
            where.append("incident_id = ?")
            params.append(incident_id)
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if mode is not None:
            where.append("mode = ?")
            params.append(str(mode))
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            where.append(f"status IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        sql = f"SELECT * FROM remediation_runs WHERE {' AND '.join(where)} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_run(row) for row in self.conn.execute(sql, params)]

    def update_run(self, run_id: int, status: RunStatus, *, actor: str = "agent", reason: str = "",
                   expect: Iterable[RunStatus] | None = None, now: datetime | None = None,
                   lease: tuple[str, str] | None = None, **values: Any) -> Run:
        """Move a run to ``status`` (from one of ``expect``, when given), setting ``values`` too;
        with ``lease`` (name, holder), only while that holder holds it, checked in the same
        transaction (``LeaseLostError`` otherwise)."""
        now = now or utcnow()
        with self.transaction():
            run = self._run_or_fail(run_id)
            if expect is not None and run.status not in set(expect):
                raise TransitionError(f"remediation run {run_id}", str(run.status), str(status))
            if lease is not None and not LeaseRepository(self).holds(*lease):
                raise LeaseLostError(f"remediation run {run_id}", str(run.status), str(status), *lease)
            row: dict[str, Any] = {"status": str(status)}
            for key, value in values.items():
                row[key] = _column(key, value)
            if reason:
                row["reason"] = reason
            with LedgerDays(self.conn).tracked([run_id]):
                self._update("remediation_runs", {"id": run_id}, row)
            details = {"incident": run.incident_id, "rule": run.rule, "mode": str(run.mode),
                       "from": str(run.status), "reason": reason}
            for key in ("rc", "host_summary", "artifact_dir"):
                if key in values:
                    details[key] = row[key] if key != "host_summary" else json.loads(row[key])
            self.audit(actor, f"remediation.{status}", f"run:{run_id}", details, now=now)
        return self._run_or_fail(run_id)

    def approve_run(self, run_id: int, *, actor: str, now: datetime | None = None) -> Run:
        """Grant a run waiting for approval; an expired or already decided one is refused."""
        now = now or utcnow()
        run = self._run_or_fail(run_id)
        if run.status is RunStatus.WAITING_APPROVAL and run.expires_at and now >= run.expires_at:
            ended = run.expires_at.isoformat()
            self.update_run(run_id, RunStatus.EXPIRED, actor="agent", now=now, ended_at=now,
                            expect=[RunStatus.WAITING_APPROVAL], reason=f"nobody approved it before {ended}")
            raise TransitionError(f"remediation run {run_id}", "expired", "approved",
                                  f"its approval window ended at {ended}")
        return self.update_run(run_id, RunStatus.APPROVED, actor=actor, now=now,
                               expect=[RunStatus.WAITING_APPROVAL], reason=f"approved by {actor}",
                               approved_by=actor, approved_at=now)

    # -- counting, for the limits ---------------------------------------------------------

    def count_applied_since(self, since: datetime, *, rule: str | None = None, target: str | None = None) -> int:
        """Real runs (not check, not shadow) requested since ``since``, optionally of one rule or target."""
        sql = ("SELECT count(*) FROM remediation_runs r WHERE r.mode = 'apply' "
               "AND r.started_at IS NOT NULL AND r.started_at >= ?")
        params: list[Any] = [to_epoch(since)]
        if rule is not None:
            sql += " AND r.rule = ?"
            params.append(rule)
        if target is not None:
            sql += f" AND ? IN ({each_value(self.conn, source='r.targets')})"
            params.append(target)
        return int(self.conn.execute(sql, params).fetchone()[0])

    def count_shadow_run_as_applied(self, run_id: int) -> None:
        """A replay's shadow run that would have run, counted from now on as an applied run that
        started and ended when it was decided (rate limits and cooldowns then see it as they would
        have seen the real run); its status stays ``shadow``, so nothing ever starts it. Only a
        replay's throwaway store is written this way."""
        with self.transaction() as conn, LedgerDays(conn).tracked([run_id]):
            conn.execute("UPDATE remediation_runs SET mode = 'apply', started_at = requested_at, "
                         "ended_at = requested_at WHERE id = ? AND status = 'shadow'", (run_id,))

    def last_applied_end(self, *, rule: str, target: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT max(coalesce(r.ended_at, r.started_at)) FROM remediation_runs r WHERE r.rule = ? "
            "AND r.mode = 'apply' AND r.started_at IS NOT NULL "
            f"AND ? IN ({each_value(self.conn, source='r.targets')})", (rule, target)).fetchone()
        return from_epoch(row[0]) if row and row[0] is not None else None

    def count_running(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM remediation_runs WHERE status = 'running'").fetchone()
        return int(row[0])

    def recent_outcomes(self, rule: str, *, limit: int, since: datetime | None = None) -> list[Run]:
        """The rule's last finished real runs (failed or verified), newest first."""
        outcomes = (RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.NOT_FIXED, RunStatus.VERIFIED)
        sql = (f"SELECT * FROM remediation_runs WHERE rule = ? AND mode = 'apply' "
               f"AND status IN ({', '.join('?' for _ in outcomes)}) AND coalesce(ended_at, requested_at) >= ? "
               "ORDER BY coalesce(ended_at, requested_at) DESC, id DESC LIMIT ?")
        params = [rule, *outcomes, to_epoch(since) if since else float("-inf"), limit]
        return [_run(row) for row in self.conn.execute(sql, params)]

    # -- the ledger: what each rule's playbook did --------------------------------------------

    def ledger_runs(self, since_s: float, until_s: float, *,
                    incident_ids: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """What the ledger counts, in one pass over the runs requested in ``[since_s, until_s)``
        (of ``incident_ids`` only, when given), read straight into typed columns: outcomes come
        as small integers (``LEDGER_OUTCOMES``), rule and playbook as one key (``rule␟playbook``).

        First, the real runs that started, one row each: ``id``, ``key``, ``outcome``, ``targets``
        (JSON text), ``started_at`` (epoch seconds), ``verify_s`` (from the start to the
        verification; NaN unless verified) and ``rolled_back`` (the rule's rollback playbook ran
        after it). Then, per rule, the shadow runs: ``shadow`` (how many), ``checked`` (a person
        said what happened: ``verification.verdict``) and ``checked_fixed`` (the playbook's fix
        was what recovered the incident).
        """
        where = "((r.requested_at >= ? AND r.requested_at < ?) OR (r.mode = 'rollback' AND r.requested_at >= ?))"
        params: list[Any] = [LEDGER_SEP, since_s, until_s, since_s]  # a rollback comes after the run it undoes
        if incident_ids is not None:
            where += f" AND r.incident_id IN ({each_value(self.conn, integer=True)})"
            params.append(json.dumps([int(i) for i in incident_ids]))
        outcome = " ".join(f"WHEN '{status}' THEN {code}" for status, code in _LEDGER_CODES.items())
        cursor = self.conn.cursor()
        cursor.row_factory = None
        cursor.execute(
            "SELECT r.id, CASE r.mode WHEN 'apply' THEN 0 WHEN 'rollback' THEN 1 ELSE 2 END, r.rule || ? || r.playbook, "
            f"CASE WHEN r.mode = 'shadow' THEN CASE json_extract(r.verification, '$.verdict') WHEN 'fixed' THEN 1 "
            f"WHEN 'not_fixed' THEN 2 ELSE 0 END ELSE CASE r.status {outcome} ELSE 0 END END, "
            "CASE WHEN r.mode = 'apply' THEN r.targets END, r.started_at, CASE WHEN r.status = 'verified' THEN "
            "CAST(json_extract(r.verification, '$.verified_at') AS DOUBLE PRECISION) - r.started_at END, "
            f"coalesce(r.parent_id, 0) FROM remediation_runs r WHERE r.mode IN ('apply', 'rollback', 'shadow') "
            f"AND {where}", params)
        rows = np.fromiter(cursor, dtype=np.dtype([
            ("id", "int64"), ("mode", "int8"), ("key", object), ("outcome", "int8"), ("targets", object),
            ("started_at", "float64"), ("verify_s", "float64"), ("parent_id", "int64")]))
        mode, ran = rows["mode"], ~np.isnan(rows["started_at"])
        apply = rows[(mode == 0) & ran & (rows["started_at"] < until_s)]
        runs = pd.DataFrame({name: apply[name] for name in ("id", "key", "outcome", "targets", "started_at",
                                                            "verify_s")})
        runs["rolled_back"] = np.isin(apply["id"], rows["parent_id"][(mode == 1) & ran])
        shadow = rows[mode == 2]
        shadows = pd.DataFrame({"rule": [k.split(LEDGER_SEP, 1)[0] for k in shadow["key"]], "shadow": 1,
                                "checked": shadow["outcome"] > 0, "checked_fixed": shadow["outcome"] == 1})
        return runs, shadows.groupby("rule", sort=True)[["shadow", "checked", "checked_fixed"]].sum().reset_index()

    def ledger_summary(self, since_s: float, until_s: float, *, rule: str | None = None) -> LedgerColumns | None:
        """The ledger's figures of the runs requested in ``[since_s, until_s)`` (of ``rule`` only,
        when given): from the summary for each day the window holds all runs of, from the runs
        for the part-days at either end otherwise. None when the summary cannot say: a run of
        those days started at or after ``until_s`` (``ledger_runs`` then)."""
        first, end = math.floor(since_s / DAY_S), math.ceil(until_s / DAY_S)
        if first * DAY_S < since_s and self._runs_requested(first * DAY_S, since_s):
            first += 1
        if end * DAY_S > until_s and self._runs_requested(until_s, end * DAY_S):
            end -= 1
        days = LedgerDays(self.conn)
        parts, ranges = [columns_of({})], [(since_s, until_s)]
        if first < end:
            late = self.conn.execute(  # "+ 0": found by its start (few started since), not by its request
                "SELECT 1 FROM remediation_runs WHERE started_at >= ? AND mode = 'apply' AND requested_at + 0 >= ? "
                "AND requested_at + 0 < ? LIMIT 1", (until_s, first * DAY_S, end * DAY_S)).fetchone()
            if late is not None:
                return None
            parts.append(days.read(first, end, rule=rule))
            ranges = [(since_s, first * DAY_S), (end * DAY_S, until_s)]
        for start_s, stop_s in ranges:
            if start_s >= stop_s:
                continue
            where = ("r.requested_at >= ? AND r.requested_at < ? AND (r.mode = 'shadow' OR "
                     "(r.mode = 'apply' AND r.started_at < ?))")
            params: list[Any] = [start_s, stop_s, until_s]
            if rule is not None:
                where += " AND r.rule = ?"
                params.append(rule)
            parts.append(columns_of(days.runs(where, params)))
        return concat(parts)

    def _runs_requested(self, start_s: float, stop_s: float) -> bool:
        """Whether a run the ledger counts was requested in ``[start_s, stop_s)``."""
        return self.conn.execute(
            "SELECT 1 FROM remediation_runs WHERE requested_at >= ? AND requested_at < ? "
            "AND mode IN ('apply', 'shadow') LIMIT 1", (start_s, stop_s)).fetchone() is not None

    def rebuild_ledger(self) -> int:
        """Recompute the ledger's summary from the runs (rows written)."""
        with self.transaction() as conn:
            return rebuild(conn)

    def run_reasons(self, run_ids: Sequence[int]) -> dict[int, str]:
        """Each run's last recorded reason, by id."""
        if not run_ids:
            return {}
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: a ledger asks for thousands
        cursor.execute(f"SELECT id, reason FROM remediation_runs WHERE id IN ({each_value(self.conn, integer=True)})",
                       (json.dumps([int(i) for i in run_ids]),))
        return dict(cursor)

    def _run_or_fail(self, run_id: int) -> Run:
        run = self.get_run(run_id)
        if run is None:
            raise StoreError(str(self.path), f"no remediation run {run_id}")
        return run


def _column(key: str, value: Any) -> Any:
    if key in _TIME_COLUMNS:
        return to_epoch(value)
    if key == "host_summary":
        return dumps({host: asdict(summary) for host, summary in value.items()})
    if key in ("verification", "extravars"):
        return dumps(dict(value))
    if key == "targets":
        return dumps(list(value))
    return value


def _run(row: sqlite3.Row) -> Run:
    hosts = json.loads(row["host_summary"] or "{}")
    return Run(
        id=row["id"], incident_id=row["incident_id"], rule=row["rule"], rule_mode=row["rule_mode"],
        playbook=row["playbook"], playbook_sha256=row["playbook_sha256"], mode=RunMode(row["mode"]),
        status=RunStatus(row["status"]), targets=tuple(json.loads(row["targets"])),
        extravars=json.loads(row["extravars"]), batch=row["batch"],
        parent_id=row["parent_id"], rc=row["rc"],
        requested_at=from_epoch(row["requested_at"]), started_at=from_epoch(row["started_at"]),
        ended_at=from_epoch(row["ended_at"]), approved_by=row["approved_by"],
        approved_at=from_epoch(row["approved_at"]), expires_at=from_epoch(row["expires_at"]),
        verify_until=from_epoch(row["verify_until"]), verification=json.loads(row["verification"] or "{}"),
        host_summary={h: HostSummary(**s) for h, s in hosts.items()}, artifact_dir=row["artifact_dir"],
        reason=row["reason"], output=row["output"], owner=row["owner"])
