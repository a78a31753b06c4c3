"""Retraining behind a gate, with the real retrain playbook and the demo trainer."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from agent.config.models import Gate
from agent.flow.incidents import IncidentStatus, Severity, Signal
from agent.flow.rollouts import RetrainStatus, RolloutStatus
from agent.rollouts.retrain import gate_result, retrain, retrain_on_drift
from tests.rollouts.conftest import GOOD, T0, model_yaml

RETRAIN = """\
    retrain:
      playbook: retrain_model.yml
      gate: {metric: auc, max_drop: 0.01}
      max_per_period: 2
      period: 1d
"""


def test_the_gate_compares_with_the_current_version():
    gate = Gate(metric="auc", max_drop=0.01)
    assert gate_result(gate, {"auc": 0.895}, {"auc": 0.9}, candidate_version="v6", current_version="v5") == {
        "metric": "auc", "candidate": 0.895, "current": 0.9, "drop": 0.005, "max_drop": 0.01, "passed": True,
        "candidate_version": "v6", "current_version": "v5",
        "reason": "auc 0.8950 (v6) vs 0.9000 (v5, serving): drop 0.0050 within 0.01"}
    assert gate_result(gate, {"auc": 0.88}, {"auc": 0.9})["reason"] == "auc 0.8800 vs 0.9000: drop 0.0200 over 0.01"
    assert gate_result(gate, {"loss": 0.1}, {"auc": 0.9})["passed"] is False


def test_a_passing_candidate_starts_a_guarded_rollout(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, retrain=RETRAIN))
    ctx.store.deploy_version("fraud", "v2", actor="cli:alice", now=T0 - timedelta(days=1), outcome="seeded",
                             baseline_id=None)
    done = retrain(ctx, "fraud", actor="agent", now=T0, reason="drift incident #3")

    assert done.status is RetrainStatus.PASSED and done.candidate == "v5"
    assert done.gate["passed"] is True and done.metrics["auc"] > done.current_metrics["auc"] - 0.01
    assert json.loads((models_dir / "versions" / "v5" / "model.json").read_text())["version"] == "v5"
    rollout = ctx.store.get_rollout(done.rollout_id)
    assert (rollout.version, rollout.status, rollout.retrain_id) == ("v5", RolloutStatus.PENDING, done.id)
    v5 = ctx.store.model_version("fraud", "v5")
    assert v5.metrics == done.metrics and v5.gate == done.gate
    assert ctx.store.model_version("fraud", "v2").metrics == done.current_metrics


def test_a_failing_gate_escalates_and_starts_no_rollout(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, retrain=RETRAIN,
                              trainer_args=("--corrupt-labels",)))
    drift = ctx.store.open_incident(severity=Severity.WARNING, title="fraud drifted", labels={"model": "fraud"},
                                    started_at=T0, now=T0)
    done = retrain(ctx, "fraud", actor="agent", now=T0, reason=f"drift incident #{drift.id}", incident_id=drift.id)

    assert done.status is RetrainStatus.REJECTED and done.rollout_id is None
    assert ctx.store.list_rollouts(model="fraud") == []
    assert ctx.store.model_version("fraud", "v5").status == "rejected"
    incident = ctx.store.get_incident(drift.id)
    assert incident.severity is Severity.CRITICAL
    event = [e for e in ctx.store.incident_events(drift.id) if e.kind == "retrain"][0]
    assert event.message.startswith("model fraud: retrained candidate v5 failed its gate (auc ")
    assert event.details["metrics"]["auc"] < event.details["current_metrics"]["auc"] - 0.01


def test_at_most_n_retrains_per_period(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url,
                              retrain=RETRAIN.replace("max_per_period: 2", "max_per_period: 1"),
                              trainer_args=("--corrupt-labels",)))
    first = retrain(ctx, "fraud", actor="agent", now=T0, reason="one")
    second = retrain(ctx, "fraud", actor="agent", now=T0 + timedelta(hours=23), reason="two")
    assert [first.status, second.status] == [RetrainStatus.REJECTED, RetrainStatus.SKIPPED]
    assert second.reason == "1 retrains in the last 86400s (limit 1)"
    assert not (models_dir / "versions" / "v6").exists()  # the skipped one trained nothing
    assert retrain(ctx, "fraud", actor="agent", now=T0 + timedelta(days=1, minutes=1), reason="three").status \
        is RetrainStatus.REJECTED


def test_a_resolved_drift_incident_asks_for_one_retrain(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, retrain=RETRAIN))
    signal = Signal(series_id='demo_input_feature{model="fraud"}', detector="drift", labels={"model": "fraud"},
                    first_at=T0, last_at=T0)
    drift = ctx.store.open_incident(severity=Severity.WARNING, title="fraud drifted", labels={"job": "demo"},
                                    started_at=T0, now=T0, signals=[signal])
    assert retrain_on_drift(ctx, T0) == []  # still open: the rollback comes first
    ctx.store.transition_incident(drift.id, IncidentStatus.RESOLVED, actor="agent", reason="rolled back",
                                  now=T0 + timedelta(minutes=1), resolution="remediation")

    (done,) = retrain_on_drift(ctx, T0 + timedelta(minutes=2))

    assert (done.incident_id, done.status, done.reason.split(";")[0]) == (
        drift.id, RetrainStatus.PASSED, f"drift incident #{drift.id}")
    assert retrain_on_drift(ctx, T0 + timedelta(minutes=3)) == []  # once per incident


def test_a_metrics_file_without_a_usable_version_fails_the_retrain(make_ctx, models_dir, prometheus, tmp_path):
    """The trainer is a program of its own: what it writes is checked before anything follows."""
    writer = tmp_path / "writer.py"
    writer.write_text("import json, sys\npath = sys.argv[sys.argv.index('--metrics-file') + 1]\n"
                      "json.dump({'candidate': {'version': '../../etc', 'metrics': {'auc': 0.99}}}, open(path, 'w'))\n")
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, retrain=RETRAIN).replace(
        f"trainer_argv: {json.dumps([sys.executable, '-m', 'demo.train', '--rows', '1500'])}",
        f"trainer_argv: {json.dumps([sys.executable, str(writer)])}"))
    done = retrain(ctx, "fraud", actor="agent", now=T0, reason="by hand")
    assert (done.status, done.reason) == (
        RetrainStatus.FAILED, "the metrics file names no usable candidate version (found '../../etc')")
    assert ctx.store.list_rollouts(model="fraud") == [] and ctx.store.model_versions("fraud") == []


def test_the_gate_compares_with_the_serving_version_named(make_ctx, models_dir, prometheus):
    """After v5 is promoted, the next candidate is judged against v5 itself (its own model on the
    same holdout), not against the figure of a version that no longer serves."""
    from agent.rollouts import engine

    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, retrain=RETRAIN, serving=True))
    first = retrain(ctx, "fraud", actor="agent", now=T0, reason="drift incident #3")
    assert (first.candidate, first.gate["current_version"]) == ("v5", "v2")
    for seconds in (0, 30, 60, 90):
        engine.advance(ctx, T0 + timedelta(seconds=seconds))
    assert ctx.store.serving_version("fraud").version == "v5"

    second = retrain(ctx, "fraud", actor="cli:bob", now=T0 + timedelta(hours=1), reason="weekly")
    assert (second.candidate, second.gate["current_version"]) == ("v6", "v5")
    assert second.current_metrics["auc"] == first.metrics["auc"]  # v5 scored as v5, on the same holdout
    assert second.gate["reason"].startswith(f"auc {second.metrics['auc']:.4f} (v6) vs {first.metrics['auc']:.4f} "
                                            "(v5, serving): ")


def test_retrain_exits_non_zero_unless_a_candidate_passed(make_ctx, models_dir, prometheus, tmp_path):
    from click.testing import CliRunner

    from agent.cli import cli
    from agent.cli.common import Settings
    from agent.clock import ManualClock

    make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url,
                        retrain=RETRAIN.replace("max_per_period: 2", "max_per_period: 1"),
                        trainer_args=("--corrupt-labels",)))

    def invoke():
        return CliRunner().invoke(cli, ["model", "retrain", "fraud", "--reason", "nightly", "--config",
                                        str(tmp_path / "agent.yaml")], obj=Settings(clock=ManualClock(T0)))

    rejected = invoke()
    assert rejected.exit_code == 1 and rejected.output.startswith("retrain 1: rejected v5 (nightly; auc ")
    skipped = invoke()
    assert (skipped.exit_code, skipped.output) == (
        1, "retrain 2: skipped  (1 retrains in the last 86400s (limit 1))\n")
