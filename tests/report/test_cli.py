"""``aiops report mttr|html`` and ``aiops audit export|verify`` on a real store."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.store import Store
from tests.report.builders import known_incidents

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(make_config, write_config, tmp_path):
    make_config("")
    state = tmp_path / "state"
    store = Store(state / "aiops.db")
    known_incidents(store, (T0 - timedelta(days=10)).timestamp())
    store.audit("cli:alice", "incident.acknowledge", "incident:4", {"reason": "looking into it"},
                now=T0 - timedelta(days=2))
    store.audit("agent", "remediation.run", "run:1", {"reason": "rule restart-api matched", "mode": "apply"},
                now=T0 - timedelta(days=1))
    store.audit("cli:bob", "silence.create", "silence:1", {"reason": "maintenance"}, now=T0 - timedelta(days=40))
    store.close()
    return ["--config", str(tmp_path / "agent.yaml"), "--state-dir", str(state)], store


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, obj=Settings(clock=ManualClock(T0)))


def test_mttr_table(env):
    opts, _ = env
    result = run("report", "mttr", "--since", "30d", *opts)
    assert result.exit_code == 0, result.output
    rows = {line.split("  ")[0].strip(): line.split() for line in result.output.splitlines()}
    assert rows["all"] == ["all", "6", "6", "2", "25%", "1m", "50s", "3m", "30s", "2m", "00s", "2m", "48s",
                           "53m", "45s", "40m", "00s", "1h", "42m"]
    assert rows["model incidents"][2:6] == ["2", "2", "1", "0%"]
    assert "6 episodes (outages) of 6 incidents, 2 unresolved (counted, but left out of MTTR)." in result.output
    assert rows["node_cpu_usage"] == ["node_cpu_usage", "1", "15m", "00s", "1", "1h", "00m", "4.0x"]


def test_mttr_csv_by_service(env):
    opts, _ = env
    result = run("report", "mttr", "--by", "service", "--format", "csv", *opts)
    assert result.exit_code == 0
    rows = {(r["section"], r["group"]): r for r in csv.DictReader(io.StringIO(result.output))}
    assert list(rows)[:5] == [("group", "(none)"), ("group", "api"), ("group", "db"), ("total", "all"),
                              ("model", "model incidents")]
    api = rows[("group", "api")]
    assert (api["incidents"], api["unresolved"], api["auto_share"], api["mttr_mean_s"], api["mttr_p90_s"]) == \
        ("3", "1", "0.5", "2250.0", "3330.0")
    assert rows[("compare_auto", "node_cpu_usage")]["mttr_mean_s"] == "900.0"
    assert rows[("compare_manual", "node_cpu_usage")]["mttr_mean_s"] == "3600.0"


def test_mttr_json(env):
    opts, _ = env
    result = run("report", "mttr", "--format", "json", "--by", "severity", *opts)
    data = json.loads(result.output)
    assert data["total"]["mttr"] == {"n": 4, "mean_s": 3225.0, "median_s": 2400.0, "p90_s": pytest.approx(6120.0)}
    assert [g["group"] for g in data["groups"]] == ["critical", "info", "warning"]
    assert data["comparison"][0]["speedup"] == 4.0


def test_mttr_html_escapes_and_shows_figures(env):
    opts, _ = env
    result = run("report", "mttr", "--format", "html", *opts)
    assert result.output.startswith("<!DOCTYPE html>")
    assert "<td>53m 45s</td>" in result.output


def test_bad_since_is_a_usage_error(env):
    opts, _ = env
    result = CliRunner().invoke(cli, ["report", "mttr", "--since", "yesterday", *opts])
    assert result.exit_code == 2
    assert ("Invalid value for '--since'/'--until': expected a duration back from now such as 30d (or now-30d), "
            "now, or a date such as 2026-01-31 or 2026-01-31T08:00:00Z, found 'yesterday'") in result.output


def test_bad_time_zone_is_a_usage_error(env):
    opts, _ = env
    result = CliRunner().invoke(cli, ["report", "mttr", "--by", "week", "--tz", "Mars/Olympus", *opts])
    assert result.exit_code == 2
    assert "expected a time zone name such as UTC or Europe/Berlin, found 'Mars/Olympus'" in result.output


def test_report_html_writes_a_self_contained_file(env, tmp_path):
    opts, _ = env
    out = tmp_path / "weekly.html"
    result = run("report", "html", "--since", "30d", "--out", str(out), *opts)
    assert result.exit_code == 0
    assert result.output.startswith(f"wrote {out} (")
    html = out.read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "http://" not in html.replace('http-equiv', '') and "https://" not in html


def test_audit_export_jsonl(env):
    opts, _ = env
    result = run("audit", "export", "--since", "7d", "--format", "jsonl", *opts)
    entries = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["actor"], e["action"], e["subject"], e["reason"]) for e in entries] == [
        ("cli:alice", "incident.acknowledge", "incident:4", "looking into it"),
        ("agent", "remediation.run", "run:1", "rule restart-api matched")]
    assert entries[1]["details"] == {"mode": "apply", "reason": "rule restart-api matched"}
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert datetime.fromisoformat(entries[0]["ts"]).tzinfo == timezone.utc


def test_audit_export_csv_to_file(env, tmp_path):
    opts, _ = env
    out = tmp_path / "audit.csv"
    result = run("audit", "export", "--since", "60d", "--format", "csv", "--output", str(out), *opts)
    assert result.output == f"wrote {out} ({out.stat().st_size:,} bytes)\n"
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["id", "ts", "actor", "action", "subject", "reason", "details", "prev_hash", "hash"]
    # In chain order (the order they were written), not by timestamp.
    assert [(r["actor"], r["reason"]) for r in rows] == [
        ("cli:alice", "looking into it"), ("agent", "rule restart-api matched"), ("cli:bob", "maintenance")]


def test_audit_verify_finds_an_edited_entry(env, tmp_path):
    opts, _ = env
    assert run("audit", "verify", *opts).output == "audit chain intact: 3 entries\n"
    store = Store(tmp_path / "state" / "aiops.db")
    store.conn.execute("UPDATE audit SET actor = 'cli:mallory' WHERE id = 2")
    store.close()
    result = CliRunner().invoke(cli, ["audit", "verify", *opts])
    assert result.exit_code == 1
    assert "audit chain broken at entry 2: its content does not match its hash (the entry was edited)" in result.output


def test_table_shows_no_terminal_escapes_from_label_values(env, tmp_path):
    opts, _ = env
    store = Store(tmp_path / "state" / "aiops.db")
    from tests.report.builders import add_incident
    now = T0.timestamp()
    add_incident(store, started=now - 100, detected=now - 90, labels={"service": "evil\x1b[2J\nname"})
    store.close()
    result = run("report", "mttr", "--by", "service", *opts)
    assert "\x1b" not in result.output
    assert "evil?[2J?name" in result.output
