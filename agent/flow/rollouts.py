"""The things a guarded rollout is made of: the rollout, its measurements, model versions and
retrains. States are enums; records are frozen and change only through the store, which writes
the audit entry with each change.

A rollout moves::

    pending ──▶ analysing ──▶ promoting ──▶ promoted
       │            │  ▲
       │            │  └── (resume) ── paused        (an inconclusive measurement)
       │            ├──▶ rolling_back ──▶ rolled_back (failure_limit failed measurements)
       │            └──▶ waiting_approval ──▶ rolling_back   (on_failure: approve)
       └──▶ failed  (a playbook failed; the incident says which)
    aborted: a person stopped it (``abort``: pending ends at once; later states roll back first)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# A model version's name: it reaches playbooks and paths, so nothing else is taken.
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class RolloutStatus(StrEnum):
    PENDING = "pending"
    ANALYSING = "analysing"
    PAUSED = "paused"
    WAITING_APPROVAL = "waiting_approval"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in (RolloutStatus.ROLLED_BACK, RolloutStatus.PROMOTED, RolloutStatus.ABORTED,
                        RolloutStatus.FAILED)


ACTIVE = tuple(s for s in RolloutStatus if not s.done)


class Verdict(StrEnum):
    """One measurement's judgement, as Argo Rollouts names them."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    rollout_id: int
    metric: str
    at: datetime
    value: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    id: int
    model: str
    version: str
    previous_version: str | None
    status: RolloutStatus
    canary: tuple[str, ...]
    rest: tuple[str, ...]
    actor: str
    reason: str
    change_id: int | None
    incident_id: int | None
    retrain_id: int | None
    created_at: datetime
    updated_at: datetime
    analysis_started_at: datetime | None = None
    next_at: datetime | None = None
    ended_at: datetime | None = None
    aborted_by: str | None = None     # who asked for the rollback that ends it as aborted
    # Per metric, the bucket counts measured at the start (``distribution`` metrics' reference).
    reference: Mapping[str, Any] = field(default_factory=dict)
    promoted_by: str | None = None    # a person's promote, or the agent when the analysis passed
    # Started over a failed (or missing) gate: who, why and the gate as it stood ({} when not).
    gate_override: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    """One version of a model as the registry knows it."""

    model: str
    version: str
    status: str              # candidate, canary, serving, retired, rolled_back, rejected
    created_at: datetime
    created_by: str
    deployed_at: datetime | None = None
    deployed_by: str | None = None
    baseline_id: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)
    rollout_id: int | None = None
    outcome: str | None = None
    # Rolled out although its gate failed or it never passed one: who, why, when ({} when not).
    override: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gate_word(self) -> str:
        """``passed``, ``failed``, or ``none`` (never judged); ``, overridden`` when rolled out anyway."""
        word = "none" if not self.gate else "passed" if self.gate.get("passed") else "failed"
        return word + (", overridden" if self.override else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """One stretch of time a version served, and what put it there."""

    model: str
    version: str
    since: datetime
    until: datetime | None
    source: str     # found at start, a rollout, a remediation run, a recorded change, or nothing known
    actor: str


class RetrainStatus(StrEnum):
    PASSED = "passed"          # the gate passed and a rollout started
    REJECTED = "rejected"      # the gate failed: escalated, no rollout
    FAILED = "failed"          # the playbook failed or wrote no metrics
    SKIPPED = "skipped"        # over the retrain limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrain:
    id: int
    model: str
    candidate: str | None
    status: RetrainStatus
    reason: str
    at: datetime
    actor: str
    incident_id: int | None
    metrics: Mapping[str, float]
    current_metrics: Mapping[str, float]
    gate: Mapping[str, Any]
    rollout_id: int | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def rollout_dict(rollout: Rollout) -> dict[str, Any]:
    """A rollout as JSON (CLI ``--json`` and the HTTP API)."""
    return {"id": rollout.id, "model": rollout.model, "version": rollout.version,
            "previous_version": rollout.previous_version, "status": rollout.status.value,
            "canary": list(rollout.canary), "rest": list(rollout.rest), "actor": rollout.actor,
            "reason": rollout.reason, "change_id": rollout.change_id, "incident_id": rollout.incident_id,
            "retrain_id": rollout.retrain_id, "created_at": _iso(rollout.created_at),
            "updated_at": _iso(rollout.updated_at), "analysis_started_at": _iso(rollout.analysis_started_at),
            "next_at": _iso(rollout.next_at), "ended_at": _iso(rollout.ended_at), "aborted_by": rollout.aborted_by,
            "promoted_by": rollout.promoted_by, "gate_override": dict(rollout.gate_override) or None}


def measurement_dict(m: Measurement) -> dict[str, Any]:
    return {"metric": m.metric, "at": m.at.isoformat(), "value": m.value, "verdict": m.verdict.value,
            "reason": m.reason}


def version_dict(v: ModelVersion) -> dict[str, Any]:
    return {"model": v.model, "version": v.version, "status": v.status, "created_at": _iso(v.created_at),
            "created_by": v.created_by, "deployed_at": _iso(v.deployed_at), "deployed_by": v.deployed_by,
            "baseline_id": v.baseline_id, "metrics": dict(v.metrics), "gate": dict(v.gate),
            "rollout_id": v.rollout_id, "outcome": v.outcome, "gate_result": v.gate_word,
            "override": dict(v.override) or None}


def served_dict(s: Served) -> dict[str, Any]:
    return {"model": s.model, "version": s.version, "since": s.since.isoformat(), "until": _iso(s.until),
            "source": s.source, "actor": s.actor}


def retrain_dict(r: Retrain) -> dict[str, Any]:
    return {"id": r.id, "model": r.model, "candidate": r.candidate, "status": r.status.value, "reason": r.reason,
            "at": r.at.isoformat(), "actor": r.actor, "incident_id": r.incident_id, "metrics": dict(r.metrics),
            "current_metrics": dict(r.current_metrics), "gate": dict(r.gate), "rollout_id": r.rollout_id}
