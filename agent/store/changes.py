"""Store methods for changes: deploys, model rollouts and config changes, the suspects of incidents."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime

from agent.clock import from_epoch, to_epoch
from agent.flow.incidents import Change
from agent.store.base import StoreBase, dumps


def _change(row: sqlite3.Row) -> Change:
    return Change(id=row["id"], ts=from_epoch(row["ts"]), kind=row["kind"], labels=json.loads(row["labels"] or "{}"),
                  description=row["description"], actor=row["actor"])


class ChangeStore(StoreBase):
    """changes (part of the incidents store)."""

    def add_change(self, *, ts: datetime, kind: str, labels: Mapping[str, str], description: str, actor: str,
                   now: datetime) -> Change:
        with self.transaction():
            change_id = self._insert("changes", {"ts": to_epoch(ts), "kind": kind, "labels": dumps(dict(labels)),
                                                 "description": description, "actor": actor,
                                                 "recorded_at": to_epoch(now)})
            self.audit(actor, "change.add", f"change:{change_id}",
                       {"kind": kind, "labels": dict(labels), "ts": to_epoch(ts)}, now=now)
        return Change(id=change_id, ts=ts, kind=kind, labels=dict(labels), description=description, actor=actor)

    def list_changes(self, *, since: datetime | None = None, limit: int | None = 100) -> list[Change]:
        rows = self.conn.execute("SELECT * FROM changes WHERE ts >= ? ORDER BY ts DESC, id DESC LIMIT ?",
                                 (to_epoch(since) if since else float("-inf"), -1 if limit is None else limit))
        return [_change(r) for r in rows]

    def changes_near(self, labels: Mapping[str, str] | Iterable[tuple[str, str]], *, before: datetime,
                     lookback_s: float) -> list[Change]:
        """Changes in ``[before - lookback_s, before]`` sharing at least one label value (``labels``:
        a mapping, or name-value pairs from several label sets), nearest first. One read."""
        end = to_epoch(before)
        rows = self.conn.execute("SELECT * FROM changes WHERE ts >= ? AND ts <= ? ORDER BY ts DESC, id DESC",
                                 (end - lookback_s, end))
        wanted = set(labels.items() if isinstance(labels, Mapping) else labels)
        return [c for c in map(_change, rows) if wanted & set(c.labels.items())]
