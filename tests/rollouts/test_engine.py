"""Guarded rollouts step by step: the repository's playbooks run for real on a models dir,
the analysis asks a real Prometheus, and time is the injected clock's (a step per cycle)."""

from __future__ import annotations

import shutil
import textwrap
import threading
from datetime import timedelta

import pytest

from agent.errors import TransitionError
from agent.flow.incidents import IncidentStatus
from agent.flow.rollouts import RolloutStatus, Verdict
from agent.rollouts import engine, roll
from agent.rollouts.engine import RolloutError
from tests.conftest import REPO, wait_until
from tests.rollouts.conftest import BAD_LATENCY, GOOD, NO_DATA, T0, model_yaml, served


def cycles(ctx, rollout_id, *, every_s=30, limit=10):
    """Advance by the clock, one cycle every ``every_s``, until the rollout ends or waits."""
    seen = []
    now = T0
    for _ in range(limit):
        engine.advance(ctx, now)
        rollout = ctx.store.get_rollout(rollout_id)
        seen.append(rollout.status)
        if rollout.status.done or rollout.status in (RolloutStatus.PAUSED, RolloutStatus.WAITING_APPROVAL):
            return rollout, seen, now
        now += timedelta(seconds=every_s)
    raise AssertionError(f"rollout {rollout_id} still {seen[-1]} after {limit} cycles")


def test_a_canary_that_passes_is_promoted(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url))
    ctx.store.deploy_version("fraud", "v2", actor="test", now=T0 - timedelta(days=1), outcome="seeded",
                             baseline_id=None)
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    assert rollout.status is RolloutStatus.PENDING and rollout.previous_version == "v2"
    assert rollout.canary == ("localhost",) and rollout.rest == ()

    _done, seen, at = cycles(ctx, rollout.id)

    assert seen == [RolloutStatus.ANALYSING] * 3 + [RolloutStatus.PROMOTED]
    assert at == T0 + timedelta(seconds=90)
    assert served(models_dir) == "v4" and (models_dir / "stable").resolve().name == "v4"
    measurements = ctx.store.measurements(rollout.id)
    assert [(m.metric, m.verdict) for m in measurements] == [
        ("latency_p95", Verdict.SUCCESSFUL), ("error_rate", Verdict.SUCCESSFUL)] * 3
    v4 = ctx.store.model_version("fraud", "v4")
    # its analysis passed: the agent promoted it (cli:alice started it)
    assert (v4.status, v4.created_by, v4.deployed_by, v4.outcome) == ("serving", "cli:alice", "agent", "promoted")
    assert ctx.store.get_rollout(rollout.id).promoted_by == "agent"
    assert ctx.store.model_version("fraud", "v2").status == "retired"
    actions = [e.action for e in ctx.store.audit_entries() if e.subject == f"rollout:{rollout.id}"]
    assert actions == ["rollout.start", "rollout.analysing", "rollout.promoting", "rollout.promoted"]
    promoted, started = ctx.store.list_changes()
    assert (started.kind, started.labels) == ("model_rollout", {"model": "fraud", "version": "v4"})
    assert (promoted.kind, promoted.description) == ("model_promote", f"promote fraud v4 to localhost (rollout {rollout.id})")
    (stretch,) = [s for s in ctx.store.serving_history("fraud") if s.version == "v4"]
    assert (stretch.since, stretch.until, stretch.actor, stretch.source) == (
        T0 + timedelta(seconds=90), None, "agent", f"rollout {rollout.id} (its analysis passed)")


def test_a_canary_that_fails_is_rolled_back_within_interval_times_failure_limit(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)

    done, seen, at = cycles(ctx, rollout.id)

    assert seen == [RolloutStatus.ANALYSING, RolloutStatus.ANALYSING, RolloutStatus.ROLLED_BACK]
    sample = ctx.metrics.registry.get_sample_value
    assert sample("aiops_rollouts_ended_total", {"model": "fraud", "outcome": "rolled_back"}) == 1.0
    assert sample("aiops_rollout_measurements_total", {"model": "fraud", "verdict": "failed"}) == 2.0
    # the canary served from T0; failed at T0+30s and T0+60s; rolled back in the step at T0+60s
    assert at - T0 == timedelta(seconds=ctx.config.model("fraud").analysis.worst_case_rollback_s)
    assert served(models_dir) == "v2"
    assert (models_dir / "history").read_text() == "v1\nv2\n"
    incident = ctx.store.get_incident(done.incident_id)
    assert incident.status is IncidentStatus.RESOLVED and incident.resolution == "rollback"
    assert incident.title == ("model fraud v4 failed its canary analysis: latency_p95 failed 2 times (limit 2)")
    assert incident.started_at == T0 + timedelta(seconds=30)
    attached = next(e for e in ctx.store.incident_events(incident.id) if e.kind == "rollout")
    assert [row["verdict"] for row in attached.details["analysis"]] == ["failed", "successful"] * 2
    assert ctx.store.model_version("fraud", "v4").status == "rolled_back"


def test_failure_waits_for_a_person_when_the_rule_says_approve(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url, on_failure="approve"))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    waiting, _, at = cycles(ctx, rollout.id)
    assert waiting.status is RolloutStatus.WAITING_APPROVAL and served(models_dir) == "v4"
    assert ctx.store.get_incident(waiting.incident_id).status is IncidentStatus.OPEN

    engine.abort(ctx, rollout.id, actor="cli:bob", reason="approved rollback", now=at)
    engine.advance(ctx, at + timedelta(seconds=5))

    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.ABORTED
    assert served(models_dir) == "v2"
    assert ctx.store.model_version("fraud", "v4").outcome == "aborted by cli:bob"


def test_no_data_pauses_for_a_person_who_may_promote(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, NO_DATA, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    paused, _, at = cycles(ctx, rollout.id)
    assert paused.status is RolloutStatus.PAUSED
    entry = next(e for e in ctx.store.audit_entries() if e.action == "rollout.paused")
    assert entry.details["reason"] == ("inconclusive: latency_p95 no data; a person decides: "
                                       f"aiops rollout promote {rollout.id} or aiops rollout abort {rollout.id}")
    engine.advance(ctx, at + timedelta(seconds=300))  # nothing moves a paused rollout but a person
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.PAUSED

    engine.promote(ctx, rollout.id, actor="cli:bob", reason="checked by hand", now=at)
    engine.advance(ctx, at + timedelta(seconds=1))
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.PROMOTED
    assert served(models_dir) == "v4"


def test_a_missing_version_fails_the_rollout_playbook_and_opens_an_incident(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v9", actor="cli:alice", now=T0)
    engine.advance(ctx, T0)
    failed = ctx.store.get_rollout(rollout.id)
    assert failed.status is RolloutStatus.FAILED
    assert ctx.store.get_incident(failed.incident_id).title == "model fraud v9: the rollout playbook failed on the canary"
    assert served(models_dir) == "v2"


def test_refusals_name_what_was_expected(make_ctx, models_dir, prometheus):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url))
    with pytest.raises(RolloutError) as bad_version:
        engine.start(ctx, "fraud", "v4; rm -rf /", actor="cli:alice", now=T0)
    assert str(bad_version.value) == ("model fraud: expected a version of letters, digits, '_', '.', '+', '-', "
                                      "found 'v4; rm -rf /'")
    with pytest.raises(RolloutError) as unknown:
        engine.start(ctx, "spam", "v4", actor="cli:alice", now=T0)
    assert str(unknown.value) == "model spam: expected a model configured under models (known: fraud), found none"
    with pytest.raises(RolloutError) as canary:
        engine.start(ctx, "fraud", "v4", canary=["db1"], actor="cli:alice", now=T0)
    assert str(canary.value) == "model fraud: expected canary targets among the model's hosts ['localhost'], found 'db1'"
    first = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    with pytest.raises(RolloutError) as busy:
        engine.start(ctx, "fraud", "v1", actor="cli:alice", now=T0)
    assert str(busy.value) == f"model fraud: rollout {first.id} of v4 is still pending; abort or finish it first"
    with pytest.raises(TransitionError):
        engine.promote(ctx, first.id, actor="cli:bob", reason="", now=T0)  # nothing is out yet
    assert engine.abort(ctx, first.id, actor="cli:bob", reason="typo", now=T0).status is RolloutStatus.ABORTED


def test_a_rollout_survives_a_restart(make_ctx, models_dir, prometheus, tmp_path):
    """State is in the store: a new Context (a restarted daemon) carries the analysis on."""
    yaml = model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url)
    ctx = make_ctx(yaml)
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    engine.advance(ctx, T0)
    engine.advance(ctx, T0 + timedelta(seconds=30))
    ctx.store.close()
    again = make_ctx(yaml)
    engine.advance(again, T0 + timedelta(seconds=45))  # before next_at: no measurement
    assert len(again.store.measurements(rollout.id)) == 2
    engine.advance(again, T0 + timedelta(seconds=60))
    assert again.store.get_rollout(rollout.id).status is RolloutStatus.ROLLED_BACK


def test_an_abort_while_the_canary_playbook_runs_rolls_the_canary_back(make_ctx, models_dir, prometheus, tmp_path):
    """A person aborts a pending rollout while the daemon's cycle is running its playbook: the
    version that reached the canary meanwhile is rolled back, not left serving."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    started, release = tmp_path / "started", tmp_path / "release"
    slow = (playbooks / "rollout_model.yml").read_text() + textwrap.indent(textwrap.dedent(f"""\
        - name: Say it started, then wait to be released
          ansible.builtin.shell: "touch {started} && while [ ! -e {release} ]; do sleep 0.1; done"
        """), "    ")
    (playbooks / "rollout_model.yml").write_text(slow)
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url), playbook_dir=playbooks)
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    cycle = threading.Thread(target=lambda: (engine.advance(ctx, T0), ctx.store.close()))
    cycle.start()
    try:
        wait_until(started.exists, 60, message="the canary playbook running")
        assert engine.abort(ctx, rollout.id, actor="cli:bob", reason="wrong", now=T0).status is RolloutStatus.ABORTED
    finally:
        release.touch()
        cycle.join(60)
    assert served(models_dir) == "v2"
    entry = [e for e in ctx.store.audit_entries() if e.action == "rollout.rolled_back_after_abort"][0]
    assert entry.details["succeeded"] is True


def test_the_cycle_hands_each_step_to_a_worker(make_ctx, models_dir, prometheus):
    """The stage does not wait for a rollout's playbook: the step runs on a remediation worker and
    the next cycle finds its result in the store."""
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)

    assert roll(ctx, T0) == []
    assert ctx.workers.join(60)
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.ANALYSING and served(models_dir) == "v4"
    roll(ctx, T0 + timedelta(seconds=10))  # not due: nothing handed over
    assert ctx.workers.under_way() == [] and ctx.store.measurements(rollout.id) == []


def test_measurements_keep_to_the_interval_grid(make_ctx, models_dir):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    config = ctx.config.model("fraud")
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    ctx.store.set_rollout(rollout.id, now=T0, next_at=T0 + timedelta(seconds=30))
    on_grid = ctx.store.get_rollout(rollout.id)
    # measured 2 s late (the cycle came late): the next slot stays at T0+60s, not T0+62s
    assert engine.next_measurement(on_grid, config, T0 + timedelta(seconds=32)) == T0 + timedelta(seconds=60)
    # the daemon was down past several slots: the next one is an interval from now, no catch-up
    assert engine.next_measurement(on_grid, config, T0 + timedelta(seconds=200)) == T0 + timedelta(seconds=230)


def test_a_cycle_a_little_early_for_its_slot_still_measures(make_ctx, models_dir, prometheus):
    """The grid starts at one cycle's time and later cycles jitter around theirs: one that comes a
    fraction of a second before the slot measures now, not a whole cycle later."""
    ctx = make_ctx(model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    engine.advance(ctx, T0 + timedelta(seconds=0.3))  # the deploying cycle came 0.3 s late
    engine.advance(ctx, T0 + timedelta(seconds=30.1))
    engine.advance(ctx, T0 + timedelta(seconds=60.0))  # 0.3 s before its slot
    assert [m.at for m in ctx.store.measurements(rollout.id)][::2] == [
        T0 + timedelta(seconds=30.1), T0 + timedelta(seconds=60.0)]
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.ROLLED_BACK
    engine.advance(ctx, T0 + timedelta(seconds=70))
    assert len(ctx.store.measurements(rollout.id)) == 4


def test_a_version_passes_only_on_rounds_that_cover_the_duration(make_ctx, models_dir, prometheus):
    """A canary playbook slower than the whole analysis (a busy host) or a daemon that was down
    must not promote a version on one measurement: duration counts rounds, not the clock."""
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url=prometheus.url))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    engine.advance(ctx, T0)
    engine.advance(ctx, T0 + timedelta(seconds=100))  # past the 90 s duration: one round so far
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.ANALYSING
    engine.advance(ctx, T0 + timedelta(seconds=130))
    engine.advance(ctx, T0 + timedelta(seconds=160))
    done = ctx.store.get_rollout(rollout.id)
    assert done.status is RolloutStatus.PROMOTED and len({m.at for m in ctx.store.measurements(rollout.id)}) == 3
    assert T0 < done.analysis_started_at < T0 + timedelta(seconds=60)  # once its playbook was done
