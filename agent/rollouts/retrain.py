"""Retraining behind a gate.

The model's retrain playbook trains a candidate and writes a metrics file (the path arrives as
``metrics_file``)::

    {"candidate": {"version": "v5", "metrics": {"auc": 0.91}},
     "current":   {"version": "v2", "metrics": {"auc": 0.90}}}

``current`` is the serving version (the agent passes its name as ``serving_version``) scored on
the same holdout; when the file scored another version, or none, the registry's figures of the
serving version are used, and without those the gate fails. The gate names both versions. The gate passes when the candidate's ``gate.metric`` is not
lower than the current one's by more than ``gate.max_drop``; only then does a guarded rollout of
the candidate start. A failed gate escalates: an incident (or the drift incident that asked for
the retrain) carries both sets of metrics. At most ``max_per_period`` retrains run per model.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.config.models import Gate, ModelConfig
from agent.flow.incidents import IncidentStatus, Severity
from agent.flow.rollouts import Retrain, RetrainStatus
from agent.log import kv
from agent.rollouts import engine
from agent.rollouts.engine import ACTOR, RolloutError, model_config
from agent.rollouts.serving import reconcile
from remediations import rules, runner

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)


def gate_result(gate: Gate, candidate: dict[str, float], current: dict[str, float], *,
                candidate_version: str | None = None, current_version: str | None = None) -> dict[str, Any]:
    """The gate's verdict with the figures it used, each named by its version (``passed`` False
    when a figure is missing)."""
    cand, cur = candidate.get(gate.metric), current.get(gate.metric)
    names = {"candidate_version": candidate_version, "current_version": current_version}
    if cand is None:
        return {"metric": gate.metric, **names, "passed": False, "reason": f"the candidate has no {gate.metric}"}
    if cur is None:  # nothing to compare with: the first version of a model passes on its own
        return {"metric": gate.metric, "candidate": cand, "current": None, "max_drop": gate.max_drop, **names,
                "passed": True, "reason": "no current version to compare with"}
    drop = cur - cand
    passed = drop <= gate.max_drop
    them = f" ({candidate_version})" if candidate_version else ""
    us = f" ({current_version}, serving)" if current_version else ""
    return {"metric": gate.metric, "candidate": cand, "current": cur, "drop": round(drop, 6),
            "max_drop": gate.max_drop, **names, "passed": passed,
            "reason": f"{gate.metric} {cand:.4f}{them} vs {cur:.4f}{us}: " + (
                f"gain {-drop:.4f}" if drop < 0 else f"drop {drop:.4f} within {gate.max_drop:g}" if passed
                else f"drop {drop:.4f} over {gate.max_drop:g}")}


def yardstick(found: dict[str, Any], serving: Any) -> tuple[dict[str, float], str | None, str]:
    """The figures the candidate is judged against: the serving version's, named. From the
    metrics file when it scored that version; else the registry's figures of it; else none, and
    why (the gate then fails: a figure of another version says nothing of the one serving)."""
    block = found.get("current") or {}
    scored = str(block.get("version") or "") or None
    figures = {k: float(v) for k, v in (block.get("metrics") or {}).items()}
    if serving is None:
        return figures, scored, ""
    if scored == serving.version and figures:
        return figures, scored, ""
    if serving.metrics:
        return {k: float(v) for k, v in serving.metrics.items()}, serving.version, ""
    return {}, serving.version, (f"the metrics file scored {scored or 'no version'}, not {serving.version} that "
                                 f"serves, and the registry has no figures of {serving.version}")


def retrain(ctx: Context, model: str, *, actor: str, now: datetime, reason: str,
            incident_id: int | None = None) -> Retrain:
    config = model_config(ctx, model)
    if config.retrain is None:
        raise RolloutError(f"model {model}", "expected models[].retrain with a playbook, found none")
    r = config.retrain
    since = now - timedelta(seconds=r.period)
    done = ctx.store.count_retrains_since(model, since)
    if done >= r.max_per_period:
        return ctx.store.record_retrain(model=model, candidate=None, status=RetrainStatus.SKIPPED, actor=actor,
                                        now=now, incident_id=incident_id,
                                        reason=f"{done} retrains in the last {r.period:g}s (limit {r.max_per_period})")
    reconcile(ctx, config, now=now)  # the yardstick is the version serving now
    serving = ctx.store.serving_version(model)
    ok, summary, found = _run_playbook(ctx, config, now, serving.version if serving is not None else None)
    if not ok or found is None:
        retrained = ctx.store.record_retrain(model=model, candidate=None, status=RetrainStatus.FAILED, actor=actor,
                                             now=now, incident_id=incident_id,
                                             reason=f"the retrain playbook {summary['status']}: {summary['report']}")
        _escalate(ctx, config, retrained, now, f"model {model}: retraining failed")
        return retrained
    candidate = found.get("candidate") or {}
    version = str(candidate.get("version", ""))
    if not engine.VERSION.match(version):
        retrained = ctx.store.record_retrain(
            model=model, candidate=None, status=RetrainStatus.FAILED, actor=actor, now=now, incident_id=incident_id,
            reason=f"the metrics file names no usable candidate version (found {version[:80]!r})")
        _escalate(ctx, config, retrained, now, f"model {model}: retraining failed")
        return retrained
    cand_metrics = {k: float(v) for k, v in (candidate.get("metrics") or {}).items()}
    cur_metrics, cur_version, unusable = yardstick(found, serving)
    gate = gate_result(r.gate, cand_metrics, cur_metrics, candidate_version=version, current_version=cur_version)
    if unusable:
        gate = {**gate, "passed": False, "reason": unusable}
    status = RetrainStatus.PASSED if gate["passed"] else RetrainStatus.REJECTED
    retrained = ctx.store.record_retrain(model=model, candidate=version or None, status=status, actor=actor, now=now,
                                         incident_id=incident_id, metrics=cand_metrics, current_metrics=cur_metrics,
                                         gate=gate, reason=f"{reason}; {gate['reason']}")
    if version:
        ctx.store.register_version(model, version, status="candidate" if gate["passed"] else "rejected", actor=actor,
                                   now=now, metrics=cand_metrics, gate=gate)
    if serving is not None and cur_version == serving.version and cur_metrics and not serving.metrics:
        ctx.store.register_version(model, serving.version, status="serving", actor=actor, now=now, metrics=cur_metrics)
    log.info(kv("retrain.done", model=model, candidate=version, status=status.value, reason=gate["reason"]))
    if not gate["passed"]:
        _escalate(ctx, config, retrained, now, f"model {model}: retrained candidate {version} failed its gate "
                                               f"({gate['reason']})")
        return retrained
    rollout = engine.start(ctx, model, version, actor=actor, now=now, retrain_id=retrained.id,
                           reason=f"retrain {retrained.id} passed its gate: {gate['reason']}")
    ctx.store.link_retrain(retrained.id, rollout.id)
    return ctx.store.get_retrain(retrained.id)  # type: ignore[return-value]


def _run_playbook(ctx: Context, config: ModelConfig, now: datetime,
                  serving: str | None) -> tuple[bool, dict[str, Any], dict | None]:
    assert config.retrain is not None
    remediation = ctx.config.remediation
    path = rules.resolve_playbook(remediation.playbook_dir, config.retrain.playbook, rule=f"model {config.name}")
    key = f"retrain-{config.name}-{uuid.uuid4().hex[:8]}"
    private = ctx.artifacts_dir / "retrains" / key
    metrics_file = private / "candidate.json"
    trusted = {**config.vars, "model_name": config.name, "metrics_file": str(metrics_file),
               "aiops_retrain_at": int(now.timestamp())}
    execution = runner.execute(playbook=path, project_dir=remediation.playbook_dir, private_dir=private,
                               targets=list(config.hosts[:1]), check=False, trusted_vars=trusted,
                               # the playbook scores the serving version on the candidate's holdout
                               label_vars={"serving_version": serving} if serving else {},
                               timeout_s=config.retrain.timeout, run_key=key, inventory=remediation.inventory,
                               env=config.env, tracking=remediation.process_tracking)
    summary = {"playbook": config.retrain.playbook, "status": execution.status, "rc": execution.rc,
               "report": engine.report_line(execution.output), "artifact_dir": str(private)}
    if execution.status != "successful":
        return False, summary, None
    try:
        found = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        summary["status"] = f"wrote no readable metrics file ({exc})"
        return False, summary, None
    return True, summary, found if isinstance(found, dict) else None


def _escalate(ctx: Context, config: ModelConfig, retrained: Retrain, now: datetime, title: str) -> None:
    details = {"retrain": retrained.id, "candidate": retrained.candidate, "metrics": dict(retrained.metrics),
               "current_metrics": dict(retrained.current_metrics), "gate": dict(retrained.gate)}
    incident_id = retrained.incident_id
    if incident_id is not None:
        incident = ctx.store.get_incident(incident_id, with_signals=False)
        if incident is not None and incident.status is not IncidentStatus.RESOLVED:
            ctx.store.escalate_incident(incident_id, Severity.CRITICAL, actor=ACTOR, now=now, reason=title)
            ctx.store.add_incident_event(incident_id, kind="retrain", actor=ACTOR, now=now, message=title,
                                         details=details)
            return
    opened = ctx.store.open_incident(severity=Severity.CRITICAL, title=title, now=now, started_at=now, actor=ACTOR,
                                     labels={"model": config.name, "retrain": str(retrained.id)})
    ctx.store.add_incident_event(opened.id, kind="retrain", actor=ACTOR, now=now, message=title, details=details)


def retrain_on_drift(ctx: Context, now: datetime) -> list[Retrain]:
    """A retrain for each drift incident of a model that retrains on drift, once each, after the
    incident is resolved: the quick fix (the rollback rule) comes first, and the candidate is then
    judged against a healthy previous version, not against the drifted one."""
    return [retrain(ctx, name, actor=ACTOR, now=now, incident_id=incident_id, reason=f"drift incident #{incident_id}")
            for incident_id, name in drift_to_retrain(ctx, now)]


def drift_to_retrain(ctx: Context, now: datetime) -> list[tuple[int, str]]:
    """(incident id, model) of resolved drift incidents not retrained for yet, oldest first; a
    model with a rollout under way waits (one change at a time: a later cycle asks again)."""
    wanted = {m.name: m for m in ctx.config.models if m.retrain is not None and m.retrain.on_drift}
    if not wanted:
        return []
    longest = max(m.retrain.period for m in wanted.values() if m.retrain is not None)
    out = []
    for incident in reversed(ctx.store.list_incidents(status=IncidentStatus.RESOLVED,
                                                      since=now - timedelta(seconds=longest))):
        drift = [s for s in incident.signals if s.detector == "drift"]
        if not drift or ctx.store.retrained_for(incident.id) or ctx.store.rollout_of_incident(incident.id):
            continue  # a rollout's drift was its version's, and its rollback the fix
        names = {s.labels.get("model") for s in drift} | {incident.labels.get("model")}
        for name in sorted(n for n in names if n in wanted):
            if not ctx.store.list_rollouts(model=name, active=True, limit=1):
                out.append((incident.id, name))
    return out
