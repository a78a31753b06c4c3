"""A run from match to resolution: check pass, real run, verification, rollback, escalation."""

from __future__ import annotations

from pathlib import Path

from agent.flow.incidents import IncidentStatus, Signal
from agent.flow.leases import LEADER
from agent.flow.runs import RunMode, RunStatus
from agent.incidents.lifecycle import try_resolve
from tests.remediations.conftest import T0, audit, cycle, later, lines, open_incident, run_cycle, signal

SIG = 'latency{host="h1"}'


def rule_yaml(work: Path, playbook: str = "touch.yml", extra: str = "") -> str:
    return f"""
    verify: {{period: 5m, deadline: 15m}}
    limits: {{cooldown: 0s}}
    rules:
      - name: fix-api
        match: {{labels: {{service: api}}, detector: seasonal}}
        playbook: {playbook}
        mode: auto
        vars: {{dest: {work / 'out.txt'}, content: fixed, runs_log: {work / 'runs.log'}, rollback_marker: {work / 'rolled'},
               api_token: hunter2-secret}}
    """ + extra


def test_check_run_then_real_run_changes_the_file_and_verification_resolves(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    incident = open_incident(ctx, signals=[signal(SIG)])

    runs = run_cycle(ctx, T0, firing=[signal(SIG)])

    by_mode = {r.mode: r for r in runs}
    check, apply = by_mode[RunMode.CHECK], by_mode[RunMode.APPLY]
    assert (check.mode, check.status, check.parent_id) == (RunMode.CHECK, RunStatus.SUCCEEDED, apply.id)
    # the check pass reports the copy it would make; the command that records a run is skipped
    assert (check.host_summary["localhost"].changed, check.host_summary["localhost"].skipped) == (1, 2)
    assert check.rc == 0
    assert (apply.status, apply.rc, apply.rule, apply.playbook) == (RunStatus.VERIFYING, 0, "fix-api", "touch.yml")
    assert len(apply.playbook_sha256) == 64
    assert apply.extravars["api_token"] == "***"
    assert '"msg": "token ***"' in apply.output and "hunter2-secret" not in apply.output + check.output
    assert (work / "out.txt").read_text() == "fixed"
    assert lines(work / "runs.log") == [f"{apply.id} localhost"]  # the check pass wrote nothing
    assert Path(apply.artifact_dir, "artifacts", "run", "stdout").exists()
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.REMEDIATING
    assert ctx.store.get_incident(incident.id).remediation_started_at is not None

    # Quiet from 10 min on, a gap at 12 min (says nothing), verified 5 min after quiet began.
    run_cycle(ctx, later(10), quiet=[SIG])
    run_cycle(ctx, later(12), gaps=[SIG])
    assert ctx.store.get_run(apply.id).status is RunStatus.VERIFYING
    run_cycle(ctx, later(15), quiet=[SIG])

    run = ctx.store.get_run(apply.id)
    assert run.status is RunStatus.VERIFIED
    assert run.reason == f"signals quiet since {later(10).isoformat()} (300s)"
    resolved = ctx.store.get_incident(incident.id)
    assert (resolved.status, resolved.resolution) == (IncidentStatus.RESOLVED, "remediation")
    assert resolved.remediation_verified_at == later(15)
    # nothing runs again for a resolved incident
    assert run_cycle(ctx, later(30), firing=[signal(SIG)]) == []


def test_a_failed_check_run_stops_the_real_run(make_ctx, work):
    ctx = make_ctx(rule_yaml(work, playbook="fail_in_check.yml"))
    incident = open_incident(ctx)

    runs = {r.mode: r for r in run_cycle(ctx, T0)}

    assert runs[RunMode.CHECK].status is RunStatus.FAILED
    apply = runs[RunMode.APPLY]
    assert apply.status is RunStatus.FAILED
    assert apply.reason == (f"check run {runs[RunMode.CHECK].id} failed (rc 2); the real run was not started")
    assert not (work / "out.txt").exists()
    events = [e for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"]
    assert events[-1].message == f"run {apply.id} stopped: its check pass (run {runs[RunMode.CHECK].id}) failed"
    assert "check pass fails" in events[-1].details["output"]
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.OPEN


def test_not_recovered_by_the_deadline_rolls_back_and_escalates_with_output(make_ctx, work):
    ctx = make_ctx(rule_yaml(work, playbook="touch_direct.yml").replace(
        "mode: auto", "mode: auto\n        rollback_playbook: rollback.yml"))
    incident = open_incident(ctx, signals=[signal(SIG)])
    (apply,) = run_cycle(ctx, T0, firing=[signal(SIG)])
    assert apply.status is RunStatus.VERIFYING

    run_cycle(ctx, later(5), quiet=[SIG])
    run_cycle(ctx, later(8), firing=[signal(SIG)])  # fired again: the quiet spell does not count
    runs = run_cycle(ctx, later(16), firing=[signal(SIG)])

    run = ctx.store.get_run(apply.id)
    assert run.status is RunStatus.NOT_FIXED
    assert run.reason == f"signals not quiet for 300s by {run.verify_until.isoformat()} (last observation: firing)"
    (rollback,) = [r for r in runs if r.mode is RunMode.ROLLBACK]
    assert (rollback.status, rollback.parent_id) == (RunStatus.SUCCEEDED, apply.id)
    assert (work / "rolled").read_text() == f"rolled back {rollback.id}"
    escalated = [e for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"][-1]
    assert escalated.message == (f"run {apply.id} (touch_direct.yml) did not fix the incident by its verify deadline; "
                                 f"rollback run {rollback.id} succeeded")
    assert "TASK [Write the content]" in escalated.details["output"]
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.OPEN
    assert [e.subject for e in audit(ctx, "remediation.not_fixed")] == [f"run:{apply.id}"]


def test_a_quiet_cycle_holds_the_run_until_the_incident_fires_again(make_ctx, work):
    # the first points after a gap or a restart often look normal: one quiet cycle is no recovery
    ctx = make_ctx(rule_yaml(work, playbook="touch_direct.yml"))
    incident = open_incident(ctx, signals=[signal(SIG)])

    (run,) = run_cycle(ctx, T0, quiet=[SIG])
    assert run.status is RunStatus.PENDING and not (work / "runs.log").exists()
    run_cycle(ctx, later(1), quiet=[SIG])
    (held,) = audit(ctx, "remediation.quiet")  # audited once, not every cycle
    assert held.details["reason"] == (f"incident #{incident.id} looks recovered: its signals have data and no hits "
                                      "this cycle; the run waits for them to fire again or for the incident to resolve")

    run_cycle(ctx, later(2), firing=[signal(SIG)])
    assert ctx.store.get_run(run.id).status is RunStatus.VERIFYING
    assert lines(work / "runs.log") == [f"{run.id} localhost"]


def test_a_run_held_by_quiet_cycles_is_skipped_once_the_incident_resolves(make_ctx, work):
    ctx = make_ctx(rule_yaml(work, playbook="touch_direct.yml"))
    incident = open_incident(ctx, signals=[signal(SIG)])
    (run,) = run_cycle(ctx, T0, quiet=[SIG])

    assert try_resolve(ctx.store, incident.id, now=later(1), reason="quiet")  # a pending run does not hold it open
    run_cycle(ctx, later(1), quiet=[SIG])

    skipped = ctx.store.get_run(run.id)
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.reason == f"incident #{incident.id} is already resolved (quiet); nothing to fix"
    assert not (work / "runs.log").exists()


def fixed_then_reopened_by(ctx, firing: Signal):
    """An incident fixed by one run of the rule and resolved, then reopened (flapping) at minute
    20 by ``firing``, as the correlator records a recurrence: (incident, the first run)."""
    incident = open_incident(ctx, signals=[signal(SIG)])
    [first] = [r for r in run_cycle(ctx, T0, firing=[signal(SIG)]) if r.mode is RunMode.APPLY]
    run_cycle(ctx, later(10), quiet=[SIG])
    run_cycle(ctx, later(15), quiet=[SIG])
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.RESOLVED
    ctx.store.transition_incident(incident.id, IncidentStatus.OPEN, actor="agent", reason="recurred",
                                  now=later(20), flapping=True)
    ctx.store.record_hits(cycle(later(20), firing=[firing]).hits, incident_id=incident.id, now=later(20))
    return incident, first


def test_a_reopened_incident_is_planned_again(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    # the same incident reopens (flapping): its earlier run does not stop a new one
    incident, first = fixed_then_reopened_by(ctx, signal(SIG))
    again = [r for r in run_cycle(ctx, later(21), firing=[signal(SIG)]) if r.mode is RunMode.APPLY]
    assert [r.id for r in again] != [] and again[0].id != first.id
    assert lines(work / "runs.log") == [f"{first.id} localhost", f"{again[0].id} localhost"]
    # and while it stays open, it is not planned a third time
    assert [r for r in run_cycle(ctx, later(22), firing=[signal(SIG)]) if r.mode is RunMode.APPLY] == []


def test_a_reopen_by_another_signal_is_not_remediated_for_what_fired_in_the_earlier_outage(make_ctx, work):
    # The rule fixes the seasonal latency signal. The incident's first outage was that; it
    # resolved, then reopened because an error-rate threshold fired: the latency fix must not
    # run again for it (in the demo this rolled a model back a second time for a latency fault).
    ctx = make_ctx(rule_yaml(work))
    errors = signal('errors{host="h1"}', detector="threshold")
    incident, first = fixed_then_reopened_by(ctx, errors)
    reopened = ctx.store.get_incident(incident.id)
    assert [s.series_id for s in reopened.current_signals] == ['errors{host="h1"}']
    assert run_cycle(ctx, later(21), firing=[errors], quiet=[SIG]) == []
    assert lines(work / "runs.log") == [f"{first.id} localhost"]


class LostLead:
    """An agent that still believes it leads (its local trust has not run out) while the store's
    leader lease went to another agent after ``leads_for`` fences."""

    def __init__(self, store, leads_for: int = 0) -> None:
        self.store, self.left = store, leads_for

    def working(self) -> bool:
        return True

    def leading(self) -> bool:
        return True

    def fence(self) -> tuple[str, str]:
        if self.left == 0:  # this agent stalled past its lease; another took the lead
            self.store.leases.release(LEADER, "this-agent", now=T0)
            assert self.store.leases.take(LEADER, "other-agent", ttl_s=3600, now=T0)
        self.left -= 1
        return (LEADER, "this-agent")

    def held(self) -> dict[str, str]:
        return {}


def test_a_check_pass_not_started_because_the_lead_was_lost_is_canceled_and_the_real_run_stays_due(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    ctx.store.leases.take(LEADER, "this-agent", ttl_s=60, now=T0)
    ctx.leases = LostLead(ctx.store)
    open_incident(ctx, signals=[signal(SIG)])

    run_cycle(ctx, T0, firing=[signal(SIG)])

    (check,) = ctx.store.list_runs(mode=RunMode.CHECK)
    assert (check.status, check.reason) == (RunStatus.CANCELED, "not started: this agent lost the leader lease first")
    (apply,) = ctx.store.list_runs(mode=RunMode.APPLY)
    assert apply.status is RunStatus.PENDING  # due for whoever leads now
    assert not (work / "runs.log").exists() and not (work / "out.txt").exists()


def test_a_rollback_not_started_because_the_lead_was_lost_still_escalates(make_ctx, work):
    ctx = make_ctx(rule_yaml(work, playbook="touch_direct.yml").replace(
        "mode: auto", "mode: auto\n        rollback_playbook: rollback.yml").replace(
        "api_token: hunter2-secret", f"api_token: hunter2-secret, fail_flag: {work / 'fail'}"))
    (work / "fail").write_text("")
    ctx.store.leases.take(LEADER, "this-agent", ttl_s=60, now=T0)
    ctx.leases = LostLead(ctx.store, leads_for=1)  # the real run starts; the lead is gone by its rollback
    incident = open_incident(ctx, signals=[signal(SIG)])

    run_cycle(ctx, T0, firing=[signal(SIG)])

    (apply,) = ctx.store.list_runs(mode=RunMode.APPLY)
    (rollback,) = ctx.store.list_runs(mode=RunMode.ROLLBACK)
    assert apply.status is RunStatus.FAILED
    assert (rollback.status, rollback.parent_id) == (RunStatus.CANCELED, apply.id)
    assert not (work / "rolled").exists()
    escalated = [e for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"]
    assert [e.message for e in escalated] == [
        f"run {apply.id} (touch_direct.yml) failed with rc 2; rollback run {rollback.id} canceled"]
