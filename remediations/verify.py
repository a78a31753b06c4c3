"""After a real run: watch the incident's signals until they stay quiet for the verify period
(verified: the next batch runs, or the incident resolves with its MTTR recorded) or the deadline
passes (not fixed: the rollback playbook runs and the incident escalates with the run's output).
A run is judged by the cycles after the one that started it: the real run ends on a worker, beside
the cycle, and the next cycle finds it verifying in the store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agent.clock import boot_id, from_epoch, to_epoch
from agent.errors import RemediationError
from agent.flow.incidents import IncidentStatus
from agent.flow.rollouts import RolloutStatus
from agent.flow.runs import Run, RunMode, RunStatus
from remediations.engine import ACTOR, Remediator
from remediations.signals import SignalState, observe, relevant_signals


def verify_all(r: Remediator) -> None:
    for run in reversed(r.store.list_runs(statuses=[RunStatus.VERIFYING], mode=RunMode.APPLY)):
        verify(r, run)


def settle(r: Remediator) -> None:
    """An incident left ``remediating`` with no run of it under way, waiting or verifying (its
    outcome was recorded without the escalation that should have followed: the agent stopped
    between the two) goes back to people: escalated, open again. A rollout's incident is left to
    the rollout, whose rollback remediates it."""
    for incident in r.store.list_incidents(status=IncidentStatus.REMEDIATING):
        rollout = r.store.rollout_of_incident(incident.id)
        if rollout is not None and rollout.status is not RolloutStatus.PROMOTED:
            continue  # a rollout's story: its rollback is the remediation (agent.rollouts.story.settle)
        runs = r.store.list_runs(incident_id=incident.id)
        if any(not run.status.is_final for run in runs):
            continue
        last = next((run for run in runs if run.mode is RunMode.APPLY), runs[0] if runs else None)
        if last is None or last.status in (RunStatus.SKIPPED, RunStatus.CANCELED):
            # Nothing ran: the incident is open again, as it was before the run was decided.
            why = f"its run {last.id} was {last.status}: {last.reason}" if last is not None else "it has no run"
            r.store.transition_incident(incident.id, IncidentStatus.OPEN, actor=ACTOR, now=r.started_at,
                                        reason=f"nothing is remediating it: {why}")
            continue
        r.escalate(last, f"incident #{incident.id} was left remediating, but its last run {last.id} ended "
                         f"{last.status} without a verified fix")


def verify(r: Remediator, run: Run) -> Run:
    now = r.started_at  # the time of the cycle whose data is judged
    period = r.config.verify.period
    incident = r.store.get_incident(run.incident_id)
    rule = r.config.rule(run.rule)
    if incident is None or rule is None:
        return r.keep(r.store.update_run(run.id, RunStatus.CANCELED, now=now,
                                          reason="its incident or rule no longer exists"))
    if incident.status is IncidentStatus.RESOLVED:
        return _verified(r, run, incident, now, f"incident resolved ({incident.resolution}) while verifying")
    state = observe(relevant_signals(incident, rule.targets.label, run.targets), r.seen)
    quiet_since = from_epoch(run.verification.get("quiet_since"))
    mono = r.ctx.monotonic()
    if state is SignalState.FIRING and quiet_since is not None:
        run = r.store.update_run(run.id, RunStatus.VERIFYING, now=now, reason="signals fired again",
                                 verification={**run.verification, "quiet_since": None, "quiet_mono": None})
        quiet_since = None
    elif state is SignalState.QUIET and quiet_since is None:
        quiet_since = now
        run = r.store.update_run(run.id, RunStatus.VERIFYING, now=now, reason="signals quiet",
                                 verification={**run.verification, "quiet_since": to_epoch(now), "quiet_mono": mono})
    if quiet_since is not None and _since(run, "quiet_mono", quiet_since, now, mono) >= period:
        return _verified(r, run, incident, now, f"signals quiet since {quiet_since.isoformat()} ({period:g}s)")
    if run.verify_until is not None and _past_deadline(run, now, mono):
        return _not_fixed(r, run, now, f"signals not quiet for {period:g}s by {run.verify_until.isoformat()} "
                                       f"(last observation: {state})")
    return run


def _since(run: Run, key: str, wall: datetime, now: datetime, mono: float) -> float:
    """Seconds since ``wall``: by the monotonic reading kept under ``key`` when this host's boot
    wrote it, else by the wall clock (another host took the run over)."""
    kept = run.verification.get(key)
    if kept is not None and run.verification.get("boot") == boot_id():
        return mono - float(kept)
    return (now - wall).total_seconds()


def _past_deadline(run: Run, now: datetime, mono: float) -> bool:
    assert run.verify_until is not None
    deadline = run.verification.get("deadline_s")
    if deadline is None:  # verifying since before the deadline was counted on the monotonic clock
        return now >= run.verify_until
    applied = run.verify_until - timedelta(seconds=float(deadline))
    return _since(run, "applied_mono", applied, now, mono) >= float(deadline)


def _not_fixed(r: Remediator, run: Run, now: datetime, why: str) -> Run:
    """Past the deadline: not fixed; a worker rolls back and escalates. No free worker: the run
    keeps verifying and is judged again next cycle."""
    if not r.can_begin():
        return run
    run = r.store.update_run(run.id, RunStatus.NOT_FIXED, now=now, reason=why)
    r.ctx.metrics.remediation_runs.labels(outcome="not_fixed").inc()
    message = f"run {run.id} ({run.playbook}) did not fix the incident by its verify deadline"
    r.begin(f"rollback:{run.id}", lambda w: w.roll_back_and_escalate(run, message))
    return r.keep(run)


def _verified(r: Remediator, run: Run, incident: Any, now: datetime, why: str) -> Run:
    run = r.store.update_run(run.id, RunStatus.VERIFIED, now=now, reason=why,
                             verification={**run.verification, "verified_at": to_epoch(now)})
    r.ctx.metrics.remediation_runs.labels(outcome="verified").inc()
    r.keep(run)
    rule = r.config.rule(run.rule)
    if incident.status is not IncidentStatus.RESOLVED and rule is not None:
        try:
            plan = r.prepare(rule, incident).batches
        except RemediationError:
            plan = ()
        if run.batch + 1 < len(plan):
            nxt = r.store.create_run(
                incident_id=incident.id, rule=rule.name, rule_mode=run.rule_mode, playbook=run.playbook,
                playbook_sha256=run.playbook_sha256, mode=RunMode.APPLY, status=RunStatus.PENDING,
                targets=plan[run.batch + 1], extravars=run.extravars, batch=run.batch + 1, now=now,
                reason=f"batch {run.batch + 1} of {len(plan) - 1} after run {run.id} was verified")
            r.store.add_incident_event(incident.id, kind="remediation", actor=ACTOR, now=now,
                                       message=f"run {run.id} verified on {', '.join(run.targets)}; "
                                               f"next batch: run {nxt.id} on {', '.join(nxt.targets)}",
                                       details={"run": run.id, "next": nxt.id})
            r.start_run(nxt)  # the approval of the canary covers the batches after it (no free worker: next cycle)
            return run
    r.store.set_remediation_times(incident.id, verified_at=now, actor=ACTOR, now=now)
    if incident.status is not IncidentStatus.RESOLVED:
        r.store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor=ACTOR, now=now,
                                    reason=f"remediation run {run.id} verified: {why}", resolution="remediation")
    return run

