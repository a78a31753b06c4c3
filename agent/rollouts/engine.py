"""Guarded rollouts, advanced one step per cycle by the daemon's clock.

``start`` records a pending rollout (and its change); from then on each cycle's ``advance`` moves
every active rollout at most one step: run the rollout playbook on the canary hosts, measure
the analysis metrics when their time comes, and on the verdict run the promote playbook (all
hosts) or the rollback playbook (the canary hosts). Everything lives in the store, so a
restarted daemon picks a rollout up where it was. ``abort`` and ``promote`` only move the state:
the next cycle runs the playbook.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from agent.config.models import ModelConfig
from agent.errors import AiopsError, RemediationError, TransitionError
from agent.flow.incidents import REMEDIATION_CHANGE, IncidentStatus, Severity
from agent.flow.rollouts import (
    VERSION,
    Measurement,
    Rollout,
    RolloutStatus,
    Verdict,
    measurement_dict,
)
from agent.log import kv
from agent.rollouts.analysis import (
    Decision,
    Measure,
    MeasureError,
    PrometheusMeasure,
    decide,
    judge,
)
from agent.rollouts.serving import reconcile, versions_there
from agent.rollouts.story import after_rollback
from remediations import rules, runner
from remediations.engine import worker_limit

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)

ACTOR = "agent"


class RolloutError(AiopsError):
    """A rollout cannot be started or changed as asked. ``conflict``: the request was fine but the
    state refuses it (a rollout under way, a gate not passed): HTTP 409 rather than 422."""

    def __init__(self, subject: str, problem: str, *, conflict: bool = False) -> None:
        self.subject = subject
        self.problem = problem
        self.conflict = conflict
        super().__init__(f"{subject}: {problem}")


def model_config(ctx: Context, name: str) -> ModelConfig:
    found = ctx.config.model(name)
    if found is None:
        known = ", ".join(m.name for m in ctx.config.models) or "none"
        raise RolloutError(f"model {name}", f"expected a model configured under models (known: {known}), found none")
    return found


def start(ctx: Context, model: str, version: str, *, canary: Sequence[str] | None = None, actor: str,
          now: datetime, reason: str = "", retrain_id: int | None = None, override_gate: bool = False) -> Rollout:
    """Record a pending rollout of ``model`` ``version``; the next cycle runs its playbook.

    Refused before anything starts: a version the models directory does not hold
    (``serving.versions``), and, for a model that retrains behind a gate, a version whose gate
    failed or that never passed one and never served, unless ``override_gate`` with a ``reason``
    (audited, and kept on the rollout and the version)."""
    config = model_config(ctx, model)
    if not VERSION.match(version):
        raise RolloutError(f"model {model}", f"expected a version of letters, digits, '_', '.', '+', '-', "
                                             f"found {version!r}")
    hosts = list(config.hosts)
    chosen = list(canary) if canary else (list(config.canary) or hosts[:1])
    stray = [h for h in chosen if h not in hosts]
    if stray:
        raise RolloutError(f"model {model}", f"expected canary targets among the model's hosts {hosts}, "
                                             f"found {stray[0]!r}")
    unknown = [h for h in hosts if h not in rules.inventory_hosts(ctx.config.remediation)]
    if unknown:
        raise RolloutError(f"model {model}", f"expected hosts from the inventory, found unknown host {unknown[0]!r}")
    there = versions_there(config)
    if there is not None and version not in there:
        raise RolloutError(f"model {model}", f"expected a version the models directory holds "
                                             f"({', '.join(there) or 'none'}), found {version!r}")
    active = ctx.store.list_rollouts(model=model, active=True, limit=1)
    if active:
        raise RolloutError(f"model {model}", f"rollout {active[0].id} of {active[0].version} is still "
                                             f"{active[0].status}; abort or finish it first", conflict=True)
    override = _gate_override(ctx, config, version, actor=actor, reason=reason, override=override_gate, now=now)
    reconcile(ctx, config, now=now)  # what serves now is the version it replaces
    serving = ctx.store.serving_version(model)
    rollout = ctx.store.create_rollout(
        model=model, version=version, previous_version=serving.version if serving else None, canary=chosen,
        rest=[h for h in hosts if h not in chosen], actor=actor, reason=reason, now=now, retrain_id=retrain_id,
        gate_override=override)
    log.info(kv("rollout.started", id=rollout.id, model=model, version=version, canary=",".join(chosen),
                worst_case_rollback_s=config.analysis.worst_case_rollback_s, gate_override=bool(override)))
    return rollout


def gate_problem(ctx: Context, config: ModelConfig, version: str) -> str:
    """Why ``version`` may not roll out without an override ("" when it may): its gate failed,
    or it never passed one and never served. A model without ``retrain`` has no gate."""
    if config.retrain is None:
        return ""
    known = ctx.store.model_version(config.name, version)
    if known is not None and known.gate:
        if known.gate.get("passed"):
            return ""
        return f"{version} failed its gate ({known.gate.get('reason') or 'no reason recorded'})"
    if ctx.store.has_served(config.name, version):
        return ""
    return f"{version} never passed a gate (the registry has no gate result for it)"


def _gate_override(ctx: Context, config: ModelConfig, version: str, *, actor: str, reason: str, override: bool,
                   now: datetime) -> dict[str, Any] | None:
    problem = gate_problem(ctx, config, version)
    if not problem:
        return None
    if not override:
        raise RolloutError(f"model {config.name}", f"{problem}; roll it out anyway only with --override-gate "
                                                   "--reason TEXT (audited)", conflict=True)
    if not reason.strip():
        raise RolloutError(f"model {config.name}", f"{problem}; an override needs a reason, found none")
    known = ctx.store.model_version(config.name, version)
    return {"by": actor, "reason": reason, "at": now.isoformat(), "problem": problem,
            "gate": dict(known.gate) if known is not None else {}}


def abort(ctx: Context, rollout_id: int, *, actor: str, reason: str, now: datetime) -> Rollout:
    """Stop a rollout: a pending one ends at once; one whose version is out rolls back next cycle."""
    rollout = _get(ctx, rollout_id)
    if rollout.status is RolloutStatus.PENDING:
        return ctx.store.transition_rollout(rollout_id, RolloutStatus.ABORTED, actor=actor, reason=reason, now=now,
                                            aborted_by=actor)
    return ctx.store.transition_rollout(rollout_id, RolloutStatus.ROLLING_BACK, actor=actor, reason=reason, now=now,
                                        aborted_by=actor)


def promote(ctx: Context, rollout_id: int, *, actor: str, reason: str, now: datetime) -> Rollout:
    """A person's go-ahead for a paused (or still analysing) rollout: promote next cycle."""
    return ctx.store.transition_rollout(_get(ctx, rollout_id).id, RolloutStatus.PROMOTING, actor=actor,
                                        reason=reason, now=now, promoted_by=actor)


def _get(ctx: Context, rollout_id: int) -> Rollout:
    rollout = ctx.store.get_rollout(rollout_id)
    if rollout is None:
        raise RolloutError(f"rollout {rollout_id}", "expected a known rollout id, found none")
    return rollout


# -- the cycle's step ---------------------------------------------------------------------------

MeasureFor = Callable[[ModelConfig], Measure]


def measure_for(ctx: Context) -> MeasureFor:
    def make(config: ModelConfig) -> Measure:
        if config.analysis.prometheus_url:
            return PrometheusMeasure(config.analysis.prometheus_url, timeout_s=config.analysis.timeout)
        # The source's server: with its credentials and TLS settings.
        source = ctx.config.sources.prometheus
        session = requests.Session()
        if source.bearer_token is not None:
            session.headers["Authorization"] = f"Bearer {source.bearer_token.get_secret_value()}"
        elif source.username:
            session.auth = (source.username, source.password.get_secret_value() if source.password else "")
        session.verify = str(source.ca_file) if source.ca_file and source.verify_tls else source.verify_tls
        return PrometheusMeasure(source.url, timeout_s=config.analysis.timeout, session=session)
    return make


def advance(ctx: Context, now: datetime, *, measure: MeasureFor | None = None,
            beside: bool = False) -> list[Rollout]:
    """One step for every active rollout that is due; a rollout whose step fails is logged and
    left as it was (the next cycle tries again). ``beside``: each step goes to a worker of the
    remediation pool (``remediation.workers``), as playbook runs do, so the cycle never waits for
    a playbook; a rollout whose step is still under way, or that finds no free worker, is offered
    again next cycle. Returns the rollouts moved here (none when they went to workers)."""
    measure = measure or measure_for(ctx)
    limit = worker_limit(ctx.config.remediation) if beside else 0
    moved: list[Rollout] = []
    for rollout in reversed(ctx.store.list_rollouts(active=True, limit=None)):
        config = ctx.config.model(rollout.model)
        if config is None:
            log.warning(kv("rollout.unconfigured", id=rollout.id, model=rollout.model))
            continue
        if not due(rollout, now, slack_s=slack(ctx, config)):
            continue
        key = f"rollout:{rollout.id}"
        if limit == 0:
            after = _step_logged(ctx, config, rollout, now, measure)
            if after is not None:
                moved.append(after)
        elif not ctx.workers.start(key, lambda c=config, r=rollout: _step_beside(ctx, c, r, now, measure),
                                   limit=limit):
            log.debug(kv("rollout.deferred", id=rollout.id, reason="no free worker or step under way"))
    return moved


def due(rollout: Rollout, now: datetime, *, slack_s: float = 0.0) -> bool:
    """Whether a step has something to do now: paused and waiting rollouts wait for a person, an
    analysis for its next measurement (taken up to ``slack_s`` early, see ``slack``)."""
    if rollout.status in (RolloutStatus.PAUSED, RolloutStatus.WAITING_APPROVAL):
        return False
    return not (rollout.status is RolloutStatus.ANALYSING and rollout.next_at is not None
                and now < rollout.next_at - timedelta(seconds=slack_s))


def slack(ctx: Context, config: ModelConfig) -> float:
    """How early a measurement may be taken: a cycle comes a little earlier or later than its
    slot (the scheduler's jitter), and the grid of measurements starts at one cycle's time; a
    cycle a few milliseconds early must not wait a whole cycle more. A quarter of a cycle (of the
    interval, if shorter) takes that jitter and no more."""
    return min(ctx.config.agent.interval, config.analysis.interval) / 4


def _step_logged(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime,
                 measure: MeasureFor) -> Rollout | None:
    measuring = measure(config)
    try:
        return step(ctx, config, rollout, now=now, measure=measuring)
    except (AiopsError, OSError) as exc:
        log.exception(kv("rollout.step_failed", id=rollout.id, error=type(exc).__name__))
        return None
    finally:
        measuring.close()


def _step_beside(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime,
                 measure: MeasureFor) -> list[Any]:
    try:
        # Read again: a person may have moved it between the cycle's read and this worker's.
        current = ctx.store.get_rollout(rollout.id)
        if current is not None and current.status is rollout.status:
            _step_logged(ctx, config, current, now, measure)
    finally:
        ctx.store.close()  # this worker thread's connection
    return []  # nothing for the remediate stage's finished runs


def step(ctx: Context, config: ModelConfig, rollout: Rollout, *, now: datetime, measure: Measure) -> Rollout | None:
    after = _step(ctx, config, rollout, now=now, measure=measure)
    if after is not None and after.status.done:
        ctx.metrics.rollouts_ended.labels(model=rollout.model, outcome=after.status.value).inc()
    return after


def _step(ctx: Context, config: ModelConfig, rollout: Rollout, *, now: datetime, measure: Measure) -> Rollout | None:
    status = rollout.status
    if status is RolloutStatus.PENDING:
        return _deploy_canary(ctx, config, rollout, now, measure)
    if status is RolloutStatus.ANALYSING:
        return _analyse(ctx, config, rollout, now, measure)
    if status is RolloutStatus.ROLLING_BACK:
        return _roll_back(ctx, config, rollout, now)
    if status is RolloutStatus.PROMOTING:
        return _promote(ctx, config, rollout, now)
    return None  # paused, waiting for approval: a person moves it


def _deploy_canary(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime,
                   measure: Measure) -> Rollout:
    ok, summary = _run(ctx, config, rollout, config.rollout_playbook, rollout.canary, "rollout")
    if not ok:
        incident = _open_incident(ctx, rollout, now, f"model {rollout.model} {rollout.version}: the rollout "
                                  f"playbook failed on the canary", {"playbook": summary})
        ctx.store.end_version(rollout.model, rollout.version, status="failed", outcome="rollout playbook failed",
                              actor=ACTOR, now=now)
        return ctx.store.transition_rollout(rollout.id, RolloutStatus.FAILED, actor=ACTOR, now=now,
                                            reason="the rollout playbook failed", details={"playbook": summary},
                                            incident_id=incident)
    reference = {}
    for metric in config.analysis.metrics:
        if metric.kind == "distribution":
            try:
                reference[metric.name] = measure.buckets(metric, at=now, window_s=config.analysis.duration)
            except MeasureError as exc:
                log.warning(kv("rollout.reference_failed", id=rollout.id, metric=metric.name, error=exc.problem))
    ctx.store.set_rollout(rollout.id, now=now, reference=reference)
    try:
        return ctx.store.transition_rollout(
            rollout.id, RolloutStatus.ANALYSING, actor=ACTOR, now=now, details={"playbook": summary},
            reason=f"{rollout.version} is on {', '.join(rollout.canary)}; analysing every "
                   f"{config.analysis.interval:g}s for {config.analysis.duration:g}s",
            # The canary serves once its playbook is done (seconds later on a busy host): the
            # analysis windows start there; measurements keep to the cycles' grid.
            analysis_started_at=now + timedelta(seconds=float(summary["duration_s"])),
            next_at=now + timedelta(seconds=config.analysis.interval))
    except TransitionError:
        aborted = ctx.store.get_rollout(rollout.id)
        if aborted is None or aborted.status is not RolloutStatus.ABORTED:
            raise
    # Aborted while its playbook ran: the version is out on the canary, so it goes back.
    ok, undone = _run(ctx, config, rollout, config.rollback_playbook, rollout.canary, "rollback")
    ctx.store.audit(ACTOR, "rollout.rolled_back_after_abort", f"rollout:{rollout.id}",
                    {"model": rollout.model, "version": rollout.version, "succeeded": ok, "playbook": undone},
                    now=now)
    return ctx.store.get_rollout(rollout.id)  # type: ignore[return-value]


def _analyse(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime, measure: Measure) -> Rollout | None:
    if not due(rollout, now, slack_s=slack(ctx, config)):
        return None
    started = rollout.analysis_started_at or now
    # {window} covers the canary's own traffic, but at least an interval: a cycle that comes right
    # after a slow canary playbook still gets enough samples for a rate.
    since = min(started, now - timedelta(seconds=config.analysis.interval))
    taken = []
    for metric in config.analysis.metrics:
        try:
            value = measure.value(metric, at=now, since=since, reference=rollout.reference.get(metric.name))
        except MeasureError as exc:
            taken.append(Measurement(rollout_id=rollout.id, metric=metric.name, at=now, value=None,
                                     verdict=Verdict.INCONCLUSIVE, reason=exc.problem))
            continue
        verdict, reason = judge(metric, value)
        taken.append(Measurement(rollout_id=rollout.id, metric=metric.name, at=now, value=value, verdict=verdict,
                                 reason=reason))
    ctx.store.add_measurements(taken)
    for m in taken:
        ctx.metrics.rollout_measurements.labels(model=rollout.model, verdict=m.verdict.value).inc()
    log.info(kv("rollout.measured", id=rollout.id, **{m.metric: m.verdict.value for m in taken}))
    outcome = decide(config.analysis, ctx.store.measurements(rollout.id), started_at=started, now=now)
    analysis = analysis_table(ctx, rollout.id)
    if outcome.decision is Decision.CONTINUE:
        ctx.store.set_rollout(rollout.id, now=now, next_at=next_measurement(rollout, config, now))
        return ctx.store.get_rollout(rollout.id)
    if outcome.decision is Decision.PAUSE:
        return ctx.store.transition_rollout(rollout.id, RolloutStatus.PAUSED, actor=ACTOR, now=now,
                                            reason=f"{outcome.reason}; a person decides: aiops rollout promote "
                                                   f"{rollout.id} or aiops rollout abort {rollout.id}",
                                            details={"analysis": analysis})
    if outcome.decision is Decision.PASS:
        moved = ctx.store.transition_rollout(rollout.id, RolloutStatus.PROMOTING, actor=ACTOR, now=now,
                                             reason=outcome.reason, details={"analysis": analysis},
                                             promoted_by=ACTOR)
        return _promote(ctx, config, moved, now)
    first_failed = min(m.at for m in ctx.store.measurements(rollout.id) if m.verdict is Verdict.FAILED)
    incident = _open_incident(ctx, rollout, now, f"model {rollout.model} {rollout.version} failed its canary "
                              f"analysis: {outcome.reason}", {"analysis": analysis}, started_at=first_failed)
    if config.on_failure == "approve":
        return ctx.store.transition_rollout(
            rollout.id, RolloutStatus.WAITING_APPROVAL, actor=ACTOR, now=now, incident_id=incident,
            reason=f"{outcome.reason}; the rollback waits for a person: aiops rollout abort {rollout.id}",
            details={"analysis": analysis})
    moved = ctx.store.transition_rollout(rollout.id, RolloutStatus.ROLLING_BACK, actor=ACTOR, now=now,
                                         incident_id=incident, reason=outcome.reason, details={"analysis": analysis})
    return _roll_back(ctx, config, moved, now)


def next_measurement(rollout: Rollout, config: ModelConfig, now: datetime) -> datetime:
    """On the grid of ``interval`` from the analysis start, so a cycle's lateness does not add up
    over the measurements; a slot already past (the daemon was down) is skipped, not caught up."""
    interval = timedelta(seconds=config.analysis.interval)
    planned = (rollout.next_at or now) + interval
    return planned if planned > now else now + interval


def _roll_back(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime) -> Rollout:
    ok, summary = _run(ctx, config, rollout, config.rollback_playbook, rollout.canary, "rollback")
    if not ok:
        if rollout.incident_id is None:
            incident = _open_incident(ctx, rollout, now, f"model {rollout.model} {rollout.version}: the rollback "
                                      "playbook failed", {"playbook": summary})
        else:
            incident = rollout.incident_id
            ctx.store.escalate_incident(incident, Severity.CRITICAL, actor=ACTOR, now=now,
                                        reason="the rollback playbook failed")
        return ctx.store.transition_rollout(rollout.id, RolloutStatus.FAILED, actor=ACTOR, now=now,
                                            reason="the rollback playbook failed", details={"playbook": summary},
                                            incident_id=incident)
    to = RolloutStatus.ABORTED if rollout.aborted_by else RolloutStatus.ROLLED_BACK
    outcome = f"aborted by {rollout.aborted_by}" if rollout.aborted_by else "rolled back after a failed analysis"
    ctx.store.end_version(rollout.model, rollout.version, status="rolled_back", outcome=outcome, actor=ACTOR, now=now)
    # What the agent did about it, like a remediation's change: never a suspect of what follows.
    _record_change(ctx, rollout, now, REMEDIATION_CHANGE, rollout.previous_version,
                   f"{config.rollback_playbook} applied by rollout {rollout.id}: {rollout.model} {rollout.version} "
                   f"rolled back on {', '.join(rollout.canary)}")
    after_rollback(ctx, rollout, now, f"{rollout.version} rolled back on {', '.join(rollout.canary)}")
    return ctx.store.transition_rollout(rollout.id, to, actor=ACTOR, now=now, details={"playbook": summary},
                                        reason=f"{rollout.version} rolled back on {', '.join(rollout.canary)}")


def _promote(ctx: Context, config: ModelConfig, rollout: Rollout, now: datetime) -> Rollout:
    hosts = (*rollout.canary, *rollout.rest)
    ok, summary = _run(ctx, config, rollout, config.promote_playbook, hosts, "promote")
    if not ok:
        incident = _open_incident(ctx, rollout, now, f"model {rollout.model} {rollout.version}: the promote "
                                  "playbook failed", {"playbook": summary})
        return ctx.store.transition_rollout(rollout.id, RolloutStatus.FAILED, actor=ACTOR, now=now,
                                            reason="the promote playbook failed", details={"playbook": summary},
                                            incident_id=incident)
    _record_change(ctx, rollout, now, "model_promote", rollout.version,
                   f"promote {rollout.model} {rollout.version} to {', '.join(hosts)} (rollout {rollout.id})")
    baseline = ctx.store.latest_baseline(rollout.model)
    by = rollout.promoted_by or ACTOR  # the agent on a passed analysis, else the person who promoted
    how = "its analysis passed" if by == ACTOR else f"promoted by {by}"
    over = " over its gate" if rollout.gate_override else ""
    ctx.store.deploy_version(rollout.model, rollout.version, actor=by, now=now, outcome=f"promoted{over}",
                             baseline_id=baseline.id if baseline is not None else None,
                             source=f"rollout {rollout.id} ({how}{over})")
    return ctx.store.transition_rollout(rollout.id, RolloutStatus.PROMOTED, actor=ACTOR, now=now,
                                        details={"playbook": summary},
                                        reason=f"{rollout.version} serves on {', '.join(hosts)}")


def _record_change(ctx: Context, rollout: Rollout, now: datetime, kind: str, version: str | None,
                   description: str) -> None:
    """What serves changed: a suspect for later incidents of the model, and where its drift window
    starts again (the data before it describe the version that left)."""
    labels = {"model": rollout.model, **({"version": version} if version else {})}
    ctx.store.add_change(ts=now, kind=kind, labels=labels, description=description, actor=ACTOR, now=now)


# -- playbooks and incidents ---------------------------------------------------------------------

def _run(ctx: Context, config: ModelConfig, rollout: Rollout, playbook: str, hosts: Sequence[str],
         what: str) -> tuple[bool, dict[str, Any]]:
    """Run one of the model's playbooks on ``hosts``; (succeeded, what to record)."""
    remediation = ctx.config.remediation
    try:
        path = rules.resolve_playbook(remediation.playbook_dir, playbook, rule=f"model {config.name}")
    except RemediationError as exc:
        return False, {"playbook": playbook, "status": "refused", "reason": exc.problem}
    key = f"rollout-{rollout.id}-{what}-{uuid.uuid4().hex[:8]}"
    private = ctx.artifacts_dir / "rollouts" / key
    trusted = {**config.vars, "model_name": config.name, "aiops_rollout_id": rollout.id}
    # The version came from a person or a retrain: it reaches ansible as text it never templates.
    untrusted = {"model_version": rollout.version, **({"previous_version": rollout.previous_version}
                                                       if rollout.previous_version else {})}
    execution = runner.execute(playbook=path, project_dir=remediation.playbook_dir, private_dir=private,
                               targets=list(hosts), check=False, trusted_vars=trusted, label_vars=untrusted,
                               timeout_s=config.timeout, run_key=key, inventory=remediation.inventory,
                               env=config.env, tracking=remediation.process_tracking)
    summary = {"playbook": playbook, "hosts": list(hosts), "status": execution.status, "rc": execution.rc,
               "duration_s": round(execution.duration_s, 2), "artifact_dir": str(private),
               "report": report_line(execution.output)}
    log.info(kv(f"rollout.{what}_playbook", id=rollout.id, playbook=playbook, status=execution.status,
                rc=execution.rc, duration_s=round(execution.duration_s, 2)))
    return execution.status == "successful", summary


def report_line(output: str) -> str:
    """The message of the playbook's last ``Report`` task, if any."""
    found = re.findall(r'"msg": "(.*)"', output)
    return found[-1] if found else ""


def _open_incident(ctx: Context, rollout: Rollout, now: datetime, title: str, details: dict[str, Any], *,
                   started_at: datetime | None = None) -> int:
    """The rollout's incident: the one it already has (its model's signals opened it during the
    analysis), made critical and told, or a new one."""
    current = ctx.store.get_incident(rollout.incident_id, with_signals=False) if rollout.incident_id else None
    if current is not None and current.status is not IncidentStatus.RESOLVED:
        if current.severity is not Severity.CRITICAL:
            ctx.store.escalate_incident(current.id, Severity.CRITICAL, actor=ACTOR, now=now, reason=title)
        ctx.store.add_incident_event(current.id, kind="rollout", actor=ACTOR, now=now,
                                     message=f"rollout {rollout.id}: {title}", details=details)
        return current.id
    incident = ctx.store.open_incident(
        severity=Severity.CRITICAL, title=title, now=now, started_at=started_at or now, actor=ACTOR,
        labels={"model": rollout.model, "version": rollout.version, "rollout": str(rollout.id)},
        root_cause=f"change:{rollout.change_id}" if rollout.change_id else None,
        root_cause_reason=f"rollout {rollout.id} of {rollout.model} {rollout.version}")
    ctx.store.add_incident_event(incident.id, kind="rollout", actor=ACTOR, now=now,
                                 message=f"rollout {rollout.id}: {title}", details=details)
    return incident.id


def analysis_table(ctx: Context, rollout_id: int) -> list[dict[str, Any]]:
    """The measurements so far, as the incident and the audit entry carry them."""
    return [measurement_dict(m) for m in ctx.store.measurements(rollout_id)]
