"""How far each remediation rule is trusted (``agent.flow.trust``): the ``rule_trust`` table's
schema, migrations and queries, and the record graduation reads (a rule's decided runs, newest
first). Every move writes its audit entry, with the runs behind it, in the same transaction.

``TrustRepository`` is what a stage is handed (``store.trust``); ``TrustStore`` keeps the
``Store``'s former methods as one-line delegations while callers move over."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from agent.clock import from_epoch, to_epoch
from agent.flow.trust import Evidence, RuleTrust, RunEvidence, TrustSetting
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script


@migration(41, "remediation: how far each rule is trusted; runs found by their parent")
def _rule_trust(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE rule_trust (
            rule TEXT PRIMARY KEY, setting TEXT NOT NULL, mode TEXT NOT NULL, since REAL NOT NULL,
            changed_by TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', runs TEXT NOT NULL DEFAULT '[]');
        CREATE INDEX runs_parent ON remediation_runs(parent_id)
    """)


def _trust(row: sqlite3.Row) -> RuleTrust:
    return RuleTrust(rule=row["rule"], setting=TrustSetting(row["setting"]), mode=row["mode"],
                     since=from_epoch(row["since"]), changed_by=row["changed_by"], reason=row["reason"],
                     runs=tuple(json.loads(row["runs"] or "[]")))


# A real run's outcome as evidence, and a shadow run's as a person checked it.
_OUTCOME = {"verified": Evidence.VERIFIED, "not_fixed": Evidence.NOT_FIXED, "failed": Evidence.FAILED,
            "timeout": Evidence.FAILED}
_VERDICT = {"fixed": Evidence.VERIFIED, "not_fixed": Evidence.NOT_FIXED}


class TrustRepository:
    """The ``rule_trust`` table, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def get(self, rule: str) -> RuleTrust | None:
        row = self.db.conn.execute("SELECT * FROM rule_trust WHERE rule = ?", (rule,)).fetchone()
        return _trust(row) if row else None

    def all(self) -> dict[str, RuleTrust]:
        return {row["rule"]: _trust(row) for row in self.db.conn.execute("SELECT * FROM rule_trust ORDER BY rule")}

    def move(self, rule: str, *, setting: TrustSetting, mode: str, actor: str, reason: str,
                       now: datetime, runs: Sequence[int] = ()) -> RuleTrust:
        """Move ``rule`` to ``mode`` under ``setting``, audited with the runs behind it."""
        before = self.get(rule)
        with self.db.transaction():
            self.db.conn.execute(
                "INSERT INTO rule_trust (rule, setting, mode, since, changed_by, reason, runs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule) DO UPDATE SET setting = excluded.setting, "
                "mode = excluded.mode, since = excluded.since, changed_by = excluded.changed_by, "
                "reason = excluded.reason, runs = excluded.runs",
                (rule, setting.value, mode, to_epoch(now), actor, reason, dumps(list(runs))))
            self.db.audit(actor, "remediation.trust", f"rule:{rule}", {
                "setting": setting.value, "mode": mode, "from": before.mode if before else None,
                "from_setting": before.setting.value if before else None, "reason": reason, "runs": list(runs)},
                now=now)
        found = self.get(rule)
        assert found is not None
        return found

    def clear(self, rule: str, *, actor: str, reason: str, now: datetime) -> None:
        """Forget what moved ``rule``: its configuration decides again."""
        with self.db.transaction():
            self.db.conn.execute("DELETE FROM rule_trust WHERE rule = ?", (rule,))
            self.db.audit(actor, "remediation.trust", f"rule:{rule}", {"setting": "configured", "reason": reason},
                       now=now)

    def evidence(self, rule: str, *, since: datetime, limit: int) -> list[RunEvidence]:
        """The rule's runs that came to a verdict since ``since``, newest first: real runs that were
        verified, not fixed, failed or timed out (and rolled back, when their rollback ran), and
        shadow runs a person checked."""
        rows = self.db.conn.execute(
            "SELECT r.id, r.incident_id, r.mode, r.status, coalesce(r.started_at, r.requested_at) AS at, "
            "CASE WHEN r.mode = 'shadow' THEN json_extract(r.verification, '$.verdict') END AS verdict, "
            "EXISTS (SELECT 1 FROM remediation_runs c WHERE c.parent_id = r.id AND c.mode = 'rollback' "
            "AND c.started_at IS NOT NULL) AS undone FROM remediation_runs r WHERE r.rule = ? AND ("
            "(r.mode = 'apply' AND r.started_at >= ? AND r.status IN ('verified', 'not_fixed', 'failed', 'timeout')) "
            "OR (r.mode = 'shadow' AND r.requested_at >= ? AND json_extract(r.verification, '$.verdict') IS NOT NULL)) "
            "ORDER BY at DESC, r.id DESC LIMIT ?", (rule, to_epoch(since), to_epoch(since), limit)).fetchall()
        out = []
        for row in rows:
            shadow = row["mode"] == "shadow"
            evidence = _VERDICT.get(row["verdict"]) if shadow else _OUTCOME[row["status"]]
            if evidence is None:
                continue
            outcomes = {evidence, Evidence.ROLLED_BACK} if row["undone"] else {evidence}
            out.append(RunEvidence(run=int(row["id"]), incident_id=row["incident_id"], at=from_epoch(row["at"]),
                                   outcomes=frozenset(outcomes), shadow=shadow))
        return out


class TrustStore(StoreBase):
    """The store's face of ``TrustRepository``: ``store.trust``, and the former method names."""

    @property
    def trust(self) -> TrustRepository:
        return TrustRepository(self)

    def rule_trust(self, rule: str) -> RuleTrust | None:
        return self.trust.get(rule)

    def rule_trusts(self) -> dict[str, RuleTrust]:
        return self.trust.all()

    def set_rule_trust(self, rule: str, *, setting: TrustSetting, mode: str, actor: str, reason: str,
                       now: datetime, runs: Sequence[int] = ()) -> RuleTrust:
        return self.trust.move(rule, setting=setting, mode=mode, actor=actor, reason=reason, now=now, runs=runs)

    def clear_rule_trust(self, rule: str, *, actor: str, reason: str, now: datetime) -> None:
        self.trust.clear(rule, actor=actor, reason=reason, now=now)

    def rule_evidence(self, rule: str, *, since: datetime, limit: int) -> list[RunEvidence]:
        return self.trust.evidence(rule, since=since, limit=limit)
