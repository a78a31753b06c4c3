"""The governance report of one model: what an auditor asks ("which version served on day X,
who approved it, on what evidence"), as JSON and as one self-contained HTML page.

It reads the store: the registry's versions (gates passed or failed, overrides standing out),
what served when and what put it there, rollouts with their measurements, retrains with what
asked for them and their gates, the model's incidents with their MTTR, the remediation ledger of
those incidents, drift hits per day, and the audit entries behind each of them (every change of
what serves, and the runs that changed it). Latency P95 per day comes from where the agent reads
metrics (``agent.report.latency``): Prometheus, or the store's sample history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.flow.rollouts import (
    Measurement,
    ModelVersion,
    Retrain,
    RetrainStatus,
    Rollout,
    RolloutStatus,
    Served,
    measurement_dict,
    retrain_dict,
    rollout_dict,
    served_dict,
    version_dict,
)
from agent.incidents.summary import title_of
from agent.report import ledger as ledger_faces
from agent.report.latency import LatencyByDay
from agent.report.period import Period
from agent.report.render import environment
from agent.rollouts import views
from remediations.ledger import Ledger, build_ledger, ledger_dict

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
    served: list[Served]
    ledger: Ledger
    # The records behind the tables (the dicts above are their JSON).
    version_rows: list[ModelVersion]
    rollout_rows: list[tuple[Rollout, list[Measurement]]]
    retrain_rows: list[Retrain]
    latency_from: str = "the store's sample history"

    @property
    def overrides(self) -> list[dict[str, Any]]:
        """Rollouts started although their version's gate failed or it never passed one."""
        return [{"rollout": r["id"], "version": r["version"], "status": r["status"], **r["gate_override"]}
                for r in self.rollouts if r.get("gate_override")]

    @property
    def mttr_s(self) -> float | None:
        """Mean time from start to resolved over the model's resolved incidents."""
        done = [i["mttr_s"] for i in self.incidents if i["mttr_s"] is not None]
        return sum(done) / len(done) if done else None

    @property
    def counts(self) -> dict[str, int]:
        statuses = [r["status"] for r in self.rollouts if not r.get("gate_override")]
        overridden = [r["status"] for r in self.rollouts if r.get("gate_override")]
        return {"rollouts": len(self.rollouts), "promoted": statuses.count(RolloutStatus.PROMOTED.value),
                "promoted_over_gate": overridden.count(RolloutStatus.PROMOTED.value),
                "gate_overrides": len(overridden),
                "rolled_back": statuses.count(RolloutStatus.ROLLED_BACK.value)
                + overridden.count(RolloutStatus.ROLLED_BACK.value),
                "aborted": statuses.count(RolloutStatus.ABORTED.value) + overridden.count(RolloutStatus.ABORTED.value),
                "retrains": len(self.retrains),
                "gates_passed": sum(r["status"] == RetrainStatus.PASSED.value for r in self.retrains),
                "gates_failed": sum(r["status"] == RetrainStatus.REJECTED.value for r in self.retrains),
                "incidents": len(self.incidents)}


def model_report(store: Store, model: str, period: Period, *, now: datetime,
                 latency: LatencyByDay | None = None) -> ModelReport:
    """``latency``: P95 per day from where the agent reads metrics (None: the store's samples)."""
    since, until = period.since, period.until
    rollouts = [r for r in store.list_rollouts(model=model, limit=None) if since <= r.created_at < until]
    rollouts.reverse()  # oldest first: a report reads as a history
    retrains = [r for r in store.list_retrains(model, since=since) if r.at < until]
    incident_ids = store.model_incident_ids(model, since, until)
    incidents = _incidents(store, incident_ids)
    runs = [run.id for i in incident_ids for run in store.list_runs(incident_id=i)]
    changes = [c.id for c in store.list_changes(since=since, limit=None) if c.labels.get("model") == model]
    subjects = [f"model:{model}", *(f"rollout:{r.id}" for r in rollouts), *(f"incident:{i}" for i in incident_ids),
                *(f"change:{c}" for c in changes), *(f"run:{r}" for r in runs)]
    audit = [{"id": e.id, "ts": e.ts.isoformat(), "actor": e.actor, "action": e.action, "subject": e.subject,
              "details": dict(e.details), "hash": e.hash} for e in store.audit_for(subjects, since, until)]
    days = store.model_daily_health(model, since, until)
    if latency is not None:
        days = _with_latency(days, latency(model, since, until))
    measured = [(r, store.measurements(r.id)) for r in rollouts]
    versions = store.model_versions(model)
    return ModelReport(
        model=model, period=period, generated_at=now, versions=[version_dict(v) for v in versions],
        rollouts=[{**rollout_dict(r), "measurements": [measurement_dict(m) for m in ms]} for r, ms in measured],
        retrains=[{**retrain_dict(r), "trigger": views.trigger(r)} for r in retrains], incidents=incidents, days=days,
        audit=audit, served=store.serving_history(model, since=since),
        ledger=build_ledger(store, since, until, now=now, incident_ids=incident_ids),
        version_rows=versions, rollout_rows=measured, retrain_rows=retrains,
        latency_from="the store's sample history" if latency is None else "Prometheus (sources.prometheus)")


def _incidents(store: Store, incident_ids: list[int]) -> list[dict[str, Any]]:
    out = []
    for incident_id in incident_ids:
        incident = store.get_incident(incident_id)
        if incident is None:
            continue
        resolved = incident.resolved_at
        out.append({"id": incident.id, "title": title_of(store, incident), "severity": str(incident.severity),
                    "status": str(incident.status), "started_at": incident.started_at.isoformat(),
                    "resolved_at": resolved.isoformat() if resolved else None, "resolution": incident.resolution,
                    "mttr_s": (resolved - incident.started_at).total_seconds() if resolved else None})
    return out


def _with_latency(days: list[dict[str, Any]], latency: dict[str, float]) -> list[dict[str, Any]]:
    """The store's days with the P95 figures read from the source (days of either kept)."""
    by_day = {d["day"]: {**d, "latency_p95": None} for d in days}
    for day, p95 in latency.items():
        by_day.setdefault(day, {"day": day, "drift_hits": 0, "drift_peak": None})["latency_p95"] = p95
    return [by_day[day] for day in sorted(by_day)]


def as_dict(report: ModelReport) -> dict[str, Any]:
    return {"model": report.model,
            "period": {"since": report.period.since.isoformat(), "until": report.period.until.isoformat()},
            "generated_at": report.generated_at.isoformat(), "counts": report.counts, "mttr_s": report.mttr_s,
            "versions": report.versions, "served": [served_dict(x) for x in report.served],
            "gate_overrides": report.overrides, "rollouts": report.rollouts, "retrains": report.retrains,
            "incidents": report.incidents, "ledger": ledger_dict(report.ledger), "days": report.days,
            "latency_from": report.latency_from, "audit": report.audit}


def as_json(report: ModelReport) -> str:
    return json.dumps(as_dict(report), indent=2)


def as_html(report: ModelReport) -> str:
    """One page, no script, no network: label values and versions are escaped (autoescape)."""
    return environment().get_template("model.html").render(
        report=report, counts=report.counts, mttr_s=report.mttr_s, dumps=_short_json,
        versions=views.versions_table(report.version_rows), served=views.served_table(report.served),
        retrains=views.retrains_table(report.retrain_rows), ledger=ledger_faces.rules_table(report.ledger),
        rollouts=[(r, views.measurements_table(ms)) for r, ms in report.rollout_rows])


def _short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."
