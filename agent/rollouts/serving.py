"""What serves, from the one truth: the model's ``serving.link``, read every cycle.

The registry follows it. The version found there the first time is registered as found at
start; one that changed since is registered with what explains it, newest first: a remediation
run labelled with the model, or a recorded change (a deploy, ``aiops change add``) naming that
version. A change nothing explains still registers (the registry says what serves) but opens an
incident: something moved the model outside the agent's knowledge. While a rollout of the model
is under way its engine owns what serves and nothing is reconciled.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agent.config.models import ModelConfig
from agent.flow.incidents import Change, Severity
from agent.flow.rollouts import VERSION
from agent.flow.runs import RunMode, RunStatus
from agent.log import kv
from agent.rollouts.story import models_of

if TYPE_CHECKING:
    from agent.context import Context
    from agent.store import Store

log = logging.getLogger(__name__)

ACTOR = "agent"
FOUND_AT_START = "found serving when the agent first looked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Explained:
    source: str
    actor: str
    known: bool  # False: nothing the agent knows of put it there


def serving_now(config: ModelConfig) -> str | None:
    """The version the serving link names, or None (no link, unreadable, or not a version name:
    the link's target is untrusted text)."""
    if config.serving is None:
        return None
    try:
        target = os.readlink(config.serving.link)
    except OSError as exc:
        log.warning(kv("model.serving_unreadable", model=config.name, link=str(config.serving.link),
                       error=exc.strerror or type(exc).__name__))
        return None
    name = os.path.basename(os.path.normpath(target))
    if not VERSION.match(name):
        log.warning(kv("model.serving_unusable", model=config.name, target=target[:120]))
        return None
    return name


def versions_there(config: ModelConfig) -> list[str] | None:
    """The versions the models directory holds (None: not configured, or unreadable)."""
    if config.serving is None or config.serving.versions is None:
        return None
    try:
        names = os.listdir(config.serving.versions)
    except OSError as exc:
        log.warning(kv("model.versions_unreadable", model=config.name, error=exc.strerror or type(exc).__name__))
        return None
    return sorted(n for n in names if VERSION.match(n))


def reconcile(ctx: "Context", config: ModelConfig, *, now: datetime) -> str | None:
    """Bring the registry to what the link serves; returns the version serving (None: unknown)."""
    store = ctx.store
    found = serving_now(config)
    if found is None:
        return None
    registered = store.serving_version(config.name)
    if registered is not None and registered.version == found:
        return found
    if store.list_rollouts(model=config.name, active=True, limit=1):
        return registered.version if registered is not None else None  # the rollout's engine owns it now
    history = store.serving_history(config.name)
    if registered is None and not history:
        why = Explained(source=FOUND_AT_START, actor=ACTOR, known=True)
    else:
        since = history[-1].since if history else registered.deployed_at or registered.created_at  # type: ignore[union-attr]
        why = explain(store, config.name, found, since=since, now=now)
    previous = registered.version if registered is not None else None
    undone = "rolled_back" if why.known and "remediation" in why.source else "retired"
    store.serve_version(config.name, found, source=why.source, actor=why.actor, now=now, previous_status=undone)
    log.info(kv("model.serving", model=config.name, version=found, previous=previous, source=why.source))
    if not why.known:
        _unexplained(store, config, found, previous, now)
    return found


def explain(store: "Store", model: str, version: str, *, since: datetime, now: datetime) -> Explained:
    """What put ``version`` in place since ``since``: a remediation run of the model's incidents
    under way (its playbook moves the link before the run records its change), a recorded change
    that names the version, or the newest remediation of the model."""
    for run in store.list_runs(statuses=[RunStatus.RUNNING, RunStatus.VERIFYING], mode=RunMode.APPLY):
        incident = store.get_incident(run.incident_id) if run.incident_id is not None else None
        if incident is not None and model in models_of(incident) and (run.started_at or now) >= since:
            return Explained(source=f"remediation: run {run.id} of rule {run.rule} ({run.playbook})", actor=ACTOR,
                             known=True)
    changes = store.changes_near({"model": model}, before=now, lookback_s=max((now - since).total_seconds(), 0))
    # A change that names the version is the better evidence: a remediation of the model since the
    # last move (a restart, say) may have had nothing to do with the link.
    for change in changes:
        if change.labels.get("version") == version:
            return Explained(source=_change_source(change), actor=change.actor, known=True)
    for change in changes:
        if change.is_remediation:
            return Explained(source=f"remediation: {change.description}", actor=change.actor, known=True)
    return Explained(source="changed outside the agent: no rollout, remediation or recorded change explains it",
                     actor="unknown", known=False)


def _change_source(change: Change) -> str:
    return f"change #{change.id} by {change.actor}: {change.description}"


def _unexplained(store: "Store", config: ModelConfig, found: str, previous: str | None, now: datetime) -> None:
    title = (f"model {config.name}: {found} serves where the registry had {previous or 'nothing'}; nothing the "
             "agent knows of changed it")
    incident = store.open_incident(severity=Severity.WARNING, title=title, labels={"model": config.name,
                                   "version": found}, started_at=now, now=now, actor=ACTOR,
                                   root_cause_reason="the serving link moved outside the agent")
    store.add_incident_event(incident.id, kind="model", actor=ACTOR, now=now, message=title,
                             details={"model": config.name, "serving": found, "registry": previous,
                                      "link": str(config.serving.link) if config.serving else None})
