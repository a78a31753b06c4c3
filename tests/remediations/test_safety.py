"""Every gate with real ansible-runner runs: rate limits, cooldown, circuit breaker, approval,
pause switch, shadow mode, canary batches, hard timeout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.errors import TransitionError
from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunMode, RunStatus
from remediations import safety
from tests.remediations.conftest import (
    T0,
    audit,
    later,
    lines,
    local_inventory,
    open_incident,
    run_cycle,
    run_pids,
    signal,
)


def rules_yaml(work: Path, *, mode: str = "auto", playbook: str = "touch_direct.yml", limits: str = "cooldown: 0s",
               targets: str = "{label: host}", extra_vars: str = "", extra: str = "") -> str:
    return f"""
    verify: {{period: 0s, deadline: 10m}}
    approval_expiry: 30m
    limits: {{{limits}}}
    rules:
      - name: fix
        match: {{labels: {{service: api}}}}
        playbook: {playbook}
        mode: {mode}
        targets: {targets}
        vars: {{dest: {work / 'out.txt'}, content: fixed, runs_log: {work / 'runs.log'}{extra_vars}}}
    {extra}"""


HOSTS = local_inventory("h1", "h2", "h3", "h4")


def incident_on(ctx, host: str):
    return open_incident(ctx, {"service": "api", "host": host},
                         signals=[signal(f'latency{{host="{host}"}}', host=host)])


def test_rate_limits_per_target_and_global(make_ctx, work):
    # a worker for each of the four runs: all are decided in the first cycle, oldest first
    ctx = make_ctx("\n    workers: 4" + rules_yaml(
        work, limits="cooldown: 0s, max_runs_per_target_per_hour: 1, max_runs_per_hour: 2"), inventory=HOSTS)
    a, b, c, d = (incident_on(ctx, h) for h in ("h1", "h1", "h2", "h3"))

    run_cycle(ctx, T0)

    runs = {r.incident_id: r for r in ctx.store.list_runs(mode=RunMode.APPLY)}
    assert runs[a.id].status is RunStatus.VERIFYING and runs[c.id].status is RunStatus.VERIFYING
    assert runs[b.id].status is RunStatus.PENDING and runs[d.id].status is RunStatus.PENDING
    assert sorted(lines(work / "runs.log")) == sorted([f"{runs[a.id].id} h1", f"{runs[c.id].id} h2"])
    reasons = {e.subject: e.details["reason"] for e in audit(ctx, "remediation.rate_limited")}
    assert reasons[f"run:{runs[b.id].id}"] == "rate limit: 1 runs of rule fix on h1 in the last hour, at most 1 allowed"
    assert reasons[f"run:{runs[d.id].id}"] == "rate limit: 2 runs in the last hour, at most 2 allowed"
    # a deferral is audited when its reason changes, not every cycle
    run_cycle(ctx, later(1))
    run_cycle(ctx, later(2))
    assert [(e.subject, e.details["reason"]) for e in audit(ctx, "remediation.rate_limited")][2:] == [
        (f"run:{runs[b.id].id}", "rate limit: 2 runs in the last hour, at most 2 allowed")]


def test_cooldown_defers_the_next_run_on_the_same_target(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, limits="cooldown: 10m"), inventory=HOSTS)
    a = incident_on(ctx, "h1")
    run_cycle(ctx, T0)
    b = incident_on(ctx, "h1")

    run_cycle(ctx, later(2))

    (second,) = ctx.store.list_runs(incident_id=b.id)
    assert second.status is RunStatus.PENDING
    (entry,) = audit(ctx, "remediation.cooldown")
    first_end = ctx.store.list_runs(incident_id=a.id)[0].ended_at
    assert entry.details["reason"] == (f"cooldown: rule fix last ran on h1 at {first_end.isoformat()}, "
                                       f"next run allowed after {(first_end + (later(10) - T0)).isoformat()}")
    run_cycle(ctx, later(11))
    assert ctx.store.get_run(second.id).status is RunStatus.VERIFYING
    assert len(lines(work / "runs.log")) == 2


def test_circuit_breaker_opens_after_failures_pages_and_closes_after_a_good_trial(make_ctx, work):
    flag = work / "fail"
    flag.write_text("")
    ctx = make_ctx(rules_yaml(work, limits="cooldown: 0s, breaker_failures: 2, breaker_reset: 30m",
                              extra_vars=f", fail_flag: {flag}"), inventory=HOSTS)
    incident_on(ctx, "h1"), incident_on(ctx, "h2")
    run_cycle(ctx, T0)
    # the two runs execute at once: the breaker names them by their ends, the last one first
    failed = sorted(ctx.store.list_runs(mode=RunMode.APPLY), key=lambda r: r.ended_at, reverse=True)
    assert [r.status for r in failed] == [RunStatus.FAILED, RunStatus.FAILED]

    third = incident_on(ctx, "h3")
    run_cycle(ctx, later(5))

    (skipped,) = ctx.store.list_runs(incident_id=third.id)
    ids = ", ".join(str(r.id) for r in failed)
    reopen = (failed[0].ended_at + (later(30) - T0)).isoformat()
    assert skipped.status is RunStatus.SKIPPED
    assert skipped.reason == (f"circuit open: the last 2 runs of rule fix failed (runs {ids}); "
                              f"automation stops until {reopen}")
    page = [e for e in ctx.store.incident_events(third.id) if e.kind == "escalated"][-1]
    assert page.message == f"{skipped.reason}; paging instead of running touch_direct.yml"

    # after the reset period one trial run goes through; it succeeds and closes the circuit
    flag.unlink()
    fourth = incident_on(ctx, "h4")
    run_cycle(ctx, later(40))
    (trial,) = ctx.store.list_runs(incident_id=fourth.id)
    assert trial.status is RunStatus.VERIFYING
    rule = ctx.config.remediation.rule("fix")
    assert safety.circuit(ctx.store, rule, ctx.config.remediation, later(41)).reason == \
        "circuit half-open: a trial run of rule fix is still under way"
    run_cycle(ctx, later(41), quiet=['latency{host="h4"}'])
    assert ctx.store.get_run(trial.id).status is RunStatus.VERIFIED
    assert safety.circuit(ctx.store, rule, ctx.config.remediation, later(42)).reason == "circuit closed"


def test_approval_granted_runs_and_an_expired_one_cannot_be_approved(make_ctx, work, tmp_path):
    ctx = make_ctx(rules_yaml(work, mode="approve"), inventory=HOSTS)
    a = incident_on(ctx, "h1")
    (waiting,) = run_cycle(ctx, T0)
    assert (waiting.status, waiting.expires_at) == (RunStatus.WAITING_APPROVAL, later(30))
    event = [e for e in ctx.store.incident_events(a.id) if e.kind == "remediation"][-1]
    assert event.message == (f"run {waiting.id} (touch_direct.yml on h1) waits for approval: "
                             f"aiops remediation approve {waiting.id}")
    assert not (work / "runs.log").exists()

    result = CliRunner().invoke(cli, ["remediation", "approve", str(waiting.id), "--config", str(tmp_path / "agent.yaml")],
                                obj=Settings(clock=ctx.clock))
    assert result.exit_code == 0, result.output
    assert result.output == f"run {waiting.id} approved by cli:{_user()}: touch_direct.yml on h1 runs in the next cycle\n"
    run_cycle(ctx, later(1))
    assert ctx.store.get_run(waiting.id).status is RunStatus.VERIFYING
    assert lines(work / "runs.log") == [f"{waiting.id} h1"]

    b = incident_on(ctx, "h2")
    (other,) = run_cycle(ctx, later(2), quiet=['latency{host="h1"}'])[-1:]
    assert other.incident_id == b.id and other.status is RunStatus.WAITING_APPROVAL
    run_cycle(ctx, later(40))
    expired = ctx.store.get_run(other.id)
    assert expired.status is RunStatus.EXPIRED
    assert expired.reason == f"nobody approved it before {later(32).isoformat()}"
    with pytest.raises(TransitionError) as exc:
        ctx.store.approve_run(other.id, actor="cli:ops", now=later(41))
    assert str(exc.value) == f"remediation run {other.id} is expired, cannot move to approved"
    ctx.clock.set(later(41))
    result = CliRunner().invoke(cli, ["remediation", "approve", str(other.id), "--config", str(tmp_path / "agent.yaml")],
                                obj=Settings(clock=ctx.clock))
    assert result.exit_code == 1
    assert f"remediation run {other.id} is expired, cannot move to approved" in result.output


def test_pause_switch_is_honoured_without_restart_and_resume_lets_runs_go(make_ctx, work, tmp_path):
    ctx = make_ctx(rules_yaml(work), inventory=HOSTS)
    incident_on(ctx, "h1")
    config = ["--config", str(tmp_path / "agent.yaml")]

    # another process (the CLI) flips the flag in the shared store; this context sees it
    assert CliRunner().invoke(cli, ["remediation", "pause", "--reason", "freeze", *config]).exit_code == 0
    run_cycle(ctx, T0)
    (run,) = ctx.store.list_runs()
    assert run.status is RunStatus.PENDING
    (entry,) = audit(ctx, "remediation.paused")
    assert entry.details["reason"] == "remediation is paused (aiops remediation resume to continue)"
    assert audit(ctx, "flag.set")[0].details == {"value": "1", "reason": "freeze"}

    assert CliRunner().invoke(cli, ["remediation", "resume", *config]).output == "remediation resumed\n"
    run_cycle(ctx, later(1))
    assert ctx.store.get_run(run.id).status is RunStatus.VERIFYING
    assert lines(work / "runs.log") == [f"{run.id} h1"]


def test_shadow_mode_records_what_would_have_run_and_runs_nothing(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, extra="shadow: true"), inventory=HOSTS)
    incident = incident_on(ctx, "h1")

    (run,) = run_cycle(ctx, T0)

    assert (run.mode, run.status) == (RunMode.SHADOW, RunStatus.SHADOW)
    assert run.reason == "shadow mode: would have run touch_direct.yml (auto) on h1"
    assert [e.details["reason"] for e in audit(ctx, "remediation.shadow")] == [run.reason]
    assert run_cycle(ctx, later(1)) == []  # recorded once
    assert not (work / "runs.log").exists() and not (work / "out.txt").exists()
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.OPEN


def test_canary_runs_one_host_verifies_then_the_rest_in_batches(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, targets="{label: host, canary: true, batch_size: 2}"), inventory=HOSTS)
    sigs = [signal(f'latency{{host="{h}"}}', host=h) for h in ("h1", "h2", "h3")]
    incident = open_incident(ctx, {"service": "api"}, signals=sigs)

    (canary,) = run_cycle(ctx, T0)
    assert (canary.targets, canary.batch, canary.status) == (("h1",), 0, RunStatus.VERIFYING)
    assert lines(work / "runs.log") == [f"{canary.id} h1"]

    # h1 recovered (h2, h3 still firing): the canary is verified, the next batch runs on h2 and h3
    run_cycle(ctx, later(1), quiet=[sigs[0].series_id], firing=sigs[1:])
    (batch,) = [r for r in ctx.store.list_runs(incident_id=incident.id) if r.batch == 1]
    assert (batch.targets, batch.status) == (("h2", "h3"), RunStatus.VERIFYING)
    assert sorted(lines(work / "runs.log")) == sorted([f"{canary.id} h1", f"{batch.id} h2", f"{batch.id} h3"])
    assert ctx.store.get_incident(incident.id).status is IncidentStatus.REMEDIATING

    run_cycle(ctx, later(2), quiet=[s.series_id for s in sigs])
    assert ctx.store.get_run(batch.id).status is RunStatus.VERIFIED
    assert ctx.store.get_incident(incident.id).resolution == "remediation"


def test_canary_stops_after_a_failed_first_host(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, targets="{label: host, canary: true, batch_size: 2}", extra_vars=", fail_on: h1"),
                   inventory=HOSTS)
    sigs = [signal(f'latency{{host="{h}"}}', host=h) for h in ("h1", "h2", "h3")]
    incident = open_incident(ctx, {"service": "api"}, signals=sigs)

    (canary,) = run_cycle(ctx, T0)
    run_cycle(ctx, later(1), firing=sigs)

    assert (canary.targets, canary.status) == (("h1",), RunStatus.FAILED)
    assert canary.host_summary["h1"].failed == 1
    assert [r.id for r in ctx.store.list_runs(incident_id=incident.id)] == [canary.id]
    assert not (work / "runs.log").exists()
    escalated = [e for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"][-1]
    assert escalated.message == f"run {canary.id} (touch_direct.yml) failed with rc 2"
    assert escalated.details["hosts"]["h1"]["failed"] == 1


@pytest.mark.slow
def test_a_sleeping_playbook_is_killed_at_its_timeout_with_no_process_left(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, playbook="sleep.yml", targets="{hosts: [localhost]}",
                              extra_vars=", sleep_s: 311").replace("mode: auto", "mode: auto\n        timeout: 8s"))
    incident = open_incident(ctx)

    (run,) = run_cycle(ctx, T0)

    assert run.status is RunStatus.TIMEOUT
    # the 8 s timeout, the 2 s grace before SIGKILL, ansible's start-up: far from the 311 s sleep
    assert run.ended_at - run.started_at < (later(1 / 3) - T0)
    assert lines(work / "runs.log") == [str(run.id)]
    assert run_pids(ctx.store, run) == []
    assert not [p for p in _cmdlines() if p == ["sleep", "311"]]
    escalated = [e for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"][-1]
    assert escalated.message == f"run {run.id} (sleep.yml) timeout with rc 254"


def _cmdlines() -> list[list[str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1])
            except OSError:
                pass
    return out


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def test_suggest_mode_runs_the_check_pass_only_and_tells_the_incident(make_ctx, work):
    ctx = make_ctx(rules_yaml(work, mode="suggest", playbook="touch.yml"), inventory=HOSTS)
    incident = incident_on(ctx, "h1")

    (run,) = run_cycle(ctx, T0)

    assert (run.mode, run.status, run.rc) == (RunMode.CHECK, RunStatus.SUGGESTED, 0)
    assert not (work / "out.txt").exists() and not (work / "runs.log").exists()
    event = [e for e in ctx.store.incident_events(incident.id) if e.kind == "remediation"][-1]
    assert event.message == f"suggested: touch.yml on h1 (check run {run.id} successful, 1 change it would make)"
    assert run_cycle(ctx, later(1)) == []  # suggested once per incident
