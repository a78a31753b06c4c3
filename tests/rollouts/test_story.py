"""One story for a model: incidents of the model's signals during its rollout join the rollout's
incident, no remediation rule runs for them, and a rolled-back rollout's incident resolves once
its signals stay quiet. Real playbooks, a real Prometheus, the injected clock."""

from __future__ import annotations

from datetime import timedelta

from agent.flow.incidents import IncidentStatus, Severity, Signal
from agent.flow.rollouts import RolloutStatus
from agent.rollouts import engine
from agent.rollouts.retrain import drift_to_retrain
from agent.rollouts.story import fold, holding_rollout, settle
from remediations import Remediation
from tests.remediations.conftest import cycle
from tests.rollouts.conftest import BAD_LATENCY, GOOD, T0, model_yaml, served

# Continues the remediation section: a rule that would act on any incident of the model.
RULE = """\
  limits: {cooldown: 0s}
  rules:
    - name: touch-model
      match: {labels: {model: fraud}}
      playbook: rollout_model.yml
      mode: auto
      vars: {model_version: v1}
"""


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def latency(when, series: str = 'latency_p95{model="fraud"}', detector: str = "seasonal") -> Signal:
    return Signal(series_id=series, detector=detector, metric=series.split("{")[0],
                  labels={"model": "fraud", "job": "demo-model"}, first_at=when, last_at=when, hits=1)


def opened(ctx, signal: Signal, now):
    return ctx.store.open_incident(severity=Severity.WARNING, title="latency_p95 up", labels=dict(signal.labels),
                                   started_at=signal.first_at, now=now, signals=[signal])


def remediate(ctx, now, signal: Signal) -> list:
    runs = Remediation(ctx).remediate(cycle(now, firing=[signal]))
    assert ctx.workers.join(60)
    return runs


def test_a_latency_incident_during_the_canary_is_the_rollouts_and_no_rule_runs(make_ctx, models_dir, prometheus):
    ctx = make_ctx(RULE + model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url, serving=True))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    engine.advance(ctx, T0)  # v4 on the canary, analysing
    signal = latency(at(10))
    incident = opened(ctx, signal, at(12))

    assert remediate(ctx, at(12), signal) == []
    (held,) = [e for e in ctx.store.audit_entries() if e.action == "remediation.held"]
    assert held.details["reason"] == (f"rollout {rollout.id} of fraud v4 is analysing: its rollback is the "
                                      "remediation, no rule runs for incidents of its model's signals")
    assert fold(ctx, at(12)) == [incident.id]
    assert ctx.store.get_rollout(rollout.id).incident_id == incident.id

    engine.advance(ctx, at(30))
    engine.advance(ctx, at(60))  # the second failed measurement: rolled back
    done = ctx.store.get_rollout(rollout.id)
    assert (done.status, done.incident_id) == (RolloutStatus.ROLLED_BACK, incident.id) and served(models_dir) == "v2"
    story = ctx.store.get_incident(incident.id)
    assert (story.status, story.severity) == (IncidentStatus.REMEDIATING, Severity.CRITICAL)
    assert [e.message for e in ctx.store.incident_events(incident.id) if e.kind == "rollout"] == [
        f"part of rollout {rollout.id} of fraud v4 (analysing): the rollout's rollback is the remediation; no rule "
        "runs for it",
        f"rollout {rollout.id}: model fraud v4 failed its canary analysis: latency_p95 failed 2 times (limit 2)"]
    assert remediate(ctx, at(62), signal) == []  # still the rollout's: its rollback was the remediation

    assert settle(ctx, at(64)) == []  # the signals have not been quiet yet
    ctx.store.update_incident(incident.id, now=at(70), quiet_cycles=ctx.config.incidents.quiet_cycles)
    assert settle(ctx, at(70)) == [incident.id]
    resolved = ctx.store.get_incident(incident.id)
    assert (resolved.status, resolved.resolution, resolved.remediation_verified_at) == (
        IncidentStatus.RESOLVED, "rollback", at(70))
    assert ctx.store.list_runs() == [] and len(ctx.store.list_incidents()) == 1  # one story, no rule ran


def test_an_incident_that_began_on_the_canary_joins_the_rollout_after_it_ended(make_ctx, models_dir, prometheus):
    ctx = make_ctx(RULE + model_yaml(models_dir, BAD_LATENCY, prometheus_url=prometheus.url, serving=True))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    for seconds in (0, 30, 60):
        engine.advance(ctx, at(seconds))
    done = ctx.store.get_rollout(rollout.id)
    failed = ctx.store.get_incident(done.incident_id)
    assert (done.status, failed.status, failed.resolution) == (
        RolloutStatus.ROLLED_BACK, IncidentStatus.RESOLVED, "rollback")  # no signal: resolved by the rollback

    tail = latency(at(50))  # a rate window that lags: it opens after the rollback, began on the canary
    late = opened(ctx, tail, at(70))
    assert holding_rollout(ctx.store, ctx.store.get_incident(late.id)).id == rollout.id
    assert remediate(ctx, at(70), tail) == []
    assert fold(ctx, at(70)) == [late.id]
    merged = ctx.store.get_incident(late.id)
    assert (merged.status, merged.resolution, merged.signals) == (IncidentStatus.RESOLVED, "merged", ())
    story = ctx.store.get_incident(done.incident_id)
    assert [s.series_id for s in story.signals] == [tail.series_id] and story.started_at == at(30)
    joined = [e for e in ctx.store.incident_events(story.id) if e.kind == "joined"]
    assert joined[0].message.startswith(f"incident #{late.id} joined (1 signals): its signals are fraud's during "
                                        f"rollout {rollout.id} of fraud v4 (rolled_back)")
    assert ctx.store.list_runs() == []
    assert drift_to_retrain(ctx, at(80)) == []  # a rollout's incident asks for no retrain


def test_after_a_promotion_the_models_rules_apply_again(make_ctx, models_dir, prometheus):
    ctx = make_ctx(RULE + model_yaml(models_dir, GOOD, prometheus_url=prometheus.url, serving=True))
    rollout = engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0)
    for seconds in (0, 30, 60, 90):
        engine.advance(ctx, at(seconds))
    assert ctx.store.get_rollout(rollout.id).status is RolloutStatus.PROMOTED
    signal = latency(at(120))
    incident = opened(ctx, signal, at(120))
    assert holding_rollout(ctx.store, incident) is None
    (run,) = remediate(ctx, at(120), signal)
    assert (run.rule, run.incident_id) == ("touch-model", incident.id)
