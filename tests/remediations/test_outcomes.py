"""What a playbook did is recorded as it happened whatever the clocks and the store do: a
verification window is counted on the monotonic clock (a wall-clock step neither cuts it short nor
stretches it), and an incident is never left ``remediating`` with nothing under way."""

from __future__ import annotations

from agent.clock import ManualMonotonic
from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunMode, RunStatus
from tests.remediations.conftest import T0, later, open_incident, run_cycle, signal
from tests.remediations.test_flow import SIG, rule_yaml


def test_a_wall_clock_stepped_forward_does_not_cut_the_verification_window_short(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))  # verify: period 5 min, deadline 15 min
    ctx.monotonic = mono = ManualMonotonic(1000.0)  # the wall clock alone will jump
    incident = open_incident(ctx, signals=[signal(SIG)])
    (apply,) = [r for r in run_cycle(ctx, T0, firing=[signal(SIG)]) if r.mode is RunMode.APPLY]
    assert apply.status is RunStatus.VERIFYING

    mono.advance(60)  # one minute later, NTP steps the wall clock 20 minutes ahead
    run_cycle(ctx, later(21), quiet=[SIG])
    assert ctx.store.get_run(apply.id).status is RunStatus.VERIFYING  # 1 min of 15, quiet for 0 of 5
    mono.advance(240)
    run_cycle(ctx, later(25), quiet=[SIG])
    assert ctx.store.get_run(apply.id).status is RunStatus.VERIFYING  # quiet for 4 min of 5
    mono.advance(60)
    run_cycle(ctx, later(26), quiet=[SIG])
    run = ctx.store.get_run(apply.id)
    assert run.status is RunStatus.VERIFIED
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.RESOLVED


def test_a_wall_clock_stepped_back_does_not_stretch_the_deadline(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    ctx.monotonic = mono = ManualMonotonic(1000.0)
    open_incident(ctx, signals=[signal(SIG)])
    (apply,) = [r for r in run_cycle(ctx, T0, firing=[signal(SIG)]) if r.mode is RunMode.APPLY]
    mono.advance(15 * 60)  # the deadline has passed; the wall clock was stepped back 10 minutes
    run_cycle(ctx, later(5), firing=[signal(SIG)])
    assert ctx.store.get_run(apply.id).status is RunStatus.NOT_FIXED


def test_an_incident_left_remediating_with_nothing_under_way_is_handed_back(make_ctx, work):
    ctx = make_ctx(rule_yaml(work))
    incident = open_incident(ctx, signals=[signal(SIG)])
    (apply,) = [r for r in run_cycle(ctx, T0, firing=[signal(SIG)]) if r.mode is RunMode.APPLY]
    # The outcome was recorded, but the agent stopped before the escalation that follows it.
    ctx.store.update_run(apply.id, RunStatus.FAILED, now=later(1), reason="real run failed (rc 2)")
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.REMEDIATING

    run_cycle(ctx, later(2), firing=[signal(SIG)])
    back = ctx.store.get_incident(incident.id)
    assert back.status is IncidentStatus.OPEN
    assert [e.message for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"] == [
        f"incident #{incident.id} was left remediating, but its last run {apply.id} ended failed without a "
        "verified fix"]
