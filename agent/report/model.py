"""The governance report of one model: what an auditor asks ("which version served on day X,
who approved it, on what evidence"), as JSON and as one self-contained HTML page.

It reads the store only: the registry's versions, rollouts with their measurements, retrains
with their gate results, the model's incidents with their MTTR, drift hits and latency P95 per
day, and the audit entries behind each of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.incidents.summary import title_of
from agent.report.period import Period
from agent.report.render import environment
from agent.flow.rollouts import (
    RetrainStatus,
    RolloutStatus,
    measurement_dict,
    retrain_dict,
    rollout_dict,
    version_dict,
)

if TYPE_CHECKING:
    from agent.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelReport:
    model: str
    period: Period
    generated_at: datetime
    versions: list[dict[str, Any]]
    rollouts: list[dict[str, Any]]
    retrains: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    days: list[dict[str, Any]]
    audit: list[dict[str, Any]]

    @property
    def mttr_s(self) -> float | None:
        """Mean time from start to resolved over the model's resolved incidents."""
        done = [i["mttr_s"] for i in self.incidents if i["mttr_s"] is not None]
        return sum(done) / len(done) if done else None

    @property
    def counts(self) -> dict[str, int]:
        statuses = [r["status"] for r in self.rollouts]
        return {"rollouts": len(self.rollouts), "promoted": statuses.count(RolloutStatus.PROMOTED.value),
                "rolled_back": statuses.count(RolloutStatus.ROLLED_BACK.value),
                "aborted": statuses.count(RolloutStatus.ABORTED.value),
                "retrains": len(self.retrains),
                "gates_passed": sum(r["status"] == RetrainStatus.PASSED.value for r in self.retrains),
                "gates_failed": sum(r["status"] == RetrainStatus.REJECTED.value for r in self.retrains),
                "incidents": len(self.incidents)}


def model_report(store: Store, model: str, period: Period, *, now: datetime) -> ModelReport:
    since, until = period.since, period.until
    rollouts = [r for r in store.list_rollouts(model=model, limit=None) if since <= r.created_at < until]
    rollouts.reverse()  # oldest first: a report reads as a history
    retrains = store.list_retrains(model, since=since)
    retrains = [r for r in retrains if r.at < until]
    incident_ids = store.model_incident_ids(model, since, until)
    incidents = []
    for incident_id in incident_ids:
        incident = store.get_incident(incident_id)
        if incident is None:
            continue
        resolved = incident.resolved_at
        incidents.append({"id": incident.id, "title": title_of(store, incident), "severity": str(incident.severity),
                          "status": str(incident.status), "started_at": incident.started_at.isoformat(),
                          "resolved_at": resolved.isoformat() if resolved else None,
                          "resolution": incident.resolution,
                          "mttr_s": (resolved - incident.started_at).total_seconds() if resolved else None})
    subjects = [f"model:{model}", *(f"rollout:{r.id}" for r in rollouts), *(f"incident:{i}" for i in incident_ids),
                *(f"change:{r.change_id}" for r in rollouts if r.change_id)]
    audit = [{"id": e.id, "ts": e.ts.isoformat(), "actor": e.actor, "action": e.action, "subject": e.subject,
              "details": dict(e.details), "hash": e.hash} for e in store.audit_for(subjects, since, until)]
    return ModelReport(
        model=model, period=period, generated_at=now,
        versions=[version_dict(v) for v in store.model_versions(model)],
        rollouts=[{**rollout_dict(r), "measurements": [measurement_dict(m) for m in store.measurements(r.id)]}
                  for r in rollouts],
        retrains=[retrain_dict(r) for r in retrains], incidents=incidents,
        days=store.model_daily_health(model, since, until), audit=audit)


def as_dict(report: ModelReport) -> dict[str, Any]:
    return {"model": report.model,
            "period": {"since": report.period.since.isoformat(), "until": report.period.until.isoformat()},
            "generated_at": report.generated_at.isoformat(), "counts": report.counts, "mttr_s": report.mttr_s,
            "versions": report.versions, "rollouts": report.rollouts, "retrains": report.retrains,
            "incidents": report.incidents, "days": report.days, "audit": report.audit}


def as_json(report: ModelReport) -> str:
    return json.dumps(as_dict(report), indent=2)


def as_html(report: ModelReport) -> str:
    """One page, no script, no network: label values and versions are escaped (autoescape)."""
    return environment().get_template("model.html").render(report=report, counts=report.counts,
                                                           mttr_s=report.mttr_s, dumps=_short_json)


def _short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."
