"""The remediation ledger over a real store: per rule and playbook and per target, in text, JSON,
CSV and HTML, at /api/v1/remediations/ledger and at /metrics."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.daemon import HttpServer
from agent.flow.runs import RunMode, RunStatus
from remediations.ledger import build_ledger
from tests.remediations.conftest import T0

NOW = T0 + timedelta(days=1)


def ran(ctx, rule: str, playbook: str, target: str, status: RunStatus, *, at, verified_after_s: float | None = None,
        reason: str = "", rolled_back: bool = False) -> int:
    """A real run as the engine leaves it: started at ``at``, ended in ``status``."""
    store = ctx.store
    run = store.create_run(incident_id=None, rule=rule, rule_mode="auto", playbook=playbook, playbook_sha256="",
                           mode=RunMode.APPLY, status=RunStatus.PENDING, targets=[target], extravars={}, now=at)
    store.update_run(run.id, RunStatus.RUNNING, now=at, started_at=at)
    verification = {"verified_at": (at + timedelta(seconds=verified_after_s)).timestamp()} if verified_after_s else {}
    store.update_run(run.id, status, now=at + timedelta(minutes=10), verification=verification, reason=reason)
    if rolled_back:
        back = store.create_run(incident_id=None, rule=rule, rule_mode="auto", playbook="undo.yml", playbook_sha256="",
                                mode=RunMode.ROLLBACK, status=RunStatus.PENDING, targets=[target], extravars={},
                                parent_id=run.id, now=at + timedelta(minutes=11))
        store.update_run(back.id, RunStatus.SUCCEEDED, now=at + timedelta(minutes=12), started_at=at + timedelta(minutes=11))
    return run.id


@pytest.fixture
def history(make_ctx):
    ctx = make_ctx("""
    rules:
      - {name: fix, match: {labels: {service: api}}, playbook: touch.yml, mode: auto}
      - {name: restart, match: {labels: {service: db}}, playbook: touch_direct.yml, trust: earned}
    """)
    runs = {
        "fix-1": ran(ctx, "fix", "touch.yml", "h1", RunStatus.VERIFIED, at=T0, verified_after_s=300),
        "fix-2": ran(ctx, "fix", "touch.yml", "h2", RunStatus.VERIFIED, at=T0 + timedelta(hours=1), verified_after_s=180),
        "fix-3": ran(ctx, "fix", "touch.yml", "h1", RunStatus.NOT_FIXED, at=T0 + timedelta(hours=2),
                     reason="signals not quiet for 300s by 14:25", rolled_back=True),
        "restart-1": ran(ctx, "restart", "touch_direct.yml", "h2", RunStatus.FAILED, at=T0 + timedelta(hours=3),
                         reason="real run failed (rc 2) <b>"),
    }
    ctx.store.create_run(incident_id=None, rule="restart", rule_mode="approve", playbook="touch_direct.yml",
                         playbook_sha256="", mode=RunMode.SHADOW, status=RunStatus.SHADOW, targets=["h2"], extravars={},
                         now=T0, reason="shadow mode: would have run")
    ran(ctx, "fix", "touch.yml", "h1", RunStatus.VERIFIED, at=T0 - timedelta(days=40), verified_after_s=60)  # too old
    return ctx, runs


def invoke(tmp_path, *args: str):
    return CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "agent.yaml")],
                              obj=Settings(clock=ManualClock(NOW)))


def test_the_ledger_counts_each_rule_and_target(history):
    ctx, runs = history
    ledger = build_ledger(ctx.store, NOW - timedelta(days=30), NOW, now=NOW)

    fix, restart = ledger.rules
    assert (fix.rule, fix.runs, fix.verified, fix.not_fixed, fix.rolled_back, fix.failed) == ("fix", 3, 2, 1, 1, 0)
    assert fix.median_verify_s == 240.0 and fix.success_rate == pytest.approx(2 / 3)
    assert (fix.last_failure_run, fix.last_failure_at, fix.last_failure_why) == (
        runs["fix-3"], T0 + timedelta(hours=2), "signals not quiet for 300s by 14:25")
    assert (restart.runs, restart.failed, restart.shadow, restart.shadow_checked, restart.median_verify_s) == (
        1, 1, 1, 0, None)
    per_target = {(r.rule, r.target): (r.runs, r.verified, r.not_fixed) for r in ledger.targets}
    assert per_target == {("fix", "h1"): (2, 1, 1), ("fix", "h2"): (1, 1, 0), ("restart", "h2"): (1, 0, 0)}


def test_the_cli_writes_text_json_csv_and_html(history, tmp_path):
    _ctx, runs = history
    text = invoke(tmp_path, "remediation", "ledger", "--since", "30d")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == "Remediation ledger 2026-10-27 12:00 to 2026-11-26 12:00 UTC: 4 real runs"
    assert lines[2].split()[:4] == ["rule", "playbook", "mode", "runs"]
    assert lines[3].split()[:12] == ["fix", "touch.yml", "auto", "3", "2", "1", "0", "1", "0", "0", "67%", "4m"]
    assert lines[4].split()[:4] == ["restart", "touch_direct.yml", "approve", "(earned)"]
    assert f"run {runs['restart-1']} at 2026-11-25 15:00:00: real run failed (rc 2) <b>" in lines[4]
    by_target = invoke(tmp_path, "remediation", "ledger", "--by", "target").output.splitlines()
    assert [line.split()[:3] for line in by_target[3:6]] == [["h1", "fix", "touch.yml"], ["h2", "fix", "touch.yml"],
                                                             ["h2", "restart", "touch_direct.yml"]]

    data = json.loads(invoke(tmp_path, "remediation", "ledger", "--format", "json").output)
    assert [(r["rule"], r["runs"], r["mode"]) for r in data["rules"]] == [("fix", 3, "auto"),
                                                                         ("restart", 1, "approve (earned)")]
    assert data["rules"][0]["last_failure"] == {"run": runs["fix-3"], "at": "2026-11-25T14:00:00+00:00",
                                                "why": "signals not quiet for 300s by 14:25"}
    rows = list(csv.DictReader(io.StringIO(invoke(tmp_path, "remediation", "ledger", "--format", "csv").output)))
    assert [(r["table"], r["rule"], r["target"], r["runs"]) for r in rows] == [
        ("rule", "fix", "", "3"), ("rule", "restart", "", "1"), ("target", "fix", "h1", "2"),
        ("target", "fix", "h2", "1"), ("target", "restart", "h2", "1")]

    out = tmp_path / "ledger.html"
    written = invoke(tmp_path, "remediation", "ledger", "--format", "html", "--output", str(out))
    assert written.exit_code == 0
    html = out.read_text()
    assert 'id="ledger"' in html and 'id="ledger-targets"' in html
    assert "real run failed (rc 2) &lt;b&gt;" in html and "<b>" not in html
    assert invoke(tmp_path, "remediation", "ledger", "--since", "soon").exit_code == 2


def test_the_api_and_the_metrics_serve_the_ledger(history):
    ctx, _ = history
    ctx.clock = ManualClock(NOW)
    server = HttpServer(ctx, None)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            answer = client.get("/api/v1/remediations/ledger", params={"since": "30d", "rule": "fix"})
            assert answer.status_code == 200
            assert [(r["rule"], r["verified"], r["rolled_back"]) for r in answer.json()["rules"]] == [("fix", 2, 1)]
            bad = client.get("/api/v1/remediations/ledger", params={"since": "yesterday-ish"})
            assert bad.status_code == 422 and bad.json()["detail"].startswith("since/until: expected a duration")
            assert client.get("/api/v1/remediations/1").json()["id"] == 1  # the run route still answers
            metrics = client.get("/metrics").text
    finally:
        server.stop()
    assert 'aiops_remediation_ledger_runs{outcome="verified",playbook="touch.yml",rule="fix"} 2.0' in metrics
    assert 'aiops_remediation_ledger_runs{outcome="rolled_back",playbook="touch.yml",rule="fix"} 1.0' in metrics
    assert 'aiops_remediation_ledger_verify_median_seconds{playbook="touch.yml",rule="fix"} 240.0' in metrics
    assert 'aiops_remediation_rule_auto{rule="fix"} 1.0' in metrics
    assert 'aiops_remediation_rule_auto{rule="restart"} 0.0' in metrics


def test_the_weekly_report_carries_the_ledger(history):
    from agent.report.period import period_since
    from agent.report.weekly import weekly_report
    from remediations.trust import modes

    ctx, runs = history
    html = weekly_report(ctx.store, period_since("7d", now=NOW), now=NOW, modes=modes(ctx.config.remediation, ctx.store))
    ledger = html.split('id="ledger"')[1].split("</table>")[0]
    assert "<td class=\"str\">fix</td>" in ledger and "<td class=\"str\">approve (earned)</td>" in ledger
    assert f"run {runs['restart-1']} at 2026-11-25 15:00:00: real run failed (rc 2) &lt;b&gt;" in ledger


def test_the_ledger_the_trust_record_and_what_served_read_alike_on_both_backends(any_store):
    """The new queries (a JSON field cast to seconds, a rollback found by its parent, serving
    history, an incident merge) on SQLite and PostgreSQL."""
    from types import SimpleNamespace

    from agent.flow.incidents import IncidentStatus, Signal
    from agent.flow.trust import Evidence, TrustSetting

    on = SimpleNamespace(store=any_store)
    good = ran(on, "fix", "touch.yml", "h1", RunStatus.VERIFIED, at=T0, verified_after_s=300.25)
    bad = ran(on, "fix", "touch.yml", "h1", RunStatus.NOT_FIXED, at=T0 + timedelta(hours=1), rolled_back=True,
              reason="not quiet")
    (row,) = build_ledger(any_store, T0 - timedelta(days=1), NOW, now=NOW).rules
    assert (row.runs, row.verified, row.not_fixed, row.rolled_back, row.median_verify_s, row.last_failure_run) == (
        2, 1, 1, 1, 300.25, bad)
    record = any_store.rule_evidence("fix", since=T0 - timedelta(days=1), limit=10)
    assert [(r.run, set(r.outcomes)) for r in record] == [
        (bad, {Evidence.NOT_FIXED, Evidence.ROLLED_BACK}), (good, {Evidence.VERIFIED})]
    moved = any_store.set_rule_trust("fix", setting=TrustSetting.EARNED, mode="auto", actor="agent", reason="earned",
                                     runs=[good], now=NOW)
    assert (moved.mode, moved.runs, moved.since) == ("auto", (good,), NOW)

    any_store.serve_version("fraud", "v2", source="found", actor="agent", now=T0)
    any_store.serve_version("fraud", "v3", source="change #1", actor="ci", now=NOW)
    assert [(s.version, s.until) for s in any_store.serving_history("fraud")] == [("v2", NOW), ("v3", None)]

    def signal(series: str) -> Signal:
        return Signal(series_id=series, detector="seasonal", metric="m", labels={"model": "fraud"}, first_at=T0,
                      last_at=T0, hits=2)

    story = any_store.open_incident(severity="critical", title="story", labels={}, started_at=T0, now=T0,
                                    signals=[signal("a")])
    tail = any_store.open_incident(severity="warning", title="tail", labels={}, started_at=T0, now=T0,
                                   signals=[signal("a"), signal("b")])
    any_store.merge_incident(tail.id, story.id, actor="agent", reason="one story", now=NOW)
    merged = any_store.get_incident(story.id)
    assert sorted((s.series_id, s.hits) for s in merged.signals) == [("a", 2), ("b", 1)]  # both counts kept
    assert any_store.get_incident(tail.id).resolution == "merged"
    assert any_store.get_incident(tail.id).status is IncidentStatus.RESOLVED


def test_a_reason_that_looks_like_a_formula_stays_text_in_the_csv(history, tmp_path):
    ctx, _ = history
    ran(ctx, "fix", "touch.yml", "h3", RunStatus.FAILED, at=T0 + timedelta(hours=5), reason="=HYPERLINK(\"x\")")
    rows = list(csv.DictReader(io.StringIO(invoke(tmp_path, "remediation", "ledger", "--format", "csv").output)))
    assert rows[0]["last_failure_why"] == "'=HYPERLINK(\"x\")"
