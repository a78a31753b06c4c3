"""The store file: creation mode, WAL, migrations forward, refusal of newer, audit chain."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from datetime import datetime, timezone

import pytest

from agent.errors import SchemaTooNewError
from agent.store import Store, migrations
from agent.store.migrations import Migration

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)


def test_new_store_file_is_private_and_in_wal_mode(tmp_path):
    store = Store(tmp_path / "s" / "aiops.db")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert store.schema_version == migrations.latest()


def test_older_store_is_migrated_forward_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    migrations.MIGRATIONS[1].apply(conn)
    conn.execute("INSERT INTO migrations VALUES (1, 'initial', 0)")
    conn.execute("INSERT INTO changes (ts, kind, labels, description, actor, recorded_at) "
                 "VALUES (1, 'deploy', '{}', 'v12 rollout', 'cli:ops', 1)")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.close()

    def add_column(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE changes ADD COLUMN ticket TEXT")

    newest = max(migrations.latest(), 1) + 1000
    monkeypatch.setitem(migrations.MIGRATIONS, newest, Migration(newest, "test_add_ticket", add_column))
    store = Store(path)
    assert store.schema_version == newest
    applied = [r[0] for r in store.query("SELECT number FROM migrations ORDER BY number")]
    assert applied == sorted(migrations.MIGRATIONS)
    row = store.query_one("SELECT description, ticket FROM changes")
    assert (row["description"], row["ticket"]) == ("v12 rollout", None)


def test_store_from_a_newer_agent_is_refused(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {migrations.latest() + 5}")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNewError) as info:
        Store(path)
    assert str(info.value) == (
        f"store {path}: schema version {migrations.latest() + 5} is newer than this agent supports "
        f"({migrations.latest()}); upgrade aiops-agent or point --state-dir elsewhere")


def test_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    Store(path).close()
    before = migrations.latest()

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(migrations.MIGRATIONS, before + 1000, Migration(before + 1000, "broken", broken))
    with pytest.raises(RuntimeError):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == before
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_transaction_rolls_back_state_and_audit_together(store):
    with pytest.raises(ValueError):
        with store.transaction():
            store.audit("cli:ops", "incident.ack", "incident:1", {}, now=T0)
            raise ValueError("boom")
    assert store.query_one("SELECT count(*) FROM audit")[0] == 0


def _chain(store: Store, n: int = 5) -> None:
    for i in range(n):
        store.audit("agent", "test.event", f"thing:{i}", {"i": i}, now=T0)


def test_intact_chain_verifies(store):
    _chain(store)
    assert store.verify_audit() is None
    entries = list(store.audit_entries())
    assert [e.subject for e in entries] == [f"thing:{i}" for i in range(5)]
    assert entries[1].prev_hash == entries[0].hash


def test_edited_entry_is_found(store):
    _chain(store)
    store.conn.execute("UPDATE audit SET details = '{\"i\":99}' WHERE id = 3")
    broken = store.verify_audit()
    assert (broken.id, broken.reason) == (3, "its content does not match its hash (the entry was edited)")


def test_deleted_entry_is_found(store):
    _chain(store)
    store.conn.execute("DELETE FROM audit WHERE id = 2")
    broken = store.verify_audit()
    assert (broken.id, broken.reason) == (3, "does not follow the entry before it (an entry was deleted or inserted)")


def test_inserted_entry_is_found(store):
    _chain(store)
    row = store.query_one("SELECT * FROM audit WHERE id = 2")
    store.conn.execute("UPDATE audit SET id = id + 100 WHERE id > 2")
    store.conn.execute(
        "INSERT INTO audit (id, ts, actor, action, subject, details, prev_hash, hash) VALUES (3, ?, 'mallory', 'x', 'y', '{}', ?, ?)",
        (row["ts"], row["hash"], "f" * 64))
    broken = store.verify_audit()
    assert broken.id == 3


def test_audit_verify_cli(tmp_path, subprocess_env, write_config):
    config = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\n")
    store = Store(tmp_path / "state" / "aiops.db")
    _chain(store)
    store.close()
    ok = subprocess.run(["aiops", "audit", "verify", "--config", str(config)], capture_output=True, text=True, env=subprocess_env)
    assert (ok.returncode, ok.stdout) == (0, "audit chain intact: 5 entries\n")
    conn = sqlite3.connect(tmp_path / "state" / "aiops.db")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 4")
    conn.commit()
    conn.close()
    bad = subprocess.run(["aiops", "audit", "verify", "--config", str(config)], capture_output=True, text=True, env=subprocess_env)
    assert bad.returncode == 1
    assert bad.stderr == "audit chain broken at entry 4: its content does not match its hash (the entry was edited)\n"


def test_flags_are_shared_across_connections_and_audited(tmp_path):
    a = Store(tmp_path / "s.db")
    b = Store(tmp_path / "s.db")
    a.set_flag("remediation.paused", "1", actor="cli:ops", reason="maintenance", now=T0)
    assert b.get_flag("remediation.paused") == "1"
    [entry] = list(b.audit_entries())
    assert (entry.action, entry.subject, entry.details) == ("flag.set", "remediation.paused", {"value": "1", "reason": "maintenance"})
