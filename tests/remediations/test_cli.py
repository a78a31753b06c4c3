"""The remediation CLI over a real store, the config section's validation, artifact rotation,
and redaction of recorded variables."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.errors import ConfigError
from remediations.rules import redact
from remediations.runner import rotate, write_vars
from tests.remediations.conftest import T0, audit, open_incident, run_cycle


@pytest.fixture
def waiting(make_ctx, work):
    ctx = make_ctx(f"""
    approval_expiry: 2h
    rules:
      - name: fix
        match: {{labels: {{service: api}}}}
        playbook: touch_direct.yml
        mode: approve
        vars: {{dest: {work / 'out.txt'}, api_token: hunter22}}
    """)
    open_incident(ctx)
    (run,) = run_cycle(ctx, T0)
    return ctx, run


def invoke(tmp_path, *args: str):
    return CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "agent.yaml")], obj=Settings(clock=ManualClock(T0)))


def test_list_and_show(waiting, tmp_path):
    ctx, run = waiting
    listed = invoke(tmp_path, "remediation", "list")
    assert listed.exit_code == 0
    assert listed.output == (f"{run.id:>5}  2026-11-25 12:00:00  incident 1     fix                  apply    "
                             f"waiting_approval rc=     touch_direct.yml on localhost\n")
    shown = json.loads(invoke(tmp_path, "remediation", "show", str(run.id), "--json").output)
    assert (shown["status"], shown["expires_at"], shown["extravars"]["api_token"]) == \
        ("waiting_approval", "2026-11-25T14:00:00+00:00", "***")
    assert invoke(tmp_path, "remediation", "list", "--status", "verified").output == "no remediation runs\n"
    missing = invoke(tmp_path, "remediation", "show", "99")
    assert (missing.exit_code, missing.output) == (1, "Error: no remediation run 99\n")


def test_pause_shows_in_list_and_resume_rule_closes_a_circuit(waiting, tmp_path):
    ctx, _ = waiting
    assert invoke(tmp_path, "remediation", "pause").exit_code == 0
    assert invoke(tmp_path, "remediation", "list").output.startswith("remediation is PAUSED")
    closed = invoke(tmp_path, "remediation", "resume", "--rule", "fix")
    assert closed.output == "circuit breaker of rule fix closed\n"
    assert ctx.store.get_flag("remediation.breaker_reset.fix") is not None
    unknown = invoke(tmp_path, "remediation", "resume", "--rule", "nope")
    assert unknown.exit_code == 2 and "expected a configured rule, found 'nope'" in unknown.output
    assert [e.details["value"] for e in audit(ctx, "flag.set")][0] == "1"


@pytest.mark.parametrize(("yaml", "message"), [
    ("rules: [{name: Bad Name, playbook: x.yml}]",
     "remediation.rules[0].name: expected a rule name of lowercase letters, digits, '_', '.', '-', found 'Bad Name'"),
    ("verify: {period: 10m, deadline: 5m}", "remediation.verify: expected verify.deadline >= verify.period, found 300s < 600s"),
    ("rules: [{name: a, playbook: x.yml, mode: yolo}]",
     "remediation.rules[0].mode: expected 'auto', 'approve' or 'suggest', found 'yolo'"),
    ("rules: [{name: a, playbook: x.yml}, {name: a, playbook: y.yml}]",
     "remediation.rules: expected unique rule names, found 'a' twice"),
    ("label_pattern: '('", "remediation.label_pattern: expected a regular expression, found '(' "
                           "(missing ), unterminated subpattern at position 0)"),
])
def test_config_errors_name_the_key(make_config, yaml, message):
    with pytest.raises(ConfigError) as exc:
        make_config("remediation:\n  " + yaml + "\n")
    assert str(exc.value).split(": ", 1)[1] == message


def test_artifacts_are_rotated_newest_kept(tmp_path):
    for i in range(5):
        (tmp_path / f"run-{i}").mkdir()
        os.utime(tmp_path / f"run-{i}", (time.time() - 100 + i,) * 2)
    removed = rotate(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["run-0", "run-1", "run-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-3", "run-4"]


def test_recorded_variables_hide_secrets_and_the_vars_file_marks_labels_unsafe(tmp_path):
    assert redact({"api_token": "x", "db_password": "y", "service": "api"}) == \
        {"api_token": "***", "db_password": "***", "service": "api"}
    write_vars(tmp_path / "v.yml", {"count": 2}, {"service": "{{ evil }}"})
    assert (tmp_path / "v.yml").read_text() == "count: 2\nservice: !unsafe '{{ evil }}'\n"
    assert oct((tmp_path / "v.yml").stat().st_mode & 0o777) == "0o600"


def test_recovery_leaves_live_owners_alone_and_retries_a_dead_ones_run_when_the_rule_says_so(make_ctx, work):
    from agent.flow.runs import RunMode, RunStatus
    from remediations.engine import owner_id

    ctx = make_ctx(f"""
    # the two retries run at once beside the live run: three under way
    limits: {{cooldown: 0s, max_runs_per_target_per_hour: 10, concurrency: 3}}
    rules:
      - name: fix
        match: {{labels: {{service: api}}}}
        playbook: touch_direct.yml
        mode: auto
        on_interrupted: retry
        vars: {{dest: {work / 'out.txt'}, runs_log: {work / 'runs.log'}}}
    """)
    dead, live = open_incident(ctx), open_incident(ctx)
    rows = []
    for incident, owner in ((dead, "999999999:1"), (live, owner_id())):
        run = ctx.store.create_run(incident_id=incident.id, rule="fix", rule_mode="auto", playbook="touch_direct.yml",
                                   playbook_sha256="", mode=RunMode.APPLY, status=RunStatus.PENDING,
                                   targets=["localhost"], extravars={}, now=T0)
        rows.append(ctx.store.update_run(run.id, RunStatus.RUNNING, owner=owner, started_at=T0, now=T0))

    # a real run still pending behind its check pass, whose agent died during the check
    behind = open_incident(ctx)
    parent = ctx.store.create_run(incident_id=behind.id, rule="fix", rule_mode="auto", playbook="touch_direct.yml",
                                  playbook_sha256="", mode=RunMode.APPLY, status=RunStatus.PENDING,
                                  targets=["localhost"], extravars={}, now=T0)
    check = ctx.store.create_run(incident_id=behind.id, rule="fix", rule_mode="auto", playbook="touch_direct.yml",
                                 playbook_sha256="", mode=RunMode.CHECK, status=RunStatus.PENDING, parent_id=parent.id,
                                 targets=["localhost"], extravars={}, now=T0)
    ctx.store.update_run(check.id, RunStatus.RUNNING, owner="999999999:1", started_at=T0, now=T0)

    runs = run_cycle(ctx, T0)

    assert ctx.store.get_run(check.id).status is RunStatus.INTERRUPTED
    assert ctx.store.get_run(parent.id).reason == f"its check pass (run {check.id}) was interrupted; not re-run"
    assert ctx.store.get_run(parent.id).status is RunStatus.INTERRUPTED
    assert ctx.store.get_run(rows[0].id).status is RunStatus.INTERRUPTED
    assert ctx.store.get_run(rows[1].id).status is RunStatus.RUNNING
    (retry,) = [r for r in runs if r.incident_id == dead.id and r.id != rows[0].id]
    assert retry.status is RunStatus.VERIFYING
    assert retry.reason == f"applied; verifying until {retry.verify_until.isoformat()}"
    assert ctx.store.list_runs(incident_id=dead.id, mode=RunMode.APPLY)[0].id == retry.id
    event = [e for e in ctx.store.incident_events(dead.id) if e.kind == "remediation"][0]
    assert event.message == (f"run {rows[0].id} was interrupted (the agent stopped mid-run); "
                             f"retrying as run {retry.id} (policy: retry)")


def test_concurrency_gate_counts_runs_under_way_in_the_store(make_ctx, work):
    from agent.flow.runs import RunMode, RunStatus
    from remediations import safety

    ctx = make_ctx("limits: {concurrency: 1}\nrules: [{name: fix, playbook: touch_direct.yml}]\n")
    rule = ctx.config.remediation.rule("fix")
    assert safety.limits(ctx.store, rule, ctx.config.remediation, ["localhost"], T0).reason == "within limits"
    run = ctx.store.create_run(incident_id=None, rule="other", rule_mode="auto", playbook="x.yml", playbook_sha256="",
                               mode=RunMode.APPLY, status=RunStatus.PENDING, targets=["db1"], extravars={}, now=T0)
    ctx.store.update_run(run.id, RunStatus.RUNNING, now=T0)
    gate = safety.limits(ctx.store, rule, ctx.config.remediation, ["localhost"], T0)
    assert (gate.decision, gate.reason) == (safety.Decision.CONCURRENCY, "concurrency: 1 runs under way, at most 1 at once")
