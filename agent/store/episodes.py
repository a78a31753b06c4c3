"""Store methods for episodes: each outage of an incident, with its own times.

An incident's first episode starts when it opens; a reopen (a recurrence inside the flap window)
starts the next. Lifecycle steps write the current episode in the same transaction as the
incident row (``IncidentStore``), so the two never disagree.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from agent.clock import from_epoch, to_epoch
from agent.flow.incidents import Episode
from agent.store.base import StoreBase
from agent.store.migrations import migration, run_script

_TIMES = ("started_at", "detected_at", "acknowledged_at", "remediation_started_at", "remediation_verified_at",
          "resolved_at")
_COLUMNS = ("incident_id", "number", *_TIMES, "acknowledged_by", "resolved_by", "resolution", "flapping")


@migration(31, "incident episodes")
def _episodes(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE incident_episodes (
            incident_id INTEGER NOT NULL REFERENCES incidents(id), number INTEGER NOT NULL,
            started_at REAL NOT NULL, detected_at REAL NOT NULL,
            acknowledged_at REAL, acknowledged_by TEXT,
            remediation_started_at REAL, remediation_verified_at REAL,
            resolved_at REAL, resolved_by TEXT, resolution TEXT,
            flapping INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (incident_id, number));
        CREATE INDEX incident_episodes_started ON incident_episodes(started_at);
        ALTER TABLE hits ADD COLUMN began_at REAL;
        """,
    )
    # An incident that never reopened is one episode with the incident's own times.
    conn.execute(
        "INSERT INTO incident_episodes (incident_id, number, started_at, detected_at, acknowledged_at, "
        "acknowledged_by, remediation_started_at, remediation_verified_at, resolved_at, resolved_by, resolution) "
        "SELECT id, 1, started_at, detected_at, acknowledged_at, acknowledged_by, remediation_started_at, "
        "remediation_verified_at, resolved_at, resolved_by, resolution FROM incidents WHERE reopened = 0")
    reopened = conn.execute("SELECT * FROM incidents WHERE reopened > 0").fetchall()
    for row in reopened:
        episodes = _replay_timeline(conn, row)
        conn.executemany(
            f"INSERT INTO incident_episodes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
            [tuple(e[c] for c in _COLUMNS) for e in episodes])
        last = episodes[-1]
        conn.execute("UPDATE incidents SET remediation_started_at = ?, remediation_verified_at = ? WHERE id = ?",
                     (last["remediation_started_at"], last["remediation_verified_at"], row["id"]))


def _replay_timeline(conn: sqlite3.Connection, row: sqlite3.Row) -> list[dict[str, Any]]:
    """The episodes of a reopened incident, rebuilt from its timeline: each ``reopened`` event
    starts one; acknowledgements, remediation times and resolutions go to the episode they fell in.
    A later episode starts at the earliest hit recorded with its reopen, else at the reopen."""
    def new(number: int, started: float, detected: float, flapping: bool) -> dict[str, Any]:
        episode = dict.fromkeys(_COLUMNS)
        episode.update(incident_id=row["id"], number=number, started_at=started, detected_at=detected,
                       flapping=int(flapping))
        return episode

    episodes = [new(1, row["started_at"], row["detected_at"], False)]
    events = conn.execute("SELECT ts, kind, actor, details FROM incident_events WHERE incident_id = ? "
                          "ORDER BY ts, id", (row["id"],)).fetchall()
    for ts, kind, actor, text in events:
        details = json.loads(text or "{}")
        current = episodes[-1]
        if kind == "reopened":
            (first_hit,) = conn.execute(
                "SELECT min(ts) FROM hits WHERE incident_id = ? AND recorded_at = ? AND ts >= ?",
                (row["id"], ts, current["resolved_at"] or 0)).fetchone()
            episodes.append(new(len(episodes) + 1, min(first_hit or ts, ts), ts, bool(details.get("flapping"))))
        elif kind == "acknowledged" and current["acknowledged_at"] is None:
            current.update(acknowledged_at=ts, acknowledged_by=actor)
        elif kind == "remediating" and current["remediation_started_at"] is None:
            current["remediation_started_at"] = ts
        elif kind == "remediation":
            for key in ("remediation_started_at", "remediation_verified_at"):
                if details.get(key) is not None:
                    current[key] = details[key]
        elif kind == "resolved":
            current.update(resolved_at=ts, resolved_by=actor, resolution=details.get("resolution") or "manual")
    return episodes


def _episode(row: sqlite3.Row) -> Episode:
    return Episode(
        incident_id=row["incident_id"], number=row["number"], started_at=from_epoch(row["started_at"]),
        detected_at=from_epoch(row["detected_at"]), acknowledged_at=from_epoch(row["acknowledged_at"]),
        acknowledged_by=row["acknowledged_by"], remediation_started_at=from_epoch(row["remediation_started_at"]),
        remediation_verified_at=from_epoch(row["remediation_verified_at"]),
        resolved_at=from_epoch(row["resolved_at"]), resolved_by=row["resolved_by"], resolution=row["resolution"],
        flapping=bool(row["flapping"]))


class EpisodeStore(StoreBase):
    """Reading and writing ``incident_episodes``; the writers run inside the caller's transaction."""

    def incident_episodes(self, incident_id: int) -> list[Episode]:
        rows = self.conn.execute("SELECT * FROM incident_episodes WHERE incident_id = ? ORDER BY number",
                                 (incident_id,))
        return [_episode(r) for r in rows]

    def episodes_of(self, incident_ids: Iterable[int]) -> dict[int, list[Episode]]:
        ids = list(dict.fromkeys(incident_ids))
        out: dict[int, list[Episode]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self.conn.execute(
                f"SELECT * FROM incident_episodes WHERE incident_id IN ({', '.join('?' for _ in part)}) "
                "ORDER BY incident_id, number", part)
            for r in rows:
                out[r["incident_id"]].append(_episode(r))
        return out

    def _start_episode(self, incident_id: int, *, started_at: datetime, detected_at: datetime,
                       flapping: bool = False) -> int:
        """A new current episode; it cannot start before the previous one was resolved."""
        number, resolved = self.conn.execute(
            "SELECT coalesce(max(number), 0), max(resolved_at) FROM incident_episodes WHERE incident_id = ?",
            (incident_id,)).fetchone()
        start = to_epoch(started_at)
        if resolved is not None:
            start = max(start, resolved)
        start = min(start, to_epoch(detected_at))
        self.conn.execute(
            "INSERT INTO incident_episodes (incident_id, number, started_at, detected_at, flapping) "
            "VALUES (?, ?, ?, ?, ?)", (incident_id, number + 1, start, to_epoch(detected_at), int(flapping)))
        new: int = number + 1
        return new

    def _update_episode(self, incident_id: int, values: Mapping[str, Any], *, only_unset: bool = False) -> None:
        """Write times (epoch seconds) and names on the current episode; ``only_unset`` keeps those set."""
        if not values:
            return
        assignments = ", ".join(f"{k} = coalesce({k}, ?)" if only_unset else f"{k} = ?" for k in values)
        self.conn.execute(
            f"UPDATE incident_episodes SET {assignments} WHERE incident_id = ? AND number = "
            "(SELECT max(number) FROM incident_episodes WHERE incident_id = ?)",
            [*values.values(), incident_id, incident_id])

    def _sync_first_start(self, incident_id: int) -> None:
        """Episode 1 starts where the incident does (the incident's start only moves earlier as
        signals that began earlier join)."""
        self.conn.execute(
            "UPDATE incident_episodes SET started_at = min(detected_at, "
            "(SELECT started_at FROM incidents WHERE id = ?)) WHERE incident_id = ? AND number = 1",
            (incident_id, incident_id))

    def _pull_start(self, incident_id: int, ts: float) -> None:
        """An earlier first anomalous point for the current episode, never before the previous
        episode's resolution: what came before belongs to that outage."""
        self.conn.execute(
            "UPDATE incident_episodes SET started_at = min(started_at, max(?, coalesce("
            "(SELECT max(resolved_at) FROM incident_episodes p WHERE p.incident_id = incident_episodes.incident_id "
            "AND p.number < incident_episodes.number), ?))) WHERE incident_id = ? AND number = "
            "(SELECT max(number) FROM incident_episodes WHERE incident_id = ?)",
            (ts, ts, incident_id, incident_id))
