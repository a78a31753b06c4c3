"""The registry follows what the models directory serves: read from its ``current`` link every
cycle, each change registered with what explains it, an unexplained one an incident."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.flow.incidents import IncidentStatus
from agent.rollouts import engine, roll
from tests.rollouts.conftest import GOOD, T0, model_yaml


def point(models_dir, version: str) -> None:
    """What a deploy outside the agent does: move ``current``."""
    link = models_dir / "current"
    link.unlink()
    link.symlink_to(f"versions/{version}")


def later(minutes: float):
    return T0 + timedelta(minutes=minutes)


def test_every_version_that_serves_is_registered_with_what_put_it_there(make_ctx, models_dir, tmp_path):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True))
    store = ctx.store
    roll(ctx, T0)
    assert store.serving_version("fraud").version == "v2"

    point(models_dir, "v1")  # the drift rule's rollback playbook ran
    store.add_change(ts=later(1), kind="remediation", labels={"model": "fraud", "job": "api"}, actor="agent",
                     description="rollback_model.yml applied by rule rollback-model (run 7)", now=later(1))
    roll(ctx, later(2))
    point(models_dir, "v4")  # a deploy pipeline, which records its change
    deploy = store.add_change(ts=later(3), kind="deploy", labels={"model": "fraud", "version": "v4"}, actor="ci",
                              description="deploy fraud v4", now=later(3))
    roll(ctx, later(4))
    point(models_dir, "v2")  # someone by hand, telling nobody
    roll(ctx, later(5))
    roll(ctx, later(6))  # nothing moved: nothing new

    assert [(s.version, s.since, s.until, s.actor, s.source) for s in store.serving_history("fraud")] == [
        ("v2", T0, later(2), "agent", "found serving when the agent first looked"),
        ("v1", later(2), later(4), "agent", "remediation: rollback_model.yml applied by rule rollback-model (run 7)"),
        ("v4", later(4), later(5), "ci", f"change #{deploy.id} by ci: deploy fraud v4"),
        ("v2", later(5), None, "unknown", "changed outside the agent: no rollout, remediation or recorded change "
                                          "explains it")]
    assert {v.version: v.status for v in store.model_versions("fraud")} == {
        "v2": "serving", "v1": "retired", "v4": "retired"}
    (incident,) = store.list_incidents()
    assert (incident.status, incident.labels, incident.title) == (
        IncidentStatus.OPEN, {"model": "fraud", "version": "v2"},
        "model fraud: v2 serves where the registry had v4; nothing the agent knows of changed it")
    moves = [(e.details["from"], e.details["version"]) for e in store.audit_entries() if e.action == "model.serving"]
    assert moves == [(None, "v2"), ("v2", "v1"), ("v1", "v4"), ("v4", "v2")]

    shown = json.loads(CliRunner().invoke(cli, ["model", "show", "fraud", "--json", "--config", str(tmp_path / "agent.yaml")],
                                          obj=Settings(clock=ManualClock(later(7)))).output)
    assert [s["version"] for s in shown["served"]] == ["v2", "v1", "v4", "v2"]


def test_a_change_naming_the_version_explains_a_move_before_a_later_remediation_does(make_ctx, models_dir):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True))
    store = ctx.store
    roll(ctx, T0)
    deploy = store.add_change(ts=later(1), kind="deploy", labels={"model": "fraud", "version": "v4"}, actor="ci",
                              description="deploy fraud v4", now=later(1))
    point(models_dir, "v4")
    # the new version's errors had the agent restart it before the next look: a restart moves no link
    store.add_change(ts=later(1.5), kind="remediation", labels={"model": "fraud", "job": "api"}, actor="agent",
                     description="restart_service.yml applied by rule restart-api (run 3)", now=later(1.5))
    roll(ctx, later(2))

    assert [(s.version, s.actor, s.source) for s in store.serving_history("fraud")][-1] == (
        "v4", "ci", f"change #{deploy.id} by ci: deploy fraud v4")
    assert store.list_incidents() == []


def test_a_rollout_under_way_owns_what_serves(make_ctx, models_dir):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    assert rollout.previous_version == "v2"  # read from the link when the rollout started
    point(models_dir, "v4")  # its canary
    roll(ctx, later(1))
    ctx.workers.join(60)
    assert ctx.store.serving_version("fraud").version == "v2"
    assert [s.version for s in ctx.store.serving_history("fraud")] == ["v2"]
    assert ctx.store.list_incidents() == []


def test_a_link_that_names_no_version_is_not_believed(make_ctx, models_dir):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True))
    link = models_dir / "current"
    link.unlink()
    link.symlink_to("versions/$(reboot)")
    roll(ctx, T0)
    assert ctx.store.serving_version("fraud") is None and ctx.store.serving_history("fraud") == []


def test_a_remediation_under_way_explains_the_move_before_it_records_its_change(make_ctx, models_dir):
    """The rollback playbook moves the link while its run is still running: the cycle that sees it
    then must not call it a change outside the agent."""
    from agent.flow.incidents import Severity, Signal
    from agent.flow.runs import RunMode, RunStatus

    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True))
    store = ctx.store
    roll(ctx, T0)
    drift = Signal(series_id='model_drift{model="fraud"}', detector="drift", labels={"model": "fraud"}, first_at=T0,
                   last_at=T0)
    incident = store.open_incident(severity=Severity.WARNING, title="drift", labels={"job": "api"}, started_at=T0,
                                   now=T0, signals=[drift])
    run = store.create_run(incident_id=incident.id, rule="rollback-model", rule_mode="auto",
                           playbook="rollback_model.yml", playbook_sha256="", mode=RunMode.APPLY,
                           status=RunStatus.PENDING, targets=["localhost"], extravars={}, now=later(1))
    store.update_run(run.id, RunStatus.RUNNING, now=later(1), started_at=later(1))
    point(models_dir, "v1")
    roll(ctx, later(2))
    assert [(s.version, s.source) for s in store.serving_history("fraud")][-1] == (
        "v1", f"remediation: run {run.id} of rule rollback-model (rollback_model.yml)")
    assert store.list_incidents() == [store.get_incident(incident.id)]  # no incident of its own
