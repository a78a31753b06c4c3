"""The governance report of one model, from a store that holds a rolled-back and a promoted
rollout, a rejected retrain, incidents and drift hits: JSON figures, escaped HTML, and what a
person sees in Chromium."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.flow.incidents import IncidentStatus, Severity
from agent.flow.rollouts import Measurement, RetrainStatus, RolloutStatus, Verdict
from tests.rollouts.conftest import GOOD, T0, model_yaml

NOW = T0 + timedelta(days=2)


@pytest.fixture
def history(make_ctx, models_dir, tmp_path):
    """A day of a model's life written through the store's own methods (no playbooks)."""
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    s = ctx.store
    s.deploy_version("fraud", "v2", actor="cli:alice", now=T0 - timedelta(days=1), outcome="promoted", baseline_id=None)
    bad = s.create_rollout(model="fraud", version="v4", previous_version="v2", canary=["localhost"], rest=[],
                           actor="cli:bob", reason="faster model", now=T0)
    s.transition_rollout(bad.id, RolloutStatus.ANALYSING, actor="agent", reason="canary up", now=T0)
    s.add_measurements([Measurement(rollout_id=bad.id, metric="latency_p95", at=T0 + timedelta(seconds=30 * i),
                                    value=0.45, verdict=Verdict.FAILED, reason="0.45 >= 0.3") for i in (1, 2)])
    incident = s.open_incident(severity=Severity.CRITICAL, title="model fraud v4 failed <script>x</script>",
                               labels={"model": "fraud"}, started_at=T0 + timedelta(seconds=30),
                               now=T0 + timedelta(seconds=60))
    s.transition_rollout(bad.id, RolloutStatus.ROLLING_BACK, actor="agent", reason="latency", now=T0,
                         incident_id=incident.id)
    s.transition_rollout(bad.id, RolloutStatus.ROLLED_BACK, actor="agent", reason="rolled back", now=T0)
    s.end_version("fraud", "v4", status="rolled_back", outcome="rolled back after a failed analysis", actor="agent",
                  now=T0)
    s.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="agent", reason="rolled back",
                          now=T0 + timedelta(seconds=75), resolution="rollback")
    s.record_retrain(model="fraud", candidate="v5", status=RetrainStatus.REJECTED, reason="drift", actor="agent",
                     now=T0 + timedelta(hours=1), metrics={"auc": 0.5}, current_metrics={"auc": 0.79},
                     gate={"metric": "auc", "passed": False, "reason": "auc 0.5000 vs 0.7900: drop 0.2900 over 0.01"})
    good = s.create_rollout(model="fraud", version="v6", previous_version="v2", canary=["localhost"], rest=[],
                            actor="api", reason="retrained", now=T0 + timedelta(hours=2))
    s.transition_rollout(good.id, RolloutStatus.ANALYSING, actor="agent", reason="", now=T0 + timedelta(hours=2))
    s.transition_rollout(good.id, RolloutStatus.PROMOTING, actor="agent", reason="", now=T0 + timedelta(hours=3))
    s.deploy_version("fraud", "v6", actor="api", now=T0 + timedelta(hours=3), outcome="promoted", baseline_id=None)
    s.transition_rollout(good.id, RolloutStatus.PROMOTED, actor="agent", reason="", now=T0 + timedelta(hours=3))
    forced = s.create_rollout(model="fraud", version="v5", previous_version="v6", canary=["localhost"], rest=[],
                              actor="cli:carol", reason="the holdout is stale", now=T0 + timedelta(hours=4),
                              gate_override={"by": "cli:carol", "reason": "the holdout is stale",
                                             "problem": "v5 failed its gate (auc 0.5000 vs 0.7900)"})
    s.transition_rollout(forced.id, RolloutStatus.ANALYSING, actor="agent", reason="", now=T0 + timedelta(hours=4))
    s.transition_rollout(forced.id, RolloutStatus.PROMOTING, actor="cli:carol", reason="", now=T0 + timedelta(hours=5),
                         promoted_by="cli:carol")
    s.deploy_version("fraud", "v5", actor="cli:carol", now=T0 + timedelta(hours=5), outcome="promoted over its gate",
                     baseline_id=None, source=f"rollout {forced.id} (promoted by cli:carol over its gate)")
    s.transition_rollout(forced.id, RolloutStatus.PROMOTED, actor="agent", reason="", now=T0 + timedelta(hours=5))
    return ctx, tmp_path


def invoke(tmp_path, *args):
    return CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "agent.yaml")],
                              obj=Settings(clock=ManualClock(NOW)))


def test_json_answers_what_an_auditor_asks(history):
    ctx, tmp_path = history
    result = invoke(tmp_path, "report", "model", "fraud", "--since", "7d", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["counts"] == {"rollouts": 3, "promoted": 1, "promoted_over_gate": 1, "gate_overrides": 1,
                                "rolled_back": 1, "aborted": 0, "retrains": 1, "gates_passed": 0, "gates_failed": 1,
                                "incidents": 1}
    assert report["mttr_s"] == 45.0
    serving = [(v["version"], v["status"], v["deployed_by"], v["gate_result"]) for v in report["versions"]]
    assert serving == [("v2", "retired", "cli:alice", "none"), ("v4", "rolled_back", None, "none"),
                       ("v6", "retired", "api", "none"), ("v5", "serving", "cli:carol", "none, overridden")]
    assert [(o["rollout"], o["by"], o["reason"]) for o in report["gate_overrides"]] == [
        (3, "cli:carol", "the holdout is stale")]
    assert [(x["version"], x["source"]) for x in report["served"]] == [
        ("v2", "promoted"), ("v6", "promoted"), ("v5", "rollout 3 (promoted by cli:carol over its gate)")]
    assert [m["verdict"] for m in report["rollouts"][0]["measurements"]] == ["failed", "failed"]
    assert report["retrains"][0]["gate"]["passed"] is False
    actions = [(e["action"], e["subject"]) for e in report["audit"]]
    assert ("rollout.rolled_back", "rollout:1") in actions and ("rollout.promoted", "rollout:2") in actions
    assert ("incident.resolved", "incident:1") in actions and ("retrain.rejected", "model:fraud") in actions
    assert ("rollout.gate_override", "rollout:3") in actions and ("model.serving", "model:fraud") in actions
    assert report["latency_from"] == "the store's sample history" and report["ledger"]["rules"] == []
    assert invoke(tmp_path, "report", "model", "spam").exit_code == 1


def test_html_is_escaped_and_readable_in_chromium(history, screenshot, ocr):
    ctx, tmp_path = history
    out = tmp_path / "fraud.html"
    assert invoke(tmp_path, "report", "model", "fraud", "--since", "7d", "--out", str(out)).exit_code == 0
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "http" not in html.split("</head>")[1]  # self-contained: nothing to fetch
    assert 'id="overrides"' in html and 'id="served"' in html and 'id="ledger"' not in html  # no run: a note
    assert "No remediation run in this period." in html
    text = ocr(screenshot(out, width=1600, height=2400))
    assert "model fraud" in text and "rolled back" in text and "gate" in text and "overridden" in text


def test_latency_comes_from_prometheus_when_that_is_the_source(make_ctx, models_dir, tmp_path, prometheus_factory):
    """With sources.kind prometheus the samples are in Prometheus, not in the store."""
    import numpy as np

    from tests.fixtures.prometheus import Family, openmetrics

    start = int(T0.timestamp()) - 12 * 3600  # midnight UTC
    ts = np.arange(start, start + 2 * 86400 - 3600, 300)  # two days (Prometheus looks 5 min past the last)
    p95 = np.where(ts < start + 86400, 0.05, 0.25)  # day one fast, day two slow
    family = Family(name="model_latency_p95_seconds", series=[({"model": "fraud"}, ts, p95),
                                                              ({"model": "spam"}, ts, p95 * 10)])
    server = prometheus_factory(backfill_text=openmetrics([family]))
    make_ctx(f"""sources:
  kind: prometheus
  prometheus:
    url: {server.url}
    queries:
      - {{name: latency_p95, expr: model_latency_p95_seconds, kind: quantile}}
""" + model_yaml(models_dir, GOOD, prometheus_url=server.url))
    result = invoke(tmp_path, "report", "model", "fraud", "--since", "3d", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["latency_from"] == "Prometheus (sources.prometheus)"
    assert [(d["day"], round(d["latency_p95"], 3)) for d in report["days"]] == [
        ("2026-11-25", 0.05), ("2026-11-26", 0.25)]
