"""The PostgreSQL backend on a real server: store.url, its errors, and ``aiops store copy``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.config import load_config
from agent.errors import ConfigError, StoreError, StoreUnavailableError
from agent.flow.incidents import IncidentStatus, Matcher, MatchOp, Severity
from agent.flow.samples import SeriesInfo
from agent.store import Store
from agent.store.copy import copy_store
from agent.store.detectors import FittedState
from tests.conftest import free_port

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _fill(store: Store) -> None:
    """A little of everything: incidents and their timeline, a silence, a flag, fitted state (a
    BLOB), samples both in the head and packed into chunks (BLOBs), and the audit entries of it all."""
    incident = store.open_incident(severity=Severity.CRITICAL, title="api latency", labels={"service": "api"},
                                   started_at=T0, now=T0)
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="cli:alice", reason="looking",
                              now=T0 + timedelta(minutes=2))
    store.add_silence([Matcher(name="service", op=MatchOp.EQUAL, value="db")], starts_at=T0,
                      ends_at=T0 + timedelta(hours=1), reason="maintenance", actor="api", now=T0)
    store.set_flag("remediation.paused", "1", actor="cli:bob", reason="freeze", now=T0)
    store.save_fitted_states([FittedState(detector="stl", subject="up{job=\"api\"}", params={"period": 60},
                                          state=bytes(range(256)), fitted_at=T0, points=10)], now=T0)
    series = [SeriesInfo(series_id="temp", metric="temp"), SeriesInfo(series_id="ratio", metric="ratio")]
    start = T0.timestamp()
    rows = [(s.series_id, start + 60 * i, 0.1 * i - 3.0) for s in series for i in range(90)]
    rows.append(("ratio", start + 60 * 90, -0.0))
    store.record_samples(series, rows, now=start + 60 * 90)


def _tables(store: Store) -> dict[str, list[dict]]:
    return {t: list(store.table_rows(t)) for t in store.table_names() if t != "migrations"}


def test_copy_carries_every_row_and_the_audit_chain_to_postgresql(tmp_path, postgres_url, write_config):
    source = Store(tmp_path / "aiops.db")
    _fill(source)
    target = Store(postgres_url)
    copied = copy_store(source, target)

    assert copied == {t: n for t, n in source.table_counts().items() if t != "migrations"}
    assert copied["audit"] == 5 and copied["sample_chunks"] == 2 and copied["sample_head"] == 61
    assert _tables(target) == _tables(source)
    assert target.verify_audit_chain() is None
    history = target.sample_history(T0.timestamp(), T0.timestamp() + 5400)
    assert history.equals(source.sample_history(T0.timestamp(), T0.timestamp() + 5400))
    assert len(history) == 181 and str(history["value"].iloc[-1]) == "-0.0"
    # New rows follow the copied ids, and the chain goes on from the copied head.
    entry = target.audit("cli:carol", "store.copied", "store", {}, now=T0 + timedelta(hours=1))
    assert entry == 6
    target.dispose()

    config = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\nstore:\n  url: {postgres_url}\n")
    result = CliRunner().invoke(cli, ["audit", "verify", "--config", str(config)])
    assert (result.exit_code, result.output) == (0, "audit chain intact: 6 entries\n")


def test_store_copy_command_refuses_a_target_that_holds_anything(tmp_path, postgres_url):
    source = Store(tmp_path / "aiops.db")
    _fill(source)
    source.close()
    command = ["store", "copy", "--state-dir", str(tmp_path), "--to", postgres_url]
    first = CliRunner().invoke(cli, command)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("copied ") and f" to {postgres_url}\n" in first.output

    again = CliRunner().invoke(cli, command)
    assert again.exit_code == 1
    assert again.output == f"store {postgres_url}: expected an empty store, found 5 rows in audit\n"


def test_a_server_that_is_down_is_a_store_error_naming_the_url_without_its_password():
    port = free_port()
    with pytest.raises(StoreError) as caught:
        Store(f"postgresql://aiops:s3cret@127.0.0.1:{port}/aiops")
    message = str(caught.value)
    assert message.startswith(f"store postgresql://aiops:***@127.0.0.1:{port}/aiops: cannot be reached now (cannot connect: ")
    assert "s3cret" not in message


def test_a_database_that_does_not_exist_is_refused_with_the_servers_reason(postgres_server):
    with pytest.raises(StoreError, match=r"the server refused the connection \(.*database \"nowhere\" does not exist\): "
                                         r"check store.url and store.password") as caught:
        Store(postgres_server.url("nowhere"))
    assert not isinstance(caught.value, StoreUnavailableError)  # not "now": asking again will not help


def test_a_new_empty_database_is_migrated_to_the_same_schema_as_sqlite(tmp_path, postgres_empty_url):
    store = Store(postgres_empty_url)
    sqlite = Store(tmp_path / "aiops.db")
    assert store.schema_version == sqlite.schema_version
    assert store.table_names() == sqlite.table_names()
    for table in sqlite.table_names():
        assert store.table_columns(table) == sqlite.table_columns(table), table
    assert "DOUBLE PRECISION" in store.table_schema("audit")
    store.dispose()


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://db/aiops", "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE, found mysql://…"),
    ("aiops.db", "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE, found 'aiops.db'"),
    ("postgresql://aiops:hunter2@db/aiops",
     "expected no password in the URL (give it as store.password_file or store.password: ${ENV_VAR}), found one"),
    ("postgresql:///aiops", "expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE, "
                            "found a PostgreSQL URL without a host or database"),
])
def test_a_bad_store_url_names_the_key_and_what_was_expected(write_config, url, message):
    path = write_config(f"store:\n  url: {url}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: store.url: {message}"
    assert "hunter2" not in str(caught.value)


def test_the_password_comes_from_a_private_file(write_config, tmp_path: Path):
    secret = tmp_path / "pg.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    config = load_config(write_config(f"store:\n  url: postgresql://aiops@db:5432/aiops\n  password_file: {secret}\n"))
    assert config.store.password_value() == "s3cret"
    assert "s3cret" not in repr(config.store)


def test_a_session_the_server_ended_is_replaced_by_the_next_statement(postgres_url):
    import psycopg

    store = Store(postgres_url)
    try:
        pid = store.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            store.conn.execute("SELECT 1")  # the statement under way when it ended fails...
        assert store.conn.execute("SELECT 2").fetchone()[0] == 2  # ...the next one gets a new session
        assert store.conn.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    finally:
        store.dispose()


def test_a_percent_sign_in_quoted_text_beside_a_placeholder_is_literal_on_both_backends(any_store):
    row = any_store.conn.execute("SELECT 'model' LIKE '%od%', '50%?' , ? + 1", (1,)).fetchone()
    assert (bool(row[0]), row[1], row[2]) == (True, "50%?", 2)  # SQLite answers 1 for true


def test_a_nul_in_an_untrusted_label_value_is_kept_and_found_on_both_backends(any_store):
    from datetime import datetime, timezone

    from agent.flow.incidents import Severity, Signal
    from agent.incidents.correlator import signal_key

    at = datetime(2026, 3, 2, tzinfo=timezone.utc)
    sid = 'queue_depth{host="h\x001"}'  # a target may export any byte
    signal = Signal(series_id=sid, detector="threshold", metric="queue_depth", labels={"host": "h\x001"},
                    first_at=at, last_at=at)
    incident = any_store.open_incident(severity=Severity.WARNING, title="q", labels={}, started_at=at, now=at,
                                       signals=[signal])
    owners = any_store.open_signal_owners([signal_key(sid, "threshold")])
    assert [owner[0] for owner in owners.values()] == [incident.id]
    (kept,) = any_store.get_incident(incident.id).signals
    assert kept.labels == {"host": "h\x001"}  # labels travel as JSON, which escapes the NUL
    assert kept.series_id in (sid, sid.replace("\x00", "\ufffd"))  # PostgreSQL's text holds no NUL


WRITER = """
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from agent.flow.incidents import Severity, Signal
from agent.store import Store

store, stop = Store(sys.argv[1]), Path(sys.argv[2])
now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
for n in range(20_000):  # bounded: the test stops it long before
    if stop.exists():
        break
    signal = Signal(series_id=f"up{{n={n}}}", detector="seasonal", metric="up", first_at=now, last_at=now)
    incident = store.open_incident(severity=Severity.WARNING, title=f"writer {n}", labels={"n": str(n)},
                                   started_at=now, now=now, signals=(signal,))
    store.add_incident_event(incident.id, kind="note", actor="writer", message="more", now=now)
"""


def test_store_copy_of_a_store_being_written_reads_one_snapshot(tmp_path, postgres_url, subprocess_env):
    import subprocess
    import sys

    from tests.conftest import wait_until

    source = Store(tmp_path / "aiops.db")
    for n in range(1500):
        source.open_incident(severity=Severity.WARNING, title=f"before {n}", labels={"n": str(n)}, started_at=T0, now=T0)
    source.close()
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "aiops.db"), str(stop)], env=subprocess_env)
    try:
        wait_until(lambda: _incidents(tmp_path / "aiops.db") >= 1520, 60, message="the writer writing")
        result = subprocess.run([sys.executable, "-m", "agent.cli", "store", "copy", "--state-dir", str(tmp_path),
                                 "--to", postgres_url], env=subprocess_env, capture_output=True, text=True, timeout=300)
    finally:
        stop.touch()
        writer.wait(timeout=60)

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "" and result.stdout.startswith("copied ")
    target = Store(postgres_url)
    copied = target.table_counts()
    final = Store(tmp_path / "aiops.db").table_counts()
    assert 1500 < copied["incidents"] < final["incidents"]  # the writer wrote before and after the snapshot
    # Each of the writer's incidents has its "opened" event and then, a transaction later, a note:
    # the snapshot may fall between the two for the last one, never inside one.
    assert copied["incidents"] * 2 - 1500 - copied["incident_events"] in (0, 1)
    assert target.verify_audit_chain() is None
    target.dispose()


def _incidents(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])
