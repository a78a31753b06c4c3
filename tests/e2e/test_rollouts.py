"""Guarded rollouts and the retrain gate on the real demo stack: a real Prometheus, the demo
model service, the daemon as a process advancing the analysis each cycle, real playbooks.
One stack serves the scenarios of this module, in order."""

from __future__ import annotations

import json
import shutil

import pytest

from agent.flow.incidents import IncidentStatus, Severity
from agent.flow.rollouts import RetrainStatus, RolloutStatus, Verdict
from demo.rollout_story import rollout_settled, start_rollout
from demo.run import DemoRun

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the Debian package prometheus"),
]




def served(demo: DemoRun) -> str:
    return (demo.root / "models" / "current").resolve().name


def test_a_slow_version_fails_on_the_canary_and_is_rolled_back(demo):
    rollout_id = start_rollout(demo, "v4")
    done = demo.wait(lambda: rollout_settled(demo, rollout_id), 90, "the rollout settled")

    assert done.status is RolloutStatus.ROLLED_BACK
    assert served(demo) == "v2"
    failed = [m for m in demo.store.measurements(rollout_id) if m.verdict is Verdict.FAILED]
    assert {m.metric for m in failed} == {"latency_p95"} and len(failed) == 2
    worst = demo.timing.analysis_interval_s * 2  # interval x failure_limit, as the config says
    assert (done.ended_at - done.analysis_started_at).total_seconds() <= worst + demo.timing.cycle_s
    incident = demo.store.get_incident(done.incident_id)
    assert (incident.status, incident.resolution, incident.severity) == (
        IncidentStatus.RESOLVED, "rollback", Severity.CRITICAL)
    assert demo.store.model_version("fraud", "v4").status == "rolled_back"


def test_a_good_version_passes_its_canary_and_is_promoted(demo):
    rollout_id = start_rollout(demo, "v1")
    done = demo.wait(lambda: rollout_settled(demo, rollout_id), 90, "the rollout settled")

    assert done.status is RolloutStatus.PROMOTED, demo.aiops("rollout", "status", str(rollout_id)).stdout
    assert served(demo) == "v1" and (demo.root / "models" / "stable").resolve().name == "v1"
    verdicts = {(m.metric, m.verdict) for m in demo.store.measurements(rollout_id)}
    assert verdicts == {(name, Verdict.SUCCESSFUL) for name in
                        ("latency_p95", "error_rate", "drift_rate", "prediction_shift")}
    shown = json.loads(demo.aiops("model", "show", "fraud", "--json").stdout)
    assert [(v["version"], v["status"]) for v in shown["versions"]] == [("v4", "rolled_back"), ("v1", "serving")]


def test_a_candidate_that_fails_its_gate_is_not_rolled_out(demo):
    before = len(demo.store.list_rollouts(model="fraud"))
    demo.inject("bad-labels")
    answer = demo.aiops("model", "retrain", "fraud", "--reason", "weekly retrain")

    (retrain,) = demo.store.list_retrains("fraud")
    assert retrain.status is RetrainStatus.REJECTED and retrain.rollout_id is None
    assert answer.stdout.startswith(f"retrain {retrain.id}: rejected {retrain.candidate} (weekly retrain; auc ")
    assert len(demo.store.list_rollouts(model="fraud")) == before and served(demo) == "v1"
    escalated = demo.store.model_incident_ids("fraud", retrain.at, retrain.at.replace(year=retrain.at.year + 1))
    events = [e for i in escalated for e in demo.store.incident_events(i) if e.kind == "retrain"]
    assert events[0].details["gate"]["passed"] is False
    demo.clear_faults()
