"""What agents sharing a store share besides incidents: leases (see
``agent.flow.leases``), taken, renewed and released in one transaction each, so two agents asking
at once never both hold one, every change of holder audited, expiry judged by the store's clock
(``aiops_now()``: PostgreSQL's ``clock_timestamp()``, the host's clock for a SQLite file); and what each shard agent last saw
of the open incidents' signals it judges, so the leader can verify a remediation on any shard.

``LeaseRepository`` (``store.leases``) and ``ObservationRepository`` (``store.observations``) are
what a stage is handed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime

from agent.clock import from_epoch, to_epoch
from agent.flow.leases import Lease
from agent.store.base import StoreBase
from agent.store.migrations import is_postgresql, migration, run_script


@migration(80, "leases: which agent works which shard, and which one leads")
def _leases(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, taken_at REAL NOT NULL, expires_at REAL NOT NULL)
    """)


@migration(82, "leases: expiry on the store's clock; who last waited for each lease")
def _lease_waiters(conn: sqlite3.Connection) -> None:
    if is_postgresql(conn):
        # SQLite's aiops_now() is the host's clock, given to each connection (StoreBase).
        conn.execute("CREATE FUNCTION aiops_now() RETURNS double precision LANGUAGE sql VOLATILE AS "
                     "'SELECT CAST(extract(epoch FROM clock_timestamp()) AS double precision)'")
    run_script(conn, """
        ALTER TABLE leases ADD COLUMN waiter TEXT;
        ALTER TABLE leases ADD COLUMN waited_at REAL
    """)


@migration(81, "signal observations: what each shard agent last saw of open incidents' signals")
def _signal_observations(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE signal_observations (
            series_id TEXT NOT NULL, detector TEXT NOT NULL, judged_at REAL NOT NULL, hit_at REAL,
            PRIMARY KEY (series_id, detector))
    """)


class ObservationRepository:
    """The ``signal_observations`` table: what each shard agent last saw of the signals of
    incidents not resolved, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def open_signals(self) -> list[tuple[str, str]]:
        """(series id, detector) of every signal of an incident not resolved."""
        rows = self.db.conn.execute("SELECT DISTINCT s.series_id, s.detector FROM incident_signals s "
                                    "JOIN incidents i ON i.id = s.incident_id WHERE i.status != 'resolved'")
        return [(r[0], r[1]) for r in rows]

    def record(self, rows: Sequence[tuple[str, str, bool]], *, now: datetime, keep_s: float = 86_400.0) -> None:
        """(series id, detector, fired) judged with data at ``now``; observations older than
        ``keep_s`` go."""
        at = to_epoch(now)
        with self.db.transaction():
            if rows:
                self.db.conn.executemany(
                    "INSERT INTO signal_observations (series_id, detector, judged_at, hit_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (series_id, detector) DO UPDATE SET judged_at = excluded.judged_at, "
                    "hit_at = coalesce(excluded.hit_at, signal_observations.hit_at)",
                    [(sid, detector, at, at if fired else None) for sid, detector, fired in rows])
            self.db.conn.execute("DELETE FROM signal_observations WHERE judged_at < ?", (at - keep_s,))

    def seen(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[float, float | None]]:
        """(series id, detector) -> (judged_at, hit_at) as epoch seconds, for those recorded."""
        wanted = set(keys)
        if not wanted:
            return {}
        rows = self.db.conn.execute("SELECT series_id, detector, judged_at, hit_at FROM signal_observations")
        return {(r[0], r[1]): (float(r[2]), None if r[3] is None else float(r[3]))
                for r in rows if (r[0], r[1]) in wanted}


class LeaseRepository:
    """The ``leases`` table, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def take(self, name: str, holder: str, *, ttl_s: float, now: datetime | None = None,
             wait_s: float | None = None) -> bool:
        """Take ``name`` for ``holder`` for ``ttl_s`` seconds of the store's clock, or renew it;
        False while another holder's lease is live (the refusal is noted as a wait, so the holder
        knows it is not alone). A takeover is audited with the holder it replaced; ``now`` is the
        time the audit entry records, never what expiry is judged by. ``wait_s``: how long to wait
        for a lock another agent (or a long transaction) holds before failing with the store's
        error."""
        db = self.db
        with db.lock_wait(wait_s), db.transaction():
            db.serialize("leases")  # two agents asking at once: one after the other
            at = db.store_now()
            until = at + ttl_s
            row = db.conn.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.conn.execute("INSERT INTO leases (name, holder, taken_at, expires_at) VALUES (?, ?, ?, ?)",
                                (name, holder, at, until))
                db.audit(holder, "lease.taken", name, {"ttl_s": ttl_s}, now=now)
            elif row["holder"] == holder:
                db.conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (until, name))
            elif row["expires_at"] <= at:
                db.conn.execute("UPDATE leases SET holder = ?, taken_at = ?, expires_at = ?, waiter = NULL, "
                                "waited_at = NULL WHERE name = ?", (holder, at, until, name))
                db.audit(holder, "lease.taken", name, {"ttl_s": ttl_s, "from": row["holder"],
                                                       "expired_at": row["expires_at"]}, now=now)
            else:
                db.conn.execute("UPDATE leases SET waiter = ?, waited_at = ? WHERE name = ?", (holder, at, name))
                return False
        return True

    def release(self, name: str, holder: str, *, now: datetime | None = None) -> bool:
        """Give ``name`` up (a clean stop), so a waiting agent takes it at once."""
        with self.db.transaction():
            gone = self.db.conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).rowcount
            if gone:
                self.db.audit(holder, "lease.released", name, {}, now=now)
        return bool(gone)

    def holds(self, name: str, holder: str) -> bool:
        """Whether ``holder`` holds a live ``name`` by the store's clock: checked inside the
        transaction that acts under the lease, so an agent that lost it cannot act."""
        row = self.db.conn.execute("SELECT 1 FROM leases WHERE name = ? AND holder = ? AND expires_at > aiops_now()",
                                   (name, holder)).fetchone()
        return row is not None

    def all(self) -> list[Lease]:
        """Every lease row, as of the store's clock now (``Lease.live``)."""
        rows = self.db.conn.execute("SELECT leases.*, aiops_now() AS read_at FROM leases ORDER BY name").fetchall()
        return [Lease(name=r["name"], holder=r["holder"], taken_at=_at(r["taken_at"]), expires_at=_at(r["expires_at"]),
                      read_at=_at(r["read_at"]), waiter=r["waiter"],
                      waited_at=None if r["waited_at"] is None else _at(r["waited_at"])) for r in rows]

    def live_holders(self) -> list[str]:
        """The holders of the leases live by the store's clock."""
        return [lease.holder for lease in self.all() if lease.live]


class LeaseStore(StoreBase):
    """The store's face of the two repositories: ``store.leases`` and ``store.observations``."""

    @property
    def leases(self) -> LeaseRepository:
        return LeaseRepository(self)

    @property
    def observations(self) -> ObservationRepository:
        return ObservationRepository(self)


def _at(epoch: float) -> datetime:
    at = from_epoch(epoch)
    assert at is not None
    return at
