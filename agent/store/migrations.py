"""Numbered forward migrations. Each runs with its record in one transaction.

The ``migrations`` table records each applied number and ``PRAGMA user_version`` the highest;
a store that has had a migration unknown here was written by a newer agent and is refused.
Numbers are grouped by the part of the store they belong to (1-9 core, 10-19 samples, 20-29
detectors, 30-39 incidents and notifications, 40-49 remediation, 50-59 reports, 60-69 model rollouts,
70-79 the packed sample history, 80-89 leases, 90-94 the remediation ledger's summary), so parts grow
independently: a store gets every known migration it has not had, in number order.

Migrations are written in SQLite's words and run on both backends: on PostgreSQL ``run_script``
gives DDL PostgreSQL's types (``agent.store.postgres.ddl``); a step whose SQL must differ asks
``is_postgresql(conn)``. PostgreSQL records the newest number in the ``migrations`` table only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The connection: ``sqlite3.Connection``, or ``agent.store.postgres.Connection`` (the same API).
Apply = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    apply: Apply


MIGRATIONS: dict[int, Migration] = {}


def migration(number: int, name: str) -> Callable[[Apply], Apply]:
    def register(fn: Apply) -> Apply:
        if number in MIGRATIONS:
            raise RuntimeError(f"migration {number} registered twice ({MIGRATIONS[number].name}, {name})")
        MIGRATIONS[number] = Migration(number, name, fn)
        return fn

    return register


def is_postgresql(conn: Any) -> bool:
    return bool(getattr(conn, "postgresql", False))


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction.

    ``executescript`` would commit first, splitting a migration from its record.
    """
    if is_postgresql(conn):
        from agent.store.postgres import ddl

        script = ddl(script)
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def latest() -> int:
    return max(MIGRATIONS) if MIGRATIONS else 0


@migration(1, "initial")
def _initial(conn: sqlite3.Connection) -> None:
    if is_postgresql(conn):
        from agent.store.postgres import COMPAT_FUNCTIONS

        for statement in COMPAT_FUNCTIONS:
            conn.execute(statement)
    for create in (_core_tables, _sample_tables, _detector_tables, _incident_tables, _change_tables,
                   _remediation_tables, _notification_tables):
        create(conn)


def _core_tables(conn: sqlite3.Connection) -> None:
    """The migration record, the audit chain and the runtime flags."""
    run_script(
        conn,
        """
        CREATE TABLE migrations (
            number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);

        CREATE TABLE audit (
            id INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE INDEX audit_ts ON audit(ts);

        CREATE TABLE flags (
            name TEXT PRIMARY KEY, value TEXT, updated_at REAL NOT NULL, updated_by TEXT NOT NULL);
        """,
    )


def _sample_tables(conn: sqlite3.Connection) -> None:
    """Scraped series and their samples."""
    run_script(
        conn,
        """
        CREATE TABLE series (
            series_id TEXT PRIMARY KEY, metric TEXT NOT NULL, labels TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'gauge', first_seen REAL NOT NULL, last_seen REAL NOT NULL);

        CREATE TABLE samples (
            series_id TEXT NOT NULL, ts REAL NOT NULL, value REAL,
            PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
        CREATE INDEX samples_ts ON samples(ts);
        """,
    )


def _detector_tables(conn: sqlite3.Connection) -> None:
    """Fitted detector state and saved baselines."""
    run_script(
        conn,
        """
        CREATE TABLE detector_state (
            key TEXT PRIMARY KEY, detector TEXT NOT NULL, subject TEXT NOT NULL,
            params TEXT NOT NULL, state BLOB NOT NULL, fitted_at REAL NOT NULL,
            points INTEGER NOT NULL DEFAULT 0);

        CREATE TABLE baselines (
            id INTEGER PRIMARY KEY, model TEXT NOT NULL, created_at REAL NOT NULL,
            from_ts REAL NOT NULL, to_ts REAL NOT NULL, data TEXT NOT NULL, created_by TEXT NOT NULL);
        CREATE INDEX baselines_model ON baselines(model, created_at);
        """,
    )


def _incident_tables(conn: sqlite3.Connection) -> None:
    """Incidents, their signals, the hits behind them and their timeline."""
    run_script(
        conn,
        """
        CREATE TABLE incidents (
            id INTEGER PRIMARY KEY, status TEXT NOT NULL, severity TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
            started_at REAL NOT NULL, detected_at REAL NOT NULL,
            acknowledged_at REAL, acknowledged_by TEXT,
            remediation_started_at REAL, remediation_verified_at REAL,
            resolved_at REAL, resolved_by TEXT, resolution TEXT,
            root_cause TEXT, root_cause_reason TEXT,
            flapping INTEGER NOT NULL DEFAULT 0, reopened INTEGER NOT NULL DEFAULT 0,
            last_signal_at REAL, updated_at REAL NOT NULL, summary TEXT NOT NULL DEFAULT '');
        CREATE INDEX incidents_status ON incidents(status);
        CREATE INDEX incidents_started ON incidents(started_at);

        CREATE TABLE incident_signals (
            incident_id INTEGER NOT NULL REFERENCES incidents(id), signal_key TEXT NOT NULL,
            series_id TEXT NOT NULL, detector TEXT NOT NULL, metric TEXT NOT NULL DEFAULT '',
            labels TEXT NOT NULL DEFAULT '{}', first_at REAL NOT NULL, last_at REAL NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0, peak_score REAL, last_value REAL, last_expected REAL,
            direction TEXT, explanation TEXT NOT NULL DEFAULT '', resolved_at REAL,
            PRIMARY KEY (incident_id, signal_key));

        CREATE TABLE hits (
            id INTEGER PRIMARY KEY, ts REAL NOT NULL, series_id TEXT NOT NULL, detector TEXT NOT NULL,
            entity TEXT, metric TEXT NOT NULL DEFAULT '', labels TEXT NOT NULL DEFAULT '{}',
            value REAL, expected REAL, lower REAL, upper REAL, score REAL NOT NULL,
            direction TEXT NOT NULL, explanation TEXT NOT NULL DEFAULT '',
            incident_id INTEGER REFERENCES incidents(id), recorded_at REAL NOT NULL);
        CREATE INDEX hits_series_ts ON hits(series_id, ts);
        CREATE INDEX hits_ts ON hits(ts);
        CREATE INDEX hits_incident ON hits(incident_id);

        CREATE TABLE incident_events (
            id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL REFERENCES incidents(id),
            ts REAL NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
            message TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}');
        CREATE INDEX incident_events_incident ON incident_events(incident_id, ts);
        """,
    )


def _change_tables(conn: sqlite3.Connection) -> None:
    """Recorded changes and silences."""
    run_script(
        conn,
        """
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}', description TEXT NOT NULL,
            actor TEXT NOT NULL, recorded_at REAL NOT NULL);
        CREATE INDEX changes_ts ON changes(ts);

        CREATE TABLE silences (
            id INTEGER PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL,
            ends_at REAL NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL,
            created_at REAL NOT NULL, expired_at REAL);
        """,
    )


def _remediation_tables(conn: sqlite3.Connection) -> None:
    """Remediation runs."""
    run_script(
        conn,
        """
        CREATE TABLE remediation_runs (
            id INTEGER PRIMARY KEY, incident_id INTEGER REFERENCES incidents(id),
            rule TEXT NOT NULL, playbook TEXT NOT NULL, playbook_sha256 TEXT NOT NULL DEFAULT '',
            mode TEXT NOT NULL, status TEXT NOT NULL, targets TEXT NOT NULL DEFAULT '[]',
            extravars TEXT NOT NULL DEFAULT '{}', parent_id INTEGER REFERENCES remediation_runs(id),
            rc INTEGER, requested_at REAL NOT NULL, started_at REAL, ended_at REAL,
            approved_by TEXT, approved_at REAL, expires_at REAL,
            verify_until REAL, verification TEXT, host_summary TEXT NOT NULL DEFAULT '{}',
            artifact_dir TEXT, reason TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '');
        CREATE INDEX runs_incident ON remediation_runs(incident_id);
        CREATE INDEX runs_status ON remediation_runs(status);
        CREATE INDEX runs_rule ON remediation_runs(rule, requested_at);
        """,
    )


def _notification_tables(conn: sqlite3.Connection) -> None:
    """The notification outbox."""
    run_script(
        conn,
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY, channel TEXT NOT NULL, incident_id INTEGER,
            event TEXT NOT NULL, dedup_key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL,
            created_at REAL NOT NULL, next_attempt_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
            last_error TEXT, sent_at REAL);
        CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
        """,
    )
