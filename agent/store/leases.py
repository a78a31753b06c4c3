"""Store methods for what agents sharing a store share besides incidents: leases (see
``agent.flow.leases``), taken, renewed and released in one transaction each, so two agents asking
at once never both hold one, every change of holder audited; and what each shard agent last saw
of the open incidents' signals it judges, so the leader can verify a remediation on any shard."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from agent.clock import from_epoch, to_epoch
from agent.flow.leases import Lease
from agent.store.base import StoreBase
from agent.store.migrations import migration, run_script


@migration(80, "leases: which agent works which shard, and which one leads")
def _leases(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, taken_at REAL NOT NULL, expires_at REAL NOT NULL)
    """)


@migration(81, "signal observations: what each shard agent last saw of open incidents' signals")
def _signal_observations(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE signal_observations (
            series_id TEXT NOT NULL, detector TEXT NOT NULL, judged_at REAL NOT NULL, hit_at REAL,
            PRIMARY KEY (series_id, detector))
    """)


class LeaseStore(StoreBase):
    """leases, signal_observations."""

    # -- what shard agents saw ------------------------------------------------------------

    def open_signals(self) -> list[tuple[str, str]]:
        """(series id, detector) of every signal of an incident not resolved."""
        rows = self.conn.execute("SELECT DISTINCT s.series_id, s.detector FROM incident_signals s "
                                 "JOIN incidents i ON i.id = s.incident_id WHERE i.status != 'resolved'")
        return [(r[0], r[1]) for r in rows]

    def record_observations(self, rows: Sequence[tuple[str, str, bool]], *, now: datetime,
                            keep_s: float = 86_400.0) -> None:
        """(series id, detector, fired) judged with data at ``now``; observations older than
        ``keep_s`` go."""
        at = to_epoch(now)
        with self.transaction():
            if rows:
                self.conn.executemany(
                    "INSERT INTO signal_observations (series_id, detector, judged_at, hit_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (series_id, detector) DO UPDATE SET judged_at = excluded.judged_at, "
                    "hit_at = coalesce(excluded.hit_at, signal_observations.hit_at)",
                    [(sid, detector, at, at if fired else None) for sid, detector, fired in rows])
            self.conn.execute("DELETE FROM signal_observations WHERE judged_at < ?", (at - keep_s,))

    def observations(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[float, float | None]]:
        """(series id, detector) -> (judged_at, hit_at) as epoch seconds, for those recorded."""
        wanted = set(keys)
        if not wanted:
            return {}
        rows = self.conn.execute("SELECT series_id, detector, judged_at, hit_at FROM signal_observations")
        return {(r[0], r[1]): (float(r[2]), None if r[3] is None else float(r[3]))
                for r in rows if (r[0], r[1]) in wanted}

    # -- leases -----------------------------------------------------------------------------

    def take_lease(self, name: str, holder: str, *, ttl_s: float, now: datetime) -> bool:
        """Take ``name`` for ``holder`` until ``now + ttl_s``, or renew it; False while another
        holder's lease is live. A takeover is audited with the holder it replaced."""
        until = to_epoch(now + timedelta(seconds=ttl_s))
        with self.transaction():
            self.serialize("leases")  # two agents asking at once: one after the other
            row = self.conn.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO leases (name, holder, taken_at, expires_at) VALUES (?, ?, ?, ?)",
                                  (name, holder, to_epoch(now), until))
                self.audit(holder, "lease.taken", name, {"ttl_s": ttl_s}, now=now)
            elif row["holder"] == holder:
                self.conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (until, name))
            elif row["expires_at"] <= to_epoch(now):
                self.conn.execute("UPDATE leases SET holder = ?, taken_at = ?, expires_at = ? WHERE name = ?",
                                  (holder, to_epoch(now), until, name))
                self.audit(holder, "lease.taken", name, {"ttl_s": ttl_s, "from": row["holder"],
                                                         "expired_at": row["expires_at"]}, now=now)
            else:
                return False
        return True

    def release_lease(self, name: str, holder: str, *, now: datetime) -> bool:
        """Give ``name`` up (a clean stop), so a waiting agent takes it at once."""
        with self.transaction():
            gone = self.conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).rowcount
            if gone:
                self.audit(holder, "lease.released", name, {}, now=now)
        return bool(gone)

    def holds_lease(self, name: str, holder: str, *, now: datetime) -> bool:
        """Whether ``holder`` holds a live ``name``: checked inside the transaction that acts
        under the lease, so an agent that lost it cannot act."""
        row = self.conn.execute("SELECT 1 FROM leases WHERE name = ? AND holder = ? AND expires_at > ?",
                                (name, holder, to_epoch(now))).fetchone()
        return row is not None

    def leases(self) -> list[Lease]:
        rows = self.conn.execute("SELECT * FROM leases ORDER BY name")
        return [Lease(name=r["name"], holder=r["holder"], taken_at=from_epoch(r["taken_at"]),
                      expires_at=from_epoch(r["expires_at"])) for r in rows]
