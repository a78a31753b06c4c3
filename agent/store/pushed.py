"""The alerts the agent keeps in Alertmanager: per channel and incident, the labels it sent (they
name the alert there, so they stay the same), the outage, when it was last sent, and whether its
resolution went out. ``PushedAlertRepository`` (``store.pushed``) is what a stage is handed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.clock import from_epoch, to_epoch
from agent.flow.incidents import IncidentStatus, Severity
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script


@migration(33, "alerts pushed to Alertmanager")
def _pushed_alerts(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE alertmanager_alerts (
            channel TEXT NOT NULL, incident_id INTEGER NOT NULL REFERENCES incidents(id),
            labels TEXT NOT NULL, episode INTEGER NOT NULL, pushed_at REAL NOT NULL,
            resolved INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (channel, incident_id));
        CREATE INDEX alertmanager_alerts_firing ON alertmanager_alerts(channel, resolved)
    """)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pushed:
    """What Alertmanager was last told of one incident on one channel."""

    labels: Mapping[str, str]
    episode: int
    pushed_at: datetime
    resolved: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertState:
    """An incident a channel may have to tell Alertmanager about: open, or resolved while its
    alert there still fires; ``pushed`` is None before the first push."""

    incident_id: int
    severity: Severity
    status: IncidentStatus
    labels: Mapping[str, str]
    episode: int
    started_at: datetime
    resolved_at: datetime | None
    pushed: Pushed | None


class PushedAlertRepository:
    """The ``alertmanager_alerts`` table, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def states(self, channel: str) -> list[AlertState]:
        """Open incidents, and resolved ones whose alert on ``channel`` was not resolved yet."""
        rows = self.db.conn.execute(
            "SELECT i.id, i.severity, i.status, i.labels, i.resolved_at, e.number, e.started_at, "
            "a.labels AS pushed_labels, a.episode, a.pushed_at, a.resolved FROM incidents i "
            "JOIN incident_episodes e ON e.incident_id = i.id AND e.number = "
            "(SELECT max(number) FROM incident_episodes WHERE incident_id = i.id) "
            "LEFT JOIN alertmanager_alerts a ON a.incident_id = i.id AND a.channel = ? "
            "WHERE i.status != 'resolved' OR a.resolved = 0 ORDER BY i.id", (channel,)).fetchall()
        return [AlertState(
            incident_id=r["id"], severity=Severity(r["severity"]), status=IncidentStatus(r["status"]),
            labels=json.loads(r["labels"] or "{}"), episode=r["number"], started_at=from_epoch(r["started_at"]),
            resolved_at=from_epoch(r["resolved_at"]),
            pushed=None if r["pushed_labels"] is None else Pushed(
                labels=json.loads(r["pushed_labels"]), episode=r["episode"], pushed_at=from_epoch(r["pushed_at"]),
                resolved=bool(r["resolved"]))) for r in rows]

    def record(self, channel: str, pushed: Sequence[tuple[int, Pushed]]) -> None:
        """Remember what one accepted push told Alertmanager, per incident."""
        with self.db.transaction():
            self.db.conn.executemany(
                "INSERT INTO alertmanager_alerts (channel, incident_id, labels, episode, pushed_at, resolved) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, incident_id) DO UPDATE SET labels = excluded.labels, "
                "episode = excluded.episode, pushed_at = excluded.pushed_at, resolved = excluded.resolved",
                [(channel, incident_id, dumps(dict(p.labels)), p.episode, to_epoch(p.pushed_at), int(p.resolved))
                 for incident_id, p in pushed])

    def get(self, channel: str, incident_id: int) -> Pushed | None:
        """What Alertmanager was last told of ``incident_id`` on ``channel``."""
        row = self.db.conn.execute("SELECT * FROM alertmanager_alerts WHERE channel = ? AND incident_id = ?",
                                   (channel, incident_id)).fetchone()
        if row is None:
            return None
        return Pushed(labels=json.loads(row["labels"]), episode=row["episode"], pushed_at=from_epoch(row["pushed_at"]),
                      resolved=bool(row["resolved"]))


class PushedAlertStore(StoreBase):
    """The store's face of ``PushedAlertRepository``: ``store.pushed``."""

    @property
    def pushed(self) -> PushedAlertRepository:
        return PushedAlertRepository(self)


__all__ = ["AlertState", "Pushed", "PushedAlertRepository", "PushedAlertStore"]
