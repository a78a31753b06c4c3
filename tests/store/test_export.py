"""Schema inspection and export of the store through sqlite-utils: ``aiops store tables``,
``aiops store schema``, ``aiops store export``, on a real store file."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.errors import StoreError
from agent.flow.incidents import Severity
from agent.store import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def state(tmp_path):
    store = Store(tmp_path / "state" / "aiops.db")
    store.open_incident(severity=Severity.CRITICAL, title="latency high on service=api", labels={"service": "api"},
                        started_at=T0, now=T0)
    store.open_incident(severity=Severity.WARNING, title="errors on db", labels={"service": "db"},
                        started_at=T0, now=T0)
    with store.transaction() as conn:
        conn.execute("INSERT INTO detector_state (key, detector, subject, params, state, fitted_at) "
                     "VALUES ('k1', 'forecast', 's1', '{}', ?, 0)", (b"\x00\xffstate",))
    yield store
    store.close()


@pytest.fixture
def aiops(tmp_path):
    def run(*args: str):
        return CliRunner().invoke(cli, [*args, "--state-dir", str(tmp_path / "state")],
                                  obj=Settings(clock=ManualClock(T0)))

    return run


def test_tables_are_listed_with_their_row_counts(state, aiops):
    counts = state.table_counts()
    assert counts["incidents"] == 2 and counts["detector_state"] == 1 and counts["remediation_runs"] == 0
    assert not any(name.startswith("sqlite_") for name in counts)
    result = aiops("store", "tables")
    assert result.exit_code == 0, result.output
    lines = dict(line.split() for line in result.output.splitlines())
    assert lines == {name: str(count) for name, count in counts.items()}


def test_schema_of_one_table_and_of_the_store(state, aiops):
    one = aiops("store", "schema", "detector_state")
    assert one.exit_code == 0
    assert one.output.startswith("CREATE TABLE detector_state (") and "state BLOB NOT NULL" in one.output
    assert "CREATE TABLE incidents" not in one.output
    whole = aiops("store", "schema")
    assert "CREATE TABLE detector_state (" in whole.output and "CREATE TABLE incidents (" in whole.output
    assert "CREATE INDEX" in whole.output


def test_export_json_keeps_types_and_blobs(state, aiops):
    incidents = json.loads(aiops("store", "export", "incidents").output)
    assert [(i["id"], i["severity"], i["title"]) for i in incidents] == [
        (1, "critical", "latency high on service=api"), (2, "warning", "errors on db")]
    assert json.loads(incidents[0]["labels"]) == {"service": "api"}
    [row] = json.loads(aiops("store", "export", "detector_state", "--format", "json").output)
    assert row["state"] == {"$base64": True, "encoded": base64.b64encode(b"\x00\xffstate").decode()}
    assert json.loads(aiops("store", "export", "remediation_runs").output) == []


def test_export_csv_has_a_header_and_honours_the_limit(state, aiops, tmp_path):
    out = tmp_path / "incidents.csv"
    result = aiops("store", "export", "incidents", "--format", "csv", "--limit", "1", "-o", str(out))
    assert result.exit_code == 0 and result.output == f"wrote {out} ({out.stat().st_size:,} bytes)\n"
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == state.table_columns("incidents") and rows[0][:3] == ["id", "status", "severity"]
    assert len(rows) == 2 and rows[1][:3] == ["1", "open", "critical"]
    empty = aiops("store", "export", "remediation_runs", "--format", "csv")
    assert empty.output.splitlines() == [",".join(state.table_columns("remediation_runs"))]


def test_a_table_without_rowid_is_exported_in_key_order(state):
    with state.transaction() as conn:
        conn.executemany("INSERT INTO incident_keys (incident_id, key) VALUES (?, ?)", [(2, "b"), (2, "a"), (1, "b")])
    assert list(state.table_rows("incident_keys")) == [
        {"incident_id": 2, "key": "a"}, {"incident_id": 1, "key": "b"}, {"incident_id": 2, "key": "b"}]


def test_an_unknown_table_or_a_missing_store_is_refused(state, aiops, tmp_path):
    with pytest.raises(StoreError) as raised:
        state.table_rows("sqlite_master")
    assert str(raised.value).startswith(f"store {state.path}: expected a table, one of ")
    assert all(f"{name}, " in str(raised.value) for name in ("agent_status", "audit", "baselines"))
    assert str(raised.value).endswith("; found 'sqlite_master'")
    result = aiops("store", "export", "nope")
    assert result.exit_code == 1 and "found 'nope'" in result.output
    missing = CliRunner().invoke(cli, ["store", "tables", "--state-dir", str(tmp_path / "elsewhere")])
    assert missing.exit_code == 1
    assert missing.output == (f"store {tmp_path / 'elsewhere' / 'aiops.db'}: expected the agent's store, found no "
                              "such file (give the state dir with --state-dir)\n")
    assert not (tmp_path / "elsewhere").exists()
