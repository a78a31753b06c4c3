"""The notification outbox (``OutboxRepository``, ``store.outbox``), and the reads the incident
summary needs.

A notification is written to ``outbox`` once (its ``dedup_key`` is unique: channel and timeline
event), in the same transaction that moves the notifier's cursor past the event, so a restart
neither loses nor repeats one. Delivery marks the row sent, or counts the attempt and sets the
next one; every change is an audit entry.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from agent.clock import from_epoch, to_epoch, utcnow
from agent.flow.runs import RunMode, RunStatus
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script

ACTOR = "notifier"


class OutboxStatus(StrEnum):
    PENDING = "pending"      # waiting for its first or next attempt
    SENT = "sent"            # the endpoint accepted it
    SILENCED = "silenced"    # recorded, never sent: a paging channel and a silenced incident
    EXPIRED = "expired"      # still failing after notify.give_up_after


@dataclass(frozen=True, slots=True, kw_only=True)
class NewNotification:
    channel: str
    incident_id: int
    event: str
    dedup_key: str
    payload: Mapping[str, Any]
    status: OutboxStatus = OutboxStatus.PENDING


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    id: int
    channel: str
    incident_id: int | None
    event: str
    dedup_key: str
    payload: Mapping[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    status: OutboxStatus
    last_error: str | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HitPoint:
    """One recorded hit of an incident, for plotting and ranking."""

    series_id: str
    detector: str
    ts: datetime
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """A remediation run of an incident, as the summary shows it."""

    id: int
    rule: str
    playbook: str
    mode: RunMode
    status: RunStatus
    rc: int | None
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str = ""
    output: str = ""  # the end of the playbook's output (secrets already scrubbed)


@migration(35, "notifier cursor and outbox delivery order")
def _notify_cursor(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE notify_cursor (
            name TEXT PRIMARY KEY, last_event_id INTEGER NOT NULL, updated_at REAL NOT NULL);
        CREATE INDEX outbox_order ON outbox(channel, incident_id, status, id);
        """,
    )


def _item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"], channel=row["channel"], incident_id=row["incident_id"], event=row["event"],
        dedup_key=row["dedup_key"], payload=json.loads(row["payload"]), created_at=from_epoch(row["created_at"]),
        next_attempt_at=from_epoch(row["next_attempt_at"]), attempts=row["attempts"],
        status=OutboxStatus(row["status"]), last_error=row["last_error"], sent_at=from_epoch(row["sent_at"]))


def _update_pending(conn: sqlite3.Connection, item_id: int, values: Mapping[str, Any]) -> int:
    """Set ``values`` on row ``item_id`` while it is pending; how many rows changed (0 or 1)."""
    sets = ", ".join(f"{column} = ?" for column in values)
    cursor = conn.execute(f"UPDATE outbox SET {sets} WHERE id = ? AND status = 'pending'", [*values.values(), item_id])
    return int(cursor.rowcount)


class OutboxRepository:
    """The ``outbox`` and ``notify_cursor`` tables, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    # -- the cursor over incident_events ------------------------------------------------------

    def cursor(self) -> int:
        """The id of the last timeline event notifications were written for."""
        row = self.db.conn.execute("SELECT last_event_id FROM notify_cursor WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def enqueue(self, items: list[NewNotification], *, cursor: int, now: datetime | None = None) -> int:
        """Write ``items`` (each at most once, by dedup_key) and move the cursor to ``cursor``,
        together. Returns how many rows were new."""
        now = now or utcnow()
        ts = to_epoch(now)
        added = 0
        with self.db.transaction() as conn:
            for item in items:
                new = conn.execute(
                    "INSERT INTO outbox (channel, incident_id, event, dedup_key, payload, created_at, "
                    "next_attempt_at, attempts, status) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) "
                    "ON CONFLICT(dedup_key) DO NOTHING RETURNING id",
                    (item.channel, item.incident_id, item.event, item.dedup_key, dumps(dict(item.payload)), ts, ts,
                     str(item.status))).fetchone()
                if new is not None:
                    added += 1
                    action = "notification.queued" if item.status is OutboxStatus.PENDING else "notification.silenced"
                    self.db.audit(ACTOR, action, f"outbox:{new[0]}",
                                  {"channel": item.channel, "incident_id": item.incident_id, "event": item.event},
                                  now=now)
            conn.execute(
                "INSERT INTO notify_cursor (name, last_event_id, updated_at) VALUES ('events', ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET last_event_id = max(notify_cursor.last_event_id, excluded.last_event_id), "
                "updated_at = excluded.updated_at", (cursor, ts))
        return added

    # -- delivery -----------------------------------------------------------------------------

    def due(self, *, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """Pending rows whose time has come, oldest first. A row is held back while an older row
        of the same channel and incident waits for its retry (so acknowledge never overtakes
        trigger); the caller keeps that order within one delivery round."""
        rows = self.db.conn.execute(
            "SELECT * FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= ? AND NOT EXISTS ("
            "  SELECT 1 FROM outbox e WHERE e.channel = o.channel AND e.incident_id IS NOT DISTINCT FROM o.incident_id"
            "  AND e.status = 'pending' AND e.id < o.id AND e.next_attempt_at > ?) ORDER BY o.id LIMIT ?",
            (to_epoch(now), to_epoch(now), limit)).fetchall()
        return [_item(r) for r in rows]

    def claim(self, item_id: int, *, now: datetime, lease_until: datetime) -> bool:
        """Take a due row for one delivery attempt: push its next attempt to ``lease_until`` unless
        another process took it first. A crash mid-attempt leaves it due again after the lease."""
        with self.db.transaction():
            cur = self.db.conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?",
                (to_epoch(lease_until), item_id, to_epoch(now)))
            return cur.rowcount == 1

    def mark_sent(self, item_id: int, *, now: datetime | None = None) -> None:
        """Count the attempt that delivered a pending row, and mark it sent."""
        now = now or utcnow()
        with self.db.transaction():
            if _update_pending(self.db.conn, item_id, {"status": "sent", "sent_at": to_epoch(now), "last_error": None}):
                self.db.conn.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
                self.db.audit(ACTOR, "notification.sent", f"outbox:{item_id}", {}, now=now)

    def mark_failed(self, item_id: int, *, error: str, retry_at: datetime | None, now: datetime | None = None) -> None:
        """Count a failed attempt; ``retry_at=None`` gives up (status expired)."""
        now = now or utcnow()
        values: dict[str, Any] = {"last_error": error[:500]}
        if retry_at is None:
            values["status"] = "expired"
        else:
            values["next_attempt_at"] = to_epoch(retry_at)
        with self.db.transaction():
            if _update_pending(self.db.conn, item_id, values):
                self.db.conn.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
                action = "notification.expired" if retry_at is None else "notification.failed"
                self.db.audit(ACTOR, action, f"outbox:{item_id}", {"error": error[:500], "retry_at": retry_at}, now=now)

    def count_pending(self) -> int:
        return int(self.db.conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0])

    def items(self, *, status: OutboxStatus | None = None, incident_id: int | None = None) -> list[OutboxItem]:
        """Every row (of ``status`` and ``incident_id`` when given), by id."""
        sql, params = "SELECT * FROM outbox WHERE 1 = 1", []
        if status is not None:
            sql += " AND status = ?"
            params.append(str(status))
        if incident_id is not None:
            sql += " AND incident_id = ?"
            params.append(incident_id)
        return [_item(r) for r in self.db.conn.execute(sql + " ORDER BY id", params)]


class OutboxStore(StoreBase):
    """The store's face of ``OutboxRepository`` (``store.outbox``), and the summary's reads of
    hits, samples and runs."""

    @property
    def outbox(self) -> OutboxRepository:
        return OutboxRepository(self)

    # -- what the incident summary reads --------------------------------------------------------

    def summary_hits(self, incident_id: int, *, series_id: str | None = None,
                     detector: str | None = None) -> list[HitPoint]:
        """The incident's hits (of one series and detector when given), oldest first."""
        if series_id is None:
            rows = self.conn.execute(
                "SELECT series_id, detector, ts, value, expected, lower, upper, score FROM hits "
                "WHERE incident_id = ? ORDER BY ts, id", (incident_id,)).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT series_id, detector, ts, value, expected, lower, upper, score FROM hits "
                "WHERE series_id = ? AND incident_id = ? AND detector = ? ORDER BY ts, id",
                (series_id, incident_id, detector)).fetchall()
        return [HitPoint(series_id=r["series_id"], detector=r["detector"], ts=from_epoch(r["ts"]), value=r["value"],
                         expected=r["expected"], lower=r["lower"], upper=r["upper"], score=r["score"]) for r in rows]

    def summary_samples(self, series_id: str, *, start: datetime, end: datetime,
                        limit: int = 5000) -> list[tuple[datetime, float | None]]:
        """Stored samples of one series in [start, end], oldest first (empty when none are kept)."""
        found = self.sample_history(to_epoch(start), to_epoch(end), [series_id]).head(limit)
        return [(from_epoch(ts), None if math.isnan(value) else value) for ts, value in zip(found["ts"], found["value"])]

    def summary_runs(self, incident_id: int) -> list[RunOutcome]:
        rows = self.conn.execute(
            "SELECT * FROM remediation_runs WHERE incident_id = ? ORDER BY coalesce(started_at, requested_at), id",
            (incident_id,)).fetchall()  # in the order they ran: a check run before the apply it gated
        return [RunOutcome(id=r["id"], rule=r["rule"], playbook=r["playbook"], mode=RunMode(r["mode"]), status=RunStatus(r["status"]),
                           rc=r["rc"], requested_at=from_epoch(r["requested_at"]), started_at=from_epoch(r["started_at"]),
                           ended_at=from_epoch(r["ended_at"]), reason=r["reason"] or "", output=(r["output"] or "")[-4000:])
                for r in rows]

