"""Guarded rollouts and the retrain gate on the real demo stack: a real Prometheus, the demo
model service, the daemon as a process advancing the analysis each cycle, real playbooks.
One stack serves the scenarios of this module, in order."""

from __future__ import annotations

import json
import shutil

import pytest

from agent.flow.incidents import Severity
from agent.flow.rollouts import RetrainStatus, RolloutStatus, Verdict
from demo.rollout_story import HAND_BUILT, rollout_settled, settled, start_rollout
from demo.run import DemoRun

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the Debian package prometheus"),
]




def served(demo: DemoRun) -> str:
    return (demo.root / "models" / "current").resolve().name


def test_a_slow_version_fails_on_the_canary_and_is_rolled_back(demo):
    rollout_id = start_rollout(demo, "v4", override_gate=HAND_BUILT)
    done = demo.wait(lambda: rollout_settled(demo, rollout_id), 90, "the rollout settled")

    assert done.status is RolloutStatus.ROLLED_BACK
    assert served(demo) == "v2"
    measured = demo.store.measurements(rollout_id)
    failed = [m for m in measured if m.verdict is Verdict.FAILED]
    assert {m.metric for m in failed} == {"latency_p95"} and len(failed) == 2
    # Rolled back by the step that took the failure_limit-th failing round: no round after it,
    # whatever the wall clock did meanwhile (intervals counted in the store, not seconds). A first
    # round may still pass on a loaded machine (failures are counted, not required in a row): its
    # window can end before the slow version's latency reaches Prometheus.
    rounds = sorted({m.at for m in measured})
    assert len(rounds) >= 2 and failed[-1].at == rounds[-1]
    (rolling_back,) = [e for e in demo.store.audit_entries() if e.action == "rollout.rolling_back"
                       and e.subject == f"rollout:{rollout_id}"]
    assert rolling_back.ts == rounds[-1]
    # One story: the model's latency signals are in the rollout's incident, no rule ran meanwhile,
    # and it resolved as the rollback once they stayed quiet.
    incident = demo.wait(lambda: settled(demo, done.incident_id), 120, "the rollout's incident resolved")
    assert (incident.resolution, incident.severity) == ("rollback", Severity.CRITICAL)
    assert [r for r in demo.store.list_runs() if done.created_at <= r.requested_at <= incident.resolved_at] == []
    opened = [i for i in demo.store.list_incidents() if i.started_at >= done.created_at
              and i.resolution != "merged" and i.labels.get("model") == "fraud"]
    assert [i.id for i in opened] == [incident.id]
    assert demo.store.model_version("fraud", "v4").status == "rolled_back"
    assert demo.store.get_rollout(rollout_id).gate_override["reason"] == HAND_BUILT


def test_a_good_version_passes_its_canary_and_is_promoted(demo):
    rollout_id = start_rollout(demo, "v1", override_gate=HAND_BUILT)
    done = demo.wait(lambda: rollout_settled(demo, rollout_id), 90, "the rollout settled")

    assert done.status is RolloutStatus.PROMOTED, demo.aiops("rollout", "status", str(rollout_id)).stdout
    assert served(demo) == "v1" and (demo.root / "models" / "stable").resolve().name == "v1"
    verdicts = {(m.metric, m.verdict) for m in demo.store.measurements(rollout_id)}
    assert verdicts == {(name, Verdict.SUCCESSFUL) for name in
                        ("latency_p95", "error_rate", "drift_rate", "prediction_shift")}
    shown = json.loads(demo.aiops("model", "show", "fraud", "--json").stdout)
    assert [(v["version"], v["status"]) for v in shown["versions"]] == [
        ("v2", "retired"), ("v4", "rolled_back"), ("v1", "serving")]
    assert [(s["version"], s["actor"]) for s in shown["served"]] == [("v2", "agent"), ("v1", "agent")]
    assert shown["served"][1]["source"] == f"rollout {rollout_id} (its analysis passed over its gate)"


def test_a_candidate_that_fails_its_gate_is_not_rolled_out(demo):
    before = len(demo.store.list_rollouts(model="fraud"))
    demo.inject("bad-labels")
    answer = demo.aiops("model", "retrain", "fraud", "--reason", "weekly retrain", check=False)

    (retrain,) = demo.store.list_retrains("fraud")
    assert retrain.status is RetrainStatus.REJECTED and retrain.rollout_id is None
    assert answer.returncode == 1  # a scheduled job can tell
    assert answer.stdout.startswith(f"retrain {retrain.id}: rejected {retrain.candidate} (weekly retrain; auc ")
    assert retrain.gate["current_version"] == "v1"  # judged against what serves, named
    assert len(demo.store.list_rollouts(model="fraud")) == before and served(demo) == "v1"
    refused = demo.aiops("rollout", "start", "--model", "fraud", "--version", retrain.candidate, check=False)
    assert refused.returncode == 1 and f"{retrain.candidate} failed its gate (" in refused.stderr
    escalated = demo.store.model_incident_ids("fraud", retrain.at, retrain.at.replace(year=retrain.at.year + 1))
    events = [e for i in escalated for e in demo.store.incident_events(i) if e.kind == "retrain"]
    assert events[0].details["gate"]["passed"] is False
    demo.clear_faults()
