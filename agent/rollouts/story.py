"""One story for a model: a rollout and what its model's signals say meanwhile are one incident.

While a rollout of a model is under analysis, rollback or promotion, an incident on that model's
signals (the model's label on the incident or on one of its signals) belongs to the rollout, and
so does one that started while the rollout's canary served, even if it opened after the
rollout ended (a rate window or a drift window lags). Such an incident:

- is held: no remediation rule runs for it (``holding_rollout``, asked by the remediate stage),
  because the rollout's own rollback is its remediation;
- joins the rollout's incident (``fold``): it becomes that incident when the rollout has none
  yet, or is merged into it;
- once the rollout rolled back, resolves as ``rollback`` when its signals have stayed quiet
  (``settle``), or goes back to people when they have not by the verify deadline.

A promoted rollout holds nothing once it has ended: its version is the one serving, and the
model's rules apply to it as to any other.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.flow.incidents import IncidentStatus
from agent.flow.rollouts import Rollout, RolloutStatus
from agent.log import kv

if TYPE_CHECKING:
    from agent.context import Context
    from agent.store import Store

log = logging.getLogger(__name__)

ACTOR = "agent"
MODEL_LABEL = "model"
OPEN = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING)
RECENT = timedelta(days=1)  # ended rollouts whose tail of incidents is still folded and settled


def models_of(incident: Any) -> set[str]:
    """The models an incident concerns: its own ``model`` label and its current signals'."""
    names = {incident.labels.get(MODEL_LABEL)} | {s.labels.get(MODEL_LABEL) for s in incident.current_signals}
    return {str(n) for n in names if n}


def holding_rollout(store: "Store", incident: Any) -> Rollout | None:
    """The rollout whose story ``incident`` is part of, while it holds the incident's rules back."""
    own = store.rollout_of_incident(incident.id)
    if own is not None:
        return None if own.status is RolloutStatus.PROMOTED else own
    for model in sorted(models_of(incident)):
        active = store.list_rollouts(model=model, active=True, limit=1)
        if active:
            return active[0]
        for rollout in store.rollouts_around(model, incident.started_at):
            if rollout.analysis_started_at is not None and rollout.status is not RolloutStatus.PROMOTED:
                return rollout  # it began while the canary served
    return None


def in_play(store: "Store", now: datetime) -> set[str]:
    """Models with a rollout under way or ended within ``RECENT``."""
    return {r.model for r in store.list_rollouts(since=now - RECENT, limit=None)
            if not r.status.done or (r.ended_at is not None and now - r.ended_at <= RECENT)}


def fold(ctx: "Context", now: datetime) -> list[int]:
    """Join each open incident that belongs to a rollout to the rollout's incident; returns the
    incidents that joined."""
    store = ctx.store
    models = in_play(store, now)
    if not models:
        return []
    joined = []
    for incident in reversed(store.list_incidents(status=OPEN)):  # oldest first: the first becomes the story
        if not models_of(incident) & models:
            continue
        rollout = holding_rollout(store, incident)
        if rollout is None or rollout.incident_id == incident.id:
            continue
        what = f"rollout {rollout.id} of {rollout.model} {rollout.version} ({rollout.status})"
        if rollout.incident_id is None:
            store.set_rollout(rollout.id, now=now, incident_id=incident.id)
            store.audit(ACTOR, "rollout.incident", f"rollout:{rollout.id}", {"incident": incident.id}, now=now)
            store.add_incident_event(incident.id, kind="rollout", actor=ACTOR, now=now,
                                     message=f"part of {what}: the rollout's rollback is the remediation; no rule "
                                             "runs for it", details={"rollout": rollout.id})
        else:
            store.merge_incident(incident.id, rollout.incident_id, actor=ACTOR, now=now,
                                 reason=f"its signals are {rollout.model}'s during {what}")
        log.info(kv("rollout.incident_joined", rollout=rollout.id, incident=incident.id, into=rollout.incident_id))
        joined.append(incident.id)
    return joined


def settle(ctx: "Context", now: datetime) -> list[int]:
    """Resolve the incidents of rolled-back rollouts whose signals stayed quiet (``rollback``);
    hand back to people those still firing at the verify deadline. Returns the incidents resolved."""
    store, quiet_needed = ctx.store, ctx.config.incidents.quiet_cycles
    deadline = timedelta(seconds=ctx.config.remediation.verify.deadline)
    resolved = []
    for rollout in store.list_rollouts(active=False, since=now - RECENT, limit=None):
        if rollout.incident_id is None or rollout.status is RolloutStatus.PROMOTED or rollout.ended_at is None:
            continue
        incident = store.get_incident(rollout.incident_id, with_signals=False)
        if incident is None or incident.status is not IncidentStatus.REMEDIATING:
            continue
        if incident.quiet_cycles >= quiet_needed:
            store.set_remediation_times(incident.id, verified_at=now, actor=ACTOR, now=now)
            store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor=ACTOR, now=now, resolution="rollback",
                                      reason=f"{rollout.version} rolled back (rollout {rollout.id}) and the signals "
                                             f"stayed quiet for {incident.quiet_cycles} cycles")
            resolved.append(incident.id)
        elif now - rollout.ended_at > deadline:
            message = (f"{rollout.version} was rolled back (rollout {rollout.id}) but the signals did not stay quiet "
                       f"within {deadline.total_seconds():g}s: over to people")
            store.add_incident_event(incident.id, kind="escalated", actor=ACTOR, now=now, message=message,
                                     details={"rollout": rollout.id})
            store.transition_incident(incident.id, IncidentStatus.OPEN, actor=ACTOR, now=now, reason=message)
    return resolved


def after_rollback(ctx: "Context", rollout: Rollout, now: datetime, reason: str) -> None:
    """The rollout's incident once its version is rolled back: one no signal watches (the failed
    analysis alone) resolves now; one with signals waits for them to stay quiet (``settle``)."""
    if rollout.incident_id is None:
        return
    store = ctx.store
    incident = store.get_incident(rollout.incident_id)
    if incident is None or incident.status is IncidentStatus.RESOLVED:
        return
    if not incident.signals:
        store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor=ACTOR, reason=reason, now=now,
                                  resolution="rollback")
        return
    if incident.status is not IncidentStatus.REMEDIATING:
        store.transition_incident(incident.id, IncidentStatus.REMEDIATING, actor=ACTOR, now=now,
                                  reason=f"{reason}; it resolves once its signals stay quiet")
