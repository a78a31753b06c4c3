"""Trust earned, not configured: a rule starts in approve, its own verified runs move it to auto,
a failed run moves it back; each move audited with its runs and sent to the notification
channels. Real playbooks, a real store, a real webhook receiver, the injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.config import load_config
from agent.context import Context
from agent.flow.incidents import Signal
from agent.flow.runs import RunMode, RunStatus
from agent.notify import notify_once
from remediations.ledger import build_ledger
from tests.remediations.conftest import T0, audit, open_incident, run_cycle


def signal(series_id: str, at=T0) -> Signal:
    return Signal(series_id=series_id, detector="seasonal", metric="latency", labels={}, first_at=at, last_at=at, hits=1)


def earned_yaml(work: Path, pbdir: Path, state: Path, webhook_url: str, *, shadow: bool = False) -> str:
    return f"""
agent: {{state_dir: {state}}}
http: {{token: s3cret-token, port: 0}}
remediation:
  playbook_dir: {pbdir}
  shadow: {str(shadow).lower()}
  verify: {{period: 0s, deadline: 10m}}
  limits: {{cooldown: 0s}}
  rules:
    - name: fix
      match: {{labels: {{service: api}}}}
      playbook: touch_direct.yml
      rollback_playbook: rollback.yml
      trust: earned
      promote_after: {{verified: 2, within: 30d}}
      vars: {{dest: {work / 'out.txt'}, runs_log: {work / 'runs.log'}, rollback_marker: {work / 'rolled'},
             fail_flag: {work / 'fail'}}}
notify:
  channels:
    hook: {{type: webhook, webhook_url: "{webhook_url}"}}
  routes:
    - channels: [hook]
      events: [remediation]
"""


@pytest.fixture
def earned(tmp_path, pbdir, work, webhook):
    contexts = []

    def make(*, shadow: bool = False) -> Context:
        path = tmp_path / "agent.yaml"
        path.write_text(earned_yaml(work, pbdir, tmp_path / "state", webhook.url(), shadow=shadow))
        ctx = Context.create(load_config(path), tmp_path / "state", clock=ManualClock(T0))
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.store.close()


def fixed_by_hand_approval(ctx: Context, n: int, at) -> tuple[int, int]:
    """Incident n of host h<n>: its run waits for approval, is approved, runs and is verified."""
    sig = signal(f'latency{{host="h{n}"}}', at)
    incident = open_incident(ctx, signals=[sig], now=at)
    (run,) = run_cycle(ctx, at, firing=[sig])
    assert run.status is RunStatus.WAITING_APPROVAL and run.rule_mode == "approve"
    ctx.store.approve_run(run.id, actor="cli:alice", now=at)
    run_cycle(ctx, at + timedelta(minutes=1), firing=[sig])
    run_cycle(ctx, at + timedelta(minutes=2), quiet=[sig.series_id])
    assert ctx.store.get_run(run.id).status is RunStatus.VERIFIED
    return incident.id, run.id


def test_a_rule_earns_auto_with_verified_runs_and_loses_it_on_a_failed_one(earned, work, webhook):
    ctx = earned()
    first_incident, first = fixed_by_hand_approval(ctx, 1, T0)
    assert ctx.store.rule_trust("fix") is None  # one verified run of the two it needs
    second_incident, second = fixed_by_hand_approval(ctx, 2, T0 + timedelta(minutes=10))

    promoted = ctx.store.rule_trust("fix")
    assert (promoted.setting, promoted.mode, promoted.runs) == ("earned", "auto", (first, second))
    (entry,) = audit(ctx, "remediation.trust")
    assert (entry.actor, entry.subject, entry.details["mode"], entry.details["runs"]) == (
        "agent", "rule:fix", "auto", [first, second])
    assert entry.details["reason"] == (f"2 verified runs in a row within 30d 00h, none rolled back (runs {first}, "
                                       f"{second}): it runs alone now")
    assert ctx.metrics.registry.get_sample_value("aiops_remediation_trust_moves_total",
                                                 {"rule": "fix", "to": "auto"}) == 1.0

    # Now it runs alone; this run fails, its rollback runs, and the rule waits for approval again.
    (work / "fail").touch()
    sig = signal('latency{host="h3"}', T0 + timedelta(minutes=20))
    third_incident = open_incident(ctx, signals=[sig], now=T0 + timedelta(minutes=20)).id
    runs = run_cycle(ctx, T0 + timedelta(minutes=20), firing=[sig])
    third = next(r for r in runs if r.mode is RunMode.APPLY)
    assert (third.rule_mode, third.status) == ("auto", RunStatus.FAILED)
    assert [r.status for r in runs if r.mode is RunMode.ROLLBACK] == [RunStatus.SUCCEEDED]
    run_cycle(ctx, T0 + timedelta(minutes=21), firing=[sig])

    demoted = ctx.store.rule_trust("fix")
    assert (demoted.mode, demoted.runs) == ("approve", (third.id,))
    assert demoted.reason == (f"run {third.id} was failed, rolled back (demote_on: not_fixed, rolled_back, failed): "
                              "it waits for approval again")
    (work / "fail").unlink()
    sig = signal('latency{host="h4"}', T0 + timedelta(minutes=30))
    fourth = open_incident(ctx, signals=[sig], now=T0 + timedelta(minutes=30))
    (waiting,) = run_cycle(ctx, T0 + timedelta(minutes=30), firing=[sig])
    assert (waiting.incident_id, waiting.status) == (fourth.id, RunStatus.WAITING_APPROVAL)

    # Both moves went out on the channel that takes remediation events, on the deciding incidents.
    notify_once(ctx, now=T0 + timedelta(minutes=31))
    moves = [r.json() for r in webhook.requests if r.json()["event"] == "remediation.trust"]
    assert [(m["incident_id"], m["event_message"].split(":")[0]) for m in moves] == [
        (second_incident, "rule fix moved to auto"), (third_incident, "rule fix moved to approve")]
    assert first_incident not in {m["incident_id"] for m in moves}

    ledger = build_ledger(ctx.store, T0 - timedelta(days=1), T0 + timedelta(hours=1), now=T0 + timedelta(hours=1))
    (row,) = ledger.rules
    assert (row.runs, row.verified, row.failed, row.rolled_back, row.last_failure_run) == (3, 2, 1, 1, third.id)
    assert row.last_failure_why == "real run failed (rc 2)"


def invoke(tmp_path, *args: str):
    return CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "agent.yaml")],
                              obj=Settings(clock=ManualClock(T0 + timedelta(hours=1))))


def test_a_person_pins_a_rule_and_hands_it_back_to_its_record(earned, tmp_path):
    ctx = earned()
    fixed_by_hand_approval(ctx, 1, T0)
    fixed_by_hand_approval(ctx, 2, T0 + timedelta(minutes=10))
    assert ctx.store.rule_trust("fix").mode == "auto"

    pinned = invoke(tmp_path, "remediation", "trust", "fix", "approve", "--reason", "change freeze")
    assert (pinned.exit_code, pinned.output) == (0, "rule fix: approve; it waits for approval now\n")
    sig = signal('latency{host="h3"}', T0 + timedelta(minutes=20))
    open_incident(ctx, signals=[sig], now=T0 + timedelta(minutes=20))
    (run,) = run_cycle(ctx, T0 + timedelta(minutes=20), firing=[sig])
    assert run.status is RunStatus.WAITING_APPROVAL  # the record would say auto: the pin holds
    listed = invoke(tmp_path, "remediation", "trust").output.splitlines()
    assert listed[0].split() == ["rule", "configured", "setting", "mode", "now", "since", "by", "why"]
    assert listed[1].split()[:5] == ["fix", "earned", "approve", "approve", "2026-11-25"]
    assert listed[1].endswith("change freeze")

    back = invoke(tmp_path, "remediation", "trust", "fix", "earned")
    assert back.output == "rule fix: earned; it runs alone now\n"  # judged again at once, on its record
    moves = [(e.actor.startswith("cli:"), e.details["setting"], e.details["mode"]) for e in audit(ctx, "remediation.trust")]
    assert moves == [(False, "earned", "auto"), (True, "approve", "approve"), (True, "earned", "approve"),
                     (True, "earned", "auto")]
    wrong = invoke(tmp_path, "remediation", "trust", "nope", "auto")
    assert (wrong.exit_code, wrong.output) == (
        1, "remediation rule nope: expected a configured rule (known: fix), found none\n")


def test_shadow_runs_count_only_once_a_person_checked_them(earned, tmp_path):
    ctx = earned(shadow=True)
    shadows = []
    for n in (1, 2):
        at = T0 + timedelta(minutes=10 * n)
        sig = signal(f'latency{{host="h{n}"}}', at)
        open_incident(ctx, signals=[sig], now=at)
        (run,) = run_cycle(ctx, at, firing=[sig])
        assert run.status is RunStatus.SHADOW
        shadows.append(run.id)
        run_cycle(ctx, at + timedelta(minutes=1), quiet=[sig.series_id])  # it recovered on its own
    run_cycle(ctx, T0 + timedelta(minutes=40))
    assert ctx.store.rule_trust("fix") is None  # would-have-run and recovered alone is no evidence

    for run_id in shadows:
        checked = invoke(tmp_path, "remediation", "review", str(run_id), "--verdict", "fixed", "--reason",
                         "ran it by hand; latency recovered")
        assert (checked.exit_code, checked.output) == (0, f"shadow run {run_id} checked: fixed\n")
    run_cycle(ctx, T0 + timedelta(minutes=50))

    trust = ctx.store.rule_trust("fix")
    assert (trust.mode, trust.runs) == ("auto", tuple(shadows))
    (row,) = build_ledger(ctx.store, T0, T0 + timedelta(hours=1), now=T0).rules
    assert (row.runs, row.shadow, row.shadow_checked) == (0, 2, 2)
    real = ctx.store.list_runs(mode=RunMode.APPLY)
    assert real == []
    refused = invoke(tmp_path, "remediation", "review", "999", "--verdict", "fixed")
    assert (refused.exit_code, refused.output) == (1, "Error: no remediation run 999\n")
    real_run = invoke(tmp_path, "remediation", "review", str(shadows[0]), "--verdict", "maybe")
    assert real_run.exit_code == 2 and "'maybe' is not one of 'fixed', 'not_fixed'" in real_run.output
