"""The store's connection, transactions, migrations, audit log and flags.

Two backends behind one small API (``conn.execute(sql, params)`` with ``?`` placeholders, rows
by index and by name, ``executemany``, ``transaction()``):

- SQLite (the default): one file in WAL mode with a busy timeout, created with mode 0600, used
  through ``sqlite3`` itself (nothing in between on the hot paths). ``transaction()`` is
  ``BEGIN IMMEDIATE``, so two processes never interleave writes.
- PostgreSQL (``store.url: postgresql://…``): see ``agent.store.postgres``; ``transaction()`` is
  ``BEGIN``. Row or advisory locks for several agents go in ``transaction()`` or beside the
  statement that reads what it changes (``SELECT … FOR UPDATE``).

Each thread gets its own connection. A nested ``transaction()`` is a savepoint, so a state change
and its audit entry commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlite_utils

from agent.clock import from_epoch, to_epoch, utcnow
from agent.errors import SchemaTooNewError, StoreDamagedError, StoreError, StoreFullError, StoreUnavailableError
from agent.flow.audit import AuditEntry
from agent.store import migrations
from agent.store.sessions import SessionLimits
from agent.store.turns import Turns

GENESIS = "0" * 64
_NULL_VALUE = re.compile(r"NULL value in (\w+)\.(\w+)")


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
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def store_target(target: str | os.PathLike[str]) -> Path | sa.URL:
    """The SQLite file or the PostgreSQL URL ``target`` names: a path, ``sqlite:///PATH`` or
    ``postgresql://USER@HOST:PORT/DB``; ``StoreError`` for anything else."""
    if isinstance(target, os.PathLike) or "://" not in target:
        return Path(target)
    try:
        url = sa.make_url(target)
    except sa.exc.ArgumentError:
        url = None
    if url is not None and url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database)
    if url is not None and url.get_backend_name() == "postgresql" and url.drivername in ("postgresql", "postgresql+psycopg"):
        return url
    shown = target.split("://", 1)[0] + "://…"
    raise StoreError(shown, "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")


def each_value(conn: Any, *, integer: bool = False, source: str = "?") -> str:
    """A subquery of the values of a JSON list (bound at ``?``, or a column named by ``source``)
    for ``x IN (…)``: SQLite's ``json_each``, PostgreSQL's ``jsonb_array_elements_text`` (cast to
    bigint when ``integer``)."""
    if getattr(conn, "postgresql", False):
        subquery: str = conn.each_value(integer=integer, source=source)
        return subquery
    return f"SELECT value FROM json_each({source})"


# What a PostgreSQL server answers at connection time when the settings are wrong, not when it
# is down or busy (libpq gives no SQLSTATE for these; "too many clients" or "starting up" pass).
_REFUSED = ("does not exist", "password authentication failed", "no pg_hba.conf entry", "authentication failed")


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on a lock another connection (or process) holds."""
    return isinstance(exc, sqlite3.OperationalError) and ("database is locked" in str(exc) or "busy" in str(exc))


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the PostgreSQL store going away or not answering in time: a server
    down or restarting (its session ended), a lock or statement timeout, a connection refused."""
    if isinstance(exc, StoreUnavailableError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        exc = exc.orig or exc
    import psycopg

    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def is_transient(exc: BaseException) -> bool:
    """Whether the same write may succeed if asked again a little later (nothing was written)."""
    return is_busy(exc) or is_connection_lost(exc)


def store_error(path: str | os.PathLike[str], exc: sqlite3.Error) -> StoreError:
    """The StoreError for a failed SQLite call: StoreFullError when the disk has no room."""
    text = str(exc)
    if any(words in text for words in _NO_ROOM):
        return StoreFullError(str(path), text)
    if is_damaged(exc):
        return StoreDamagedError(str(path), text)
    return StoreError(str(path), f"cannot be used ({text})")


def is_damaged(exc: BaseException) -> bool:
    """True when SQLite said the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB), here or in
    what ``exc`` was raised from."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreDamagedError) or (
                isinstance(seen, sqlite3.DatabaseError) and getattr(seen, "sqlite_errorcode", None) in _DAMAGED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def damaged_error(path: str | os.PathLike[str], exc: BaseException) -> StoreDamagedError:
    """The StoreDamagedError for ``exc`` (one ``is_damaged`` says yes to), with SQLite's words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreDamagedError):
            return seen
        if isinstance(seen, sqlite3.DatabaseError):
            return StoreDamagedError(str(path), str(seen))
        seen = seen.__cause__ or seen.__context__
    return StoreDamagedError(str(path), first_line(exc))


def first_line(exc: BaseException) -> str:
    """The first line of a driver's message (psycopg's go on with context lines)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def psycopg_errors() -> tuple[type[BaseException], ...]:
    """psycopg's and SQLAlchemy's database errors, to catch beside sqlite3's."""
    import psycopg

    return (psycopg.Error, sa.exc.DBAPIError)


class StoreBase:
    BUSY_TIMEOUT_MS = 10_000

    def __init__(self, target: str | os.PathLike[str], *, password: str | None = None,
                 sessions: SessionLimits | None = None, host_clock: Callable[[], float] = time.time) -> None:
        """``target``: the SQLite file (a path or ``sqlite:///PATH``) or ``postgresql://…``;
        ``password`` for PostgreSQL, from the config's secret (never from the log); ``sessions``:
        the timeouts every PostgreSQL session gets (none when not given). ``host_clock``: the
        store's clock on SQLite (epoch seconds; what ``aiops_now()`` answers there); PostgreSQL's
        is the server's."""
        found = store_target(target)
        self._local = threading.local()
        self._engine: sa.Engine | None = None
        self._host_clock = host_clock
        self._turns = Turns()  # SQLite: this process' writers, first come first served
        if isinstance(found, Path):
            self.path: Path | str = found
            self.postgresql = False
            self._open()
        else:
            from agent.store import postgres

            self.path = postgres.redacted(found)  # messages name the URL, never its password
            self.postgresql = True
            self._engine = postgres.engine(found, password, sessions)
            self.conn  # noqa: B018 - connect now: a server that is down or refuses is a StoreError here
            self._migrate_or_raise()

    # -- connection ---------------------------------------------------------------------

    def _open(self) -> None:
        assert isinstance(self.path, Path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        except OSError as exc:
            raise StoreError(str(self.path), f"cannot create the store file: {exc.strerror}") from exc
        self._migrate_or_raise()

    def _migrate_or_raise(self) -> None:
        try:
            self.migrate()
        except sqlite3.OperationalError as exc:
            raise store_error(self.path, exc) from exc
        except sqlite3.DatabaseError as exc:
            if is_damaged(exc):
                raise StoreDamagedError(str(self.path), str(exc)) from None
            raise
        except psycopg_errors() as exc:
            raise StoreError(str(self.path), f"cannot be used ({first_line(exc)})") from exc

    def check_pages(self, budget_s: float) -> bool:
        """SQLite's ``quick_check`` of every page, for at most ``budget_s`` seconds (it reads the
        whole file: about a second per 100 MB here). Raises StoreDamagedError for a damaged file;
        False when the budget ran out before the end. PostgreSQL checks its own pages: True."""
        if self.postgresql:
            return True
        conn = self.conn
        timer = threading.Timer(budget_s, conn.interrupt)
        timer.start()
        try:
            rows = conn.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
                return False
            raise store_error(self.path, exc) from None
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None
        finally:
            timer.cancel()
        problems = [line.strip() for row in rows for line in str(row[0]).splitlines()
                    if line.strip() and not line.startswith("***") and not self._null_that_is_not(line.strip())]
        if problems and problems != ["ok"]:
            raise StoreDamagedError(str(self.path), "quick_check: " + "; ".join(problems[:3]))
        return True

    def _null_that_is_not(self, problem: str) -> bool:
        """SQLite 3.40's quick_check says "NULL value in T.C" for every row of a WITHOUT ROWID table
        whose primary key lists its columns in another order than the table does (incident_keys),
        while integrity_check finds nothing: such a line is believed only when a row has a NULL."""
        found = _NULL_VALUE.fullmatch(problem)
        if found is None or found.group(1) not in self.table_names():
            return False
        table, column = found.groups()
        if column not in {c[1] for c in self.conn.execute(f'PRAGMA table_info("{table}")')}:
            return False
        return self.conn.execute(f'SELECT 1 FROM "{table}" WHERE "{column}" IS NULL LIMIT 1').fetchone() is None

    @property
    def conn(self) -> Any:
        """This thread's connection: ``sqlite3.Connection`` on SQLite, the same API on PostgreSQL."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.depth == 0 and getattr(conn, "lost", False):
            # The server ended this session (a restart, a failover): the next statement outside a
            # transaction gets a new connection instead of failing on this one for good.
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect_postgresql() if self.postgresql else self._connect_sqlite()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _connect_sqlite(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=True)
            conn.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # The store's clock (leases are judged by it): the host's, which every agent on one
            # SQLite file shares.
            conn.create_function("aiops_now", 0, self._host_clock)
        except sqlite3.DatabaseError as exc:
            if any(words in str(exc) for words in _NO_ROOM):
                raise store_error(self.path, exc) from exc
            raise StoreError(str(self.path), f"not a usable SQLite database: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _connect_postgresql(self) -> Any:
        from agent.store import postgres

        assert self._engine is not None
        try:
            return postgres.Connection(self._engine.raw_connection())
        except psycopg_errors() as exc:
            reason = first_line(getattr(exc, "orig", None) or exc)
            if any(words in reason for words in _REFUSED):  # asking again will not help: say so
                raise StoreError(str(self.path), f"the server refused the connection ({reason}): "
                                                 "check store.url and store.password") from None
            raise StoreUnavailableError(str(self.path), f"cannot connect: {reason}") from None

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this thread's connection, for schema inspection and export. It leaves
        the connection as it is: no recursive triggers, no plugins. SQLite only."""
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

    def dispose(self) -> None:
        """Close this thread's connection and, on PostgreSQL, every pooled one."""
        self.close()
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self.conn
        if self._local.depth == 0 and not self.postgresql:
            # This process' writers in turn (agent.store.turns), then SQLite's lock against others.
            if not self._turns.acquire(self._local.__dict__.get("busy_ms", self.BUSY_TIMEOUT_MS) / 1000):
                raise sqlite3.OperationalError("database is locked")
            try:
                with self._transaction(conn) as same:
                    yield same
            finally:
                self._turns.release()
            return
        with self._transaction(conn) as same:
            yield same

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        depth = self._local.depth
        name = f"sp{depth}"
        # PostgreSQL: what must not interleave between agents takes serialize()'s lock.
        begin = "BEGIN" if self.postgresql else "BEGIN IMMEDIATE"
        conn.execute(begin if depth == 0 else f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self._local.depth = depth
        conn.execute("COMMIT" if depth == 0 else f"RELEASE SAVEPOINT {name}")

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """One read-only view of the whole store for the reads inside: what others commit
        meanwhile is not seen, so rows read from several tables agree with each other. It takes no
        write lock (SQLite: a deferred transaction in WAL mode; PostgreSQL: REPEATABLE READ)."""
        conn = self.conn
        if self._local.depth:
            raise StoreError(str(self.path), "expected no transaction under way for a snapshot, found one")
        if self.postgresql:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM migrations").fetchone()  # the view is taken at the first read
        self._local.depth = 1
        try:
            yield conn
        finally:
            self._local.depth = 0
            conn.execute("ROLLBACK")

    @contextmanager
    def lock_wait(self, seconds: float | None) -> Iterator[None]:
        """Outside a transaction: the transactions of the block wait at most ``seconds`` for a
        lock (SQLite's busy timeout; PostgreSQL's ``lock_timeout``) instead of the store's
        default. None: the default."""
        if seconds is None or self._local.__dict__.get("depth", 0):
            yield
            return
        ms = max(1, round(seconds * 1000))
        conn = self.conn
        if self.postgresql:
            old = conn.execute("SHOW lock_timeout").fetchone()[0]
            conn.execute(f"SET lock_timeout = {ms}")
            try:
                yield
            finally:
                if not getattr(conn, "lost", False):
                    conn.execute("SELECT set_config('lock_timeout', ?, false)", (old,))
            return
        conn.execute(f"PRAGMA busy_timeout = {ms}")
        self._local.busy_ms = ms
        try:
            yield
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
            del self._local.busy_ms

    def serialize(self, name: str) -> None:
        """Inside a transaction: let no other agent run a transaction that serializes on ``name``
        until this one ends (placing hits into incidents: two shard agents must see each other's
        incidents, or one fault opens two; taking a lease). SQLite already gives that: ``BEGIN
        IMMEDIATE`` takes the one write lock of the file. PostgreSQL takes an advisory lock on the
        name's hash, released with the transaction."""
        assert self._local.depth > 0, "serialize() belongs inside a transaction"
        if self.postgresql:
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def store_now(self) -> float:
        """The store's clock, epoch seconds: PostgreSQL's (``clock_timestamp()``), the host's on
        SQLite. What leases and other agents' staleness are judged by."""
        return float(self.conn.execute("SELECT aiops_now()").fetchone()[0])

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        rows: list[Any] = self.conn.execute(sql, params).fetchall()
        return rows

    def query_one(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        """INSERT with bound values, returning the new row's ``id``; ``table`` and column names
        come from code, never from input."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if self.postgresql:
            return int(self.conn.execute(sql + " RETURNING id", list(row.values())).fetchone()[0])
        return int(self.conn.execute(sql, list(row.values())).lastrowid)

    def _update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        sets = ", ".join(f"{c} = ?" for c in values)
        where = " AND ".join(f"{c} = ?" for c in key)
        cursor = self.conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*values.values(), *key.values()])
        return int(cursor.rowcount)

    # -- schema ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        if self.postgresql:
            if self.conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
                return 0
            return int(self.conn.execute("SELECT coalesce(max(number), 0) FROM migrations").fetchone()[0])
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
            with self.transaction() as conn, self._naming_migration(step):
                step.apply(conn)
                conn.execute("INSERT INTO migrations (number, name, applied_at) VALUES (?, ?, ?)",
                             (number, step.name, to_epoch(utcnow())))
                if not self.postgresql:  # PostgreSQL's version is the migrations table's newest
                    conn.execute(f"PRAGMA user_version = {int(max(number, self.schema_version))}")
            applied.append(number)
        return applied

    @contextmanager
    def _naming_migration(self, step: migrations.Migration) -> Iterator[None]:
        try:
            yield
        except psycopg_errors() as exc:
            raise StoreError(str(self.path), f"migration {step.number} ({step.name}) failed: {first_line(exc)}") from exc

    def _applied_migrations(self) -> set[int]:
        if "migrations" not in self.table_names():
            return set()
        return {int(r[0]) for r in self.conn.execute("SELECT number FROM migrations")}

    # -- inspection and export ------------------------------------------------------------

    def _inspector(self) -> sa.Inspector:
        assert self._engine is not None
        return sa.inspect(self._engine)

    def _reflected(self, name: str) -> sa.Table:
        assert self._engine is not None
        return sa.Table(name, sa.MetaData(), autoload_with=self._engine)

    def table_names(self) -> list[str]:
        """The store's tables, by name (SQLite's own ``sqlite_*`` tables left out)."""
        if self.postgresql:
            return sorted(self._inspector().get_table_names())
        return sorted(name for name in self.db.table_names() if not name.startswith("sqlite_"))

    def table_counts(self) -> dict[str, int]:
        """Each table and its number of rows."""
        if self.postgresql:
            return {name: int(self.conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                    for name in self.table_names()}
        return {name: self.db.table(name).count for name in self.table_names()}

    def table_schema(self, table: str | None = None) -> str:
        """The ``CREATE TABLE`` statement of ``table``; without one, every statement of the store."""
        if self.postgresql:
            names = [table] if table is not None else self.table_names()
            if table is not None:
                self._check_table(table)
            return "\n".join(str(sa.schema.CreateTable(self._reflected(n)).compile(self._engine)).strip() + ";"
                             for n in names)
        if table is None:
            return self.db.schema
        return self._table(table).schema + ";"

    def table_columns(self, table: str) -> list[str]:
        if self.postgresql:
            self._check_table(table)
            return [column["name"] for column in self._inspector().get_columns(table)]
        return [column.name for column in self._table(table).columns]

    def table_primary_key(self, table: str) -> list[str]:
        """The columns of ``table``'s primary key (``rowid`` for a SQLite table without one)."""
        if self.postgresql:
            self._check_table(table)
            return list(self._inspector().get_pk_constraint(table)["constrained_columns"])
        found = self._table(table)
        return ["rowid"] if found.use_rowid else list(found.pks)

    def table_rows(self, table: str, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The rows of ``table`` as dicts, in rowid order (primary-key order for a table without
        rowids); ``StoreError`` naming the tables when there is no such table."""
        if self.postgresql:
            order = ", ".join(f'"{c}"' for c in self.table_primary_key(table))
            sql = f'SELECT * FROM "{table}" ORDER BY {order}' + (" LIMIT ?" if limit is not None else "")
            cursor = self.conn.execute(sql, (limit,) if limit is not None else ())
            return (dict(zip(row.keys(), row, strict=True)) for row in cursor)
        found = self._table(table)
        order = "rowid" if found.use_rowid else ", ".join(f'"{pk}"' for pk in found.pks)
        return found.rows_where(order_by=order, limit=limit)

    def _check_table(self, name: str) -> None:
        names = self.table_names()
        if name not in names:
            raise StoreError(str(self.path), f"expected a table, one of {', '.join(names)}; found {name!r}")

    def _table(self, name: str) -> sqlite_utils.db.Table:
        self._check_table(name)
        return self.db.table(name)

    # -- audit ----------------------------------------------------------------------------

    def audit(self, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None,
              *, now: datetime | None = None) -> int:
        """Append one entry to the audit chain (inside the caller's transaction, if any)."""
        ts = to_epoch(now or utcnow())
        body = dumps(dict(details or {}))
        with self.transaction() as conn:
            # PostgreSQL: two writers must not read the same previous hash; the chain's table is
            # locked for the rest of the transaction (SQLite's BEGIN IMMEDIATE already is).
            if self.postgresql:
                conn.execute("LOCK TABLE audit IN SHARE ROW EXCLUSIVE MODE")
            row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            digest = entry_hash(prev, ts, actor, action, subject, body)
            return self._insert("audit", {"ts": ts, "actor": actor, "action": action, "subject": subject,
                                          "details": body, "prev_hash": prev, "hash": digest})

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
