"""The whole loop with real parts: a real Prometheus over a backfilled day, the demo model
service, the daemon as a process, real ansible-runner playbooks. One stack serves every scenario
in this module, in order; each scenario leaves the service clean and its incident closed.
"""

from __future__ import annotations

import json
import shutil
import signal

import pytest

from agent.flow.incidents import IncidentStatus
from demo.run import DemoRun

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the Debian package prometheus"),
]




def settle(demo: DemoRun, incident_id: int) -> None:
    """Leave a clean stack: no fault, no signal still firing, and the incident closed by hand if
    the agent left it open (closing it while its window still shows the fault would reopen it)."""
    demo.clear_faults()
    demo.wait_quiet()
    if demo.incident(incident_id).status is not IncidentStatus.RESOLVED:
        demo.aiops("incidents", "resolve", str(incident_id), "--reason", "test tear-down")


def detected(demo: DemoRun, at, detector: str | None = None, timeout_s: float = 60):
    incident = demo.wait(lambda: demo.incident_since(at, detector), timeout_s, f"an incident ({detector or 'any'})")
    reads_right(demo, incident.id)
    return incident


def reads_right(demo: DemoRun, incident_id: int) -> None:
    """What on-call reads of the incident: the outage began before it was detected (MTTD never 0),
    says how its start was found, and no title blames the agent's own remediation."""
    summary = json.loads(demo.aiops("incidents", "show", str(incident_id), "--format", "json").stdout)
    episode = summary["episode"]
    assert episode["mttd_s"] > 0, (episode, summary["timeline"])
    assert summary["onset"], summary["signals"]
    assert "since remediation" not in summary["title"], summary["title"]
    assert all(not c["kind"] == "remediation" for c in summary["changes"]), summary["changes"]
    page = demo.aiops("incidents", "show", str(incident_id), "--format", "html").stdout
    assert "(MTTD 0s)" not in page and summary["onset"].split(" ")[0] in page


def test_latency_spike_is_fixed_by_a_verified_restart(demo):
    at = demo.inject("latency")
    incident = detected(demo, at)
    demo.wait(lambda: demo.incident(incident.id).status is IncidentStatus.RESOLVED, 120, "the incident resolved")
    outcome = demo.outcome(incident.id, at)
    assert outcome.incident.resolution == "remediation"
    assert outcome.incident.remediation_verified_at is not None
    assert "latency_p95" in outcome.incident.title
    runs = demo.runs(incident.id)
    assert [(r["rule"], r["mode"]) for r in runs if r["mode"] == "apply"] == [("restart-model-service", "apply")]
    assert any(r["mode"] == "check" and r["status"] == "succeeded" for r in runs)
    assert outcome.mttd_s < 30 and outcome.mttr_s < 90
    settle(demo, incident.id)


def test_crash_is_fixed_by_a_verified_restart(demo):
    before = demo.stack.info.service_pid
    at = demo.inject("crash")
    incident = detected(demo, at)
    demo.wait(lambda: demo.incident(incident.id).status is IncidentStatus.RESOLVED, 120, "the incident resolved")
    outcome = demo.outcome(incident.id, at)
    assert outcome.incident.resolution == "remediation"
    assert any(s.series_id.startswith("up{") for s in outcome.incident.signals)
    assert [r["status"] for r in demo.runs(incident.id) if r["mode"] == "apply"] == ["verified"]
    from demo.stack import read_pid
    assert read_pid(demo.root) not in (None, before)  # a new process serves again
    settle(demo, incident.id)


def test_drift_after_a_rollout_is_fixed_by_rolling_the_model_back(demo):
    at = demo.inject("drift")
    incident = detected(demo, at, "drift", timeout_s=90)
    demo.wait(lambda: demo.incident(incident.id).status is IncidentStatus.RESOLVED, 150, "the incident resolved")
    outcome = demo.outcome(incident.id, at)
    assert outcome.incident.resolution == "remediation"
    assert any(s.detector == "drift" for s in outcome.incident.signals)
    assert [r["rule"] for r in demo.runs(incident.id) if r["mode"] == "apply"] == ["rollback-model"]
    assert (demo.root / "models" / "current").readlink().name == "v2"
    summary = demo.aiops("incidents", "show", str(incident.id)).stdout
    assert "model_rollout" in summary and "roll out fraud model v3" in summary  # the rollout is the suspect
    settle(demo, incident.id)


def test_prometheus_killed_during_an_incident_is_a_gap_not_a_recovery(demo):
    demo.aiops("remediation", "pause", "--reason", "e2e: hold the incident open")
    try:
        at = demo.inject("latency")
        incident = detected(demo, at)
        opened = demo.count("SELECT count(*) FROM incidents")
        demo.stack.stop_prometheus()
        cycles = demo.cycles()
        demo.wait(lambda: demo.cycles() >= cycles + 5, 60, "five cycles without Prometheus")
        assert demo.agent.poll() is None
        assert demo.incident(incident.id).status is not IncidentStatus.RESOLVED
        assert demo.count("SELECT count(*) FROM incidents") == opened
        log = (demo.root / "logs" / "agent.log").read_text()
        assert "event=source." in log and "prometheus" in log
        demo.stack.start_prometheus()
    finally:
        demo.aiops("remediation", "resume")
    demo.wait(lambda: demo.incident(incident.id).status is IncidentStatus.RESOLVED, 150, "the incident resolved")
    assert demo.count("SELECT count(*) FROM incidents") == opened
    settle(demo, incident.id)


def test_agent_killed_mid_remediation_does_not_run_it_twice(demo):
    at = demo.inject("latency")
    # What on-call reads is checked once the agent is back: two CLI calls first could outlast the
    # restart this test must catch under way.
    incident = demo.wait(lambda: demo.incident_since(at, None), 60, "an incident")
    demo.wait(lambda: any(r["mode"] == "apply" and r["status"] == "running" for r in demo.runs(incident.id)),
              60, "the restart under way")
    demo.agent.send_signal(signal.SIGKILL)
    demo.agent.wait(timeout=10)
    demo.start_agent()
    demo.wait(lambda: any(r["status"] == "interrupted" for r in demo.runs(incident.id)), 60, "the run marked interrupted")
    cycles = demo.cycles()
    demo.wait(lambda: demo.cycles() >= cycles + 5, 60, "five more cycles")
    applies = [r for r in demo.runs(incident.id) if r["mode"] == "apply"]
    assert [r["status"] for r in applies] == ["interrupted"]  # paged, not run again
    assert demo.incident(incident.id).status is not IncidentStatus.RESOLVED
    events = [e.kind for e in demo.store.incident_events(incident.id)]
    assert "escalated" in events
    reads_right(demo, incident.id)
    settle(demo, incident.id)


def test_a_fault_the_playbook_cannot_fix_escalates_and_stays_open(demo):
    at = demo.inject("stuck-latency")
    incident = detected(demo, at)
    demo.wait(lambda: any(r["status"] == "not_fixed" for r in demo.runs(incident.id)), 120, "the run judged not fixed")
    cycles = demo.cycles()
    demo.wait(lambda: demo.cycles() >= cycles + 3, 60, "three more cycles")
    current = demo.incident(incident.id)
    assert current.status is not IncidentStatus.RESOLVED
    escalations = [e for e in demo.store.incident_events(incident.id) if e.kind == "escalated"]
    assert escalations and "output" in escalations[-1].details
    settle(demo, incident.id)
