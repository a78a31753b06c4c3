"""The store's connection, transactions, migrations, audit log and flags.

One SQLite file in WAL mode with a busy timeout, created with mode 0600. Each thread gets its own
connection. ``transaction()`` is ``BEGIN IMMEDIATE`` (nested: a savepoint), so a state change
and its audit entry commit together or not at all, and two processes never interleave writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import sqlite_utils

from agent.clock import from_epoch, to_epoch, utcnow
from agent.errors import SchemaTooNewError, StoreError, StoreFullError
from agent.flow.audit import AuditEntry
from agent.store import migrations

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditBreak:
    """The first entry where the chain does not hold, and why."""

    id: int
    reason: str


def entry_hash(prev_hash: str, ts: float, actor: str, action: str, subject: str, details: str) -> str:
    payload = json.dumps([prev_hash, repr(float(ts)), actor, action, subject, details], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def dumps(value: Any) -> str:
    """JSON for the store: sorted keys, no spaces, datetimes as epoch seconds."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_epoch(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "get_secret_value"):
        return "***"
    return str(value)


# What SQLite says when a write finds no room: SQLITE_FULL, or SQLITE_IOERR when even the WAL's
# shared-memory file cannot be grown.
_NO_ROOM = ("database or disk is full", "disk I/O error")


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on a lock another connection (or process) holds."""
    return isinstance(exc, sqlite3.OperationalError) and ("database is locked" in str(exc) or "busy" in str(exc))


def store_error(path: str | os.PathLike[str], exc: sqlite3.Error) -> StoreError:
    """The StoreError for a failed SQLite call: StoreFullError when the disk has no room."""
    text = str(exc)
    if any(words in text for words in _NO_ROOM):
        return StoreFullError(str(path), text)
    return StoreError(str(path), f"cannot be used ({text})")


class StoreBase:
    BUSY_TIMEOUT_MS = 10_000

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._open()

    # -- connection ---------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        except OSError as exc:
            raise StoreError(str(self.path), f"cannot create the store file: {exc.strerror}") from exc
        try:
            self.migrate()
        except sqlite3.OperationalError as exc:
            raise store_error(self.path, exc) from exc

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.BUSY_TIMEOUT_MS / 1000,
                                       check_same_thread=True)
                conn.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:
                if any(words in str(exc) for words in _NO_ROOM):
                    raise store_error(self.path, exc) from exc
                raise StoreError(str(self.path), f"not a usable SQLite database: {exc}") from exc
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this thread's connection, for schema inspection and export. It leaves
        the connection as it is: no recursive triggers, no plugins."""
        db = getattr(self._local, "db", None)
        if db is None or db.conn is not self.conn:
            db = sqlite_utils.Database(self.conn, recursive_triggers=False, execute_plugins=False)
            self._local.db = db
        return db

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._local.db = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        depth = self._local.depth
        name = f"sp{depth}"
        conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        self._local.depth = depth
        conn.execute("COMMIT" if depth == 0 else f"RELEASE {name}")

    def serialize(self, name: str) -> None:
        """Inside a transaction: let no other agent run a transaction that serializes on ``name``
        until this one ends (placing hits into incidents: two shard agents must see each other's
        incidents, or one fault opens two). SQLite already gives that: ``BEGIN IMMEDIATE`` takes
        the one write lock of the file. A server backend takes a transaction-scoped lock here."""
        assert self._local.depth > 0, "serialize() belongs inside a transaction"

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        """INSERT with bound values; ``table`` and column names come from code, never from input."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cursor = self.conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        return int(cursor.lastrowid)

    def _update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        sets = ", ".join(f"{c} = ?" for c in values)
        where = " AND ".join(f"{c} = ?" for c in key)
        cursor = self.conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*values.values(), *key.values()])
        return cursor.rowcount

    # -- schema ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> list[int]:
        """Apply every known migration the store has not had (each part's numbers grow on their
        own, so a new one may be lower than the newest applied); refuse a store that has had a
        migration this agent does not know: a newer agent wrote it."""
        current = self.schema_version
        newest = migrations.latest()
        done = self._applied_migrations()
        unknown = sorted(done - set(migrations.MIGRATIONS))
        if current > newest or unknown:
            raise SchemaTooNewError(str(self.path), max([current, *unknown]), newest)
        applied = []
        for number in sorted(n for n in migrations.MIGRATIONS if n not in done):
            step = migrations.MIGRATIONS[number]
            with self.transaction() as conn:
                step.apply(conn)
                conn.execute("INSERT INTO migrations (number, name, applied_at) VALUES (?, ?, ?)",
                             (number, step.name, to_epoch(utcnow())))
                conn.execute(f"PRAGMA user_version = {int(max(number, self.schema_version))}")
            applied.append(number)
        return applied

    def _applied_migrations(self) -> set[int]:
        if not self.db["migrations"].exists():
            return set()
        return {int(r[0]) for r in self.conn.execute("SELECT number FROM migrations")}

    # -- inspection and export ------------------------------------------------------------

    def table_names(self) -> list[str]:
        """The store's tables, by name (SQLite's own ``sqlite_*`` tables left out)."""
        return sorted(name for name in self.db.table_names() if not name.startswith("sqlite_"))

    def table_counts(self) -> dict[str, int]:
        """Each table and its number of rows."""
        return {name: self.db.table(name).count for name in self.table_names()}

    def table_schema(self, table: str | None = None) -> str:
        """The ``CREATE TABLE`` statement of ``table``; without one, every statement of the store."""
        if table is None:
            return self.db.schema
        return self._table(table).schema + ";"

    def table_columns(self, table: str) -> list[str]:
        return [column.name for column in self._table(table).columns]

    def table_rows(self, table: str, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The rows of ``table`` as dicts, in rowid order (primary-key order for a table without
        rowids); ``StoreError`` naming the tables when there is no such table."""
        found = self._table(table)
        order = "rowid" if found.use_rowid else ", ".join(f'"{pk}"' for pk in found.pks)
        return found.rows_where(order_by=order, limit=limit)

    def _table(self, name: str) -> sqlite_utils.db.Table:
        names = self.table_names()
        if name not in names:
            raise StoreError(str(self.path), f"expected a table, one of {', '.join(names)}; found {name!r}")
        return self.db.table(name)

    # -- audit ----------------------------------------------------------------------------

    def audit(self, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None,
              *, now: datetime | None = None) -> int:
        """Append one entry to the audit chain (inside the caller's transaction, if any)."""
        ts = to_epoch(now or utcnow())
        body = dumps(dict(details or {}))
        with self.transaction() as conn:
            row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            digest = entry_hash(prev, ts, actor, action, subject, body)
            cursor = conn.execute(
                "INSERT INTO audit (ts, actor, action, subject, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, actor, action, subject, body, prev, digest))
            return int(cursor.lastrowid)

    def audit_entries(self, *, since: datetime | None = None, until: datetime | None = None,
                      limit: int | None = None) -> Iterator[AuditEntry]:
        sql = "SELECT * FROM audit WHERE ts >= ? AND ts <= ? ORDER BY id"
        params: list[Any] = [to_epoch(since) if since else float("-inf"), to_epoch(until) if until else float("inf")]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.conn.execute(sql, params):
            yield AuditEntry(id=row["id"], ts=from_epoch(row["ts"]), actor=row["actor"], action=row["action"],
                             subject=row["subject"], details=json.loads(row["details"]),
                             prev_hash=row["prev_hash"], hash=row["hash"])

    def verify_audit(self, *, start_hash: str = GENESIS) -> AuditBreak | None:
        """Walk the chain from ``start_hash``; the first entry that was edited, or that follows a
        deleted or inserted one."""
        prev = start_hash
        cursor = self.conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute("SELECT id, ts, actor, action, subject, details, prev_hash, hash FROM audit ORDER BY id")
        sha256, quote, float_repr = hashlib.sha256, encode_basestring_ascii, repr
        for row_id, ts, actor, action, subject, details, prev_hash, digest in rows:
            if prev_hash != prev:
                return AuditBreak(id=row_id, reason="does not follow the entry before it (an entry was deleted or inserted)")
            # entry_hash's payload built by hand: json.dumps' per-call set-up is a third of the
            # time over a million entries.
            payload = "[" + ",".join(map(quote, (prev, float_repr(float(ts)), actor, action, subject, details))) + "]"
            if sha256(payload.encode("ascii")).hexdigest() != digest:
                return AuditBreak(id=row_id, reason="its content does not match its hash (the entry was edited)")
            prev = digest
        return None

    # -- flags: small named switches that every process honours ----------------------------

    def set_flag(self, name: str, value: str | None, *, actor: str, reason: str = "",
                 now: datetime | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO flags (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (name, value, to_epoch(now or utcnow()), actor))
            self.audit(actor, "flag.set", name, {"value": value, "reason": reason}, now=now)

    def get_flag(self, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM flags WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None
