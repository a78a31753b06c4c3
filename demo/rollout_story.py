"""``python -m demo --story rollout``: model operations told as on-call would follow them.

1. A slow model version (v4, hand-built: its rollout overrides the gate, on the record) is rolled
   out with a canary; the analysis catches its latency and rolls it back before it reaches every
   host: one incident, the latency signals in it, no other playbook, with its MTTR.
2. A drifted version (v3) reaches production; the drift rule rolls it back; once the incident is
   resolved the agent retrains the model, the candidate passes its gate and goes through a clean
   guarded rollout.
3. The labelling pipeline breaks; the next retrain's candidate fails its gate: no rollout, an
   escalated incident with both sets of metrics.
4. The model's governance report, in HTML.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agent.flow.incidents import Incident, IncidentStatus
from agent.flow.rollouts import Rollout, RolloutStatus
from demo.run import DemoRun

Say = Callable[[str, str], None]
Show = Callable[[str], None]
Wait = Callable[[DemoRun, str, Callable[[], Any], float], Any]

WAITING_FOR_A_PERSON = (RolloutStatus.PAUSED, RolloutStatus.WAITING_APPROVAL)


def rollout_settled(run: DemoRun, rollout_id: int) -> Rollout | None:
    """The rollout once it has ended or waits for a person, else None."""
    assert run.store is not None
    rollout = run.store.get_rollout(rollout_id)
    if rollout is None or not (rollout.status.done or rollout.status in WAITING_FOR_A_PERSON):
        return None
    return rollout


def settled(run: DemoRun, incident_id: int) -> Incident | None:
    """The rollout's incident once resolved (its signals stayed quiet after the rollback)."""
    assert run.store is not None
    incident = run.store.get_incident(incident_id)
    return incident if incident is not None and incident.status is IncidentStatus.RESOLVED else None


def start_rollout(run: DemoRun, version: str, *, override_gate: str = "") -> int:
    """``override_gate``: the reason to roll out a version that never passed the retrain gate (the
    demo's hand-built v1 and v4), recorded in the audit log and the governance report."""
    extra = ("--override-gate", "--reason", override_gate) if override_gate else ("--reason", "demo")
    answer = run.aiops("rollout", "start", "--model", "fraud", "--version", version, "--canary", "localhost",
                       *extra, "--json")
    return int(json.loads(answer.stdout)["id"])


HAND_BUILT = "demo: a hand-built version, never trained behind the gate"


def quiet_down(run: DemoRun, show: Show, wait: Wait) -> None:
    """Before the next scene: the canary's latency incident resolved (by the agent when its
    signals are quiet, else closed by hand), so the next fault starts an episode of its own."""
    assert run.store is not None
    store = run.store
    wait(run, "the canary's latency leaving the rate window", lambda: run.wait_quiet() or True, 150)
    for incident in store.list_incidents(status=(IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED,
                                                 IncidentStatus.REMEDIATING)):
        run.aiops("incidents", "resolve", str(incident.id), "--reason", "demo: next scene")
        show(f"      incident #{incident.id} closed by hand before the next scene")


def story(run: DemoRun, say: Say, show: Show, wait: Wait) -> int:
    say("[1/6]", "Backfilling history and starting Prometheus, the fraud model service (v2) and the agent …")
    run.start_stack()
    run.start_agent()
    wait(run, "fitting detectors on the history", run.wait_fitted_once, 180)
    assert run.store is not None
    store = run.store
    analysis = f"every {run.timing.analysis_interval_s:g}s for {run.timing.analysis_duration_s:g}s"

    say("[2/6]", f"Rolling out v4 (seven times slower) on a canary; the agent analyses it {analysis} …")
    bad = start_rollout(run, "v4", override_gate=HAND_BUILT)
    done = wait(run, "analysing the canary", lambda: rollout_settled(run, bad), 180)
    for m in store.measurements(bad):
        show(f"      {m.at:%H:%M:%S} {m.metric:<17} {m.verdict:<13} {m.reason}")
    code = 0
    if done.status is RolloutStatus.ROLLED_BACK and done.incident_id is not None:
        incident = wait(run, "the rollout's incident settling", lambda: settled(run, done.incident_id), 120)
        mttr = (incident.resolved_at - incident.started_at).total_seconds()
        ran = [r for r in store.list_runs() if done.created_at <= r.requested_at <= incident.resolved_at]
        show(f"      [green]caught on the canary and rolled back[/]: one incident (#{incident.id}, "
             f"{len(incident.signals)} signals), MTTR {mttr:.0f}s from its first anomalous point; "
             f"{len(ran)} remediation runs meanwhile (the rollback was the remediation)")
    else:
        show(f"      [red]rollout {bad} ended {done.status}[/]")
        code = 1

    quiet_down(run, show, wait)

    say("[3/6]", "A drifted version (v3) reaches production; the drift rule rolls it back …")
    at = run.inject("drift")
    incident = wait(run, "waiting for the drift incident", lambda: run.incident_since(at, "drift"), 120)
    wait(run, "rolling back and verifying", lambda: run.incident(incident.id).status is IncidentStatus.RESOLVED, 240)
    outcome = run.outcome(incident.id, at)
    show(f"      incident #{incident.id} resolved: MTTD {outcome.mttd_s:.0f}s, MTTR {outcome.mttr_s:.0f}s")

    say("[4/6]", "Retraining after the drift: a candidate scored against v2 on one holdout, then a guarded rollout …")
    retrain = wait(run, "retraining", lambda: next(iter(store.list_retrains("fraud")), None), 180)
    show(f"      retrain {retrain.id}: candidate {retrain.candidate} {retrain.status}: {retrain.gate.get('reason')}")
    if retrain.rollout_id is not None:
        clean = wait(run, "analysing the candidate", lambda: rollout_settled(run, retrain.rollout_id), 180)
        show(f"      rollout {clean.id} of {clean.version}: {clean.status}")
        code = code or int(clean.status is not RolloutStatus.PROMOTED)
    else:
        code = 1

    say("[5/6]", "The labelling pipeline breaks; the next retrain's candidate must not ship …")
    run.inject("bad-labels")
    answer = run.aiops("model", "retrain", "fraud", "--reason", "weekly retrain", check=False)
    show("      " + answer.stdout.strip() + f"  (exit {answer.returncode})")

    say("[6/6]", "The model's governance report (aiops report model fraud):")
    html = run.root / "model-fraud.html"
    run.aiops("report", "model", "fraud", "--since", "1d", "--out", str(html))
    show(run.aiops("model", "show", "fraud").stdout)
    show(f"      HTML report: {html}")
    return code
