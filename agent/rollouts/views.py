"""What people read about models and rollouts, built once: the CLI prints these tables
(``agent.report.tables.as_text``), the ``/models`` and ``/rollouts`` pages and the governance
report render the same ones in HTML. Times are UTC to the second; gates say passed or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.flow.rollouts import Measurement, ModelVersion, Retrain, Rollout, Served
from agent.report.tables import Table, table, when
from agent.rollouts.serving import serving_now

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store


def models_table(config: "AgentConfig", store: "Store") -> Table:
    """Each configured model: the version the registry says serves, since when and what put it
    there, what its models directory serves (when the agent reads it), and a rollout under way."""
    rows, marks = [], []
    for model in config.models:
        serving = store.serving_version(model.name)
        history = store.serving_history(model.name)
        last = history[-1] if history else None
        there = serving_now(model) if model.serving is not None else None
        active = store.list_rollouts(model=model.name, active=True, limit=1)
        rows.append([model.name, serving.version if serving else "-", when(last.since if last else None),
                     last.source if last else "-", there or ("-" if model.serving is None else "unreadable"),
                     str(len(store.model_versions(model.name))),
                     f"{active[0].id} ({active[0].version}, {active[0].status})" if active else "-"])
        drifted = there is not None and (serving is None or serving.version != there) and not active
        marks.append("warn" if drifted else "")
    return table(["model", "serving", "since", "put there by", "models dir serves", "versions", "rollout under way"],
                 rows, numeric=[5], text=[3], marks=marks, empty="no models configured (models: in the config)",
                 id="models")


def versions_table(versions: Sequence[ModelVersion]) -> Table:
    """Every version the registry knows: status, who made and deployed it, its gate (passed,
    failed, none; overridden stands out), its rollout and outcome."""
    rows, marks = [], []
    for v in versions:
        gate = v.gate_word
        figures = str(v.gate.get("reason", "")) if v.gate else ""
        if v.override:
            figures = (f"OVERRIDDEN by {v.override.get('by')}: {v.override.get('reason')}"
                       + (f" ({figures})" if figures else ""))
        rows.append([v.version, v.status, when(v.created_at), v.created_by, when(v.deployed_at), v.deployed_by or "-",
                     gate, figures or "-", str(v.rollout_id or "-"), v.outcome or "-"])
        marks.append("warn" if v.override else "bad" if v.gate and not v.gate.get("passed") else "")
    return table(["version", "status", "created", "by", "deployed", "deployed by", "gate", "gate figures",
                  "rollout", "outcome"], rows, text=[7, 9], marks=marks,
                 empty="The registry knows no version of this model.", id="versions")


def served_table(history: Sequence[Served]) -> Table:
    """What served when, and what put it there."""
    rows = [[s.version, when(s.since), when(s.until) if s.until else "now", s.source, s.actor] for s in history]
    return table(["version", "from", "until", "put there by", "actor"], rows, text=[3],
                 empty="Nothing recorded as serving yet.", id="served")


def trigger(r: Retrain) -> str:
    """What asked for a retrain."""
    if r.incident_id is not None:
        return f"drift incident #{r.incident_id}"
    return f"{r.actor}: {r.reason.split('; ')[0]}"


def retrains_table(retrains: Sequence[Retrain]) -> Table:
    rows, marks = [], []
    for r in retrains:
        rows.append([when(r.at), trigger(r), r.candidate or "-", r.status.value,
                     str(r.gate.get("reason")) if r.gate else r.reason, str(r.rollout_id or "-")])
        marks.append("bad" if r.status.value in ("rejected", "failed") else "")
    return table(["at", "asked by", "candidate", "result", "gate", "rollout"], rows, text=[1, 4], marks=marks,
                 empty="No retrain.", id="retrains")


def rollouts_table(rollouts: Sequence[Rollout]) -> Table:
    rows, marks = [], []
    for r in rollouts:
        rows.append([str(r.id), r.model, r.version, r.previous_version or "-", r.status.value, when(r.created_at),
                     r.actor, when(r.ended_at), f"#{r.incident_id}" if r.incident_id else "-",
                     f"overridden by {r.gate_override.get('by')}" if r.gate_override else "-"])
        marks.append("warn" if r.gate_override else "")
    return table(["id", "model", "version", "previous", "status", "started", "by", "ended", "incident", "gate"],
                 rows, numeric=[0], marks=marks, empty="no rollouts", id="rollouts")


def rollout_table(r: Rollout) -> Table:
    """One rollout as field and value."""
    fields = [("rollout", str(r.id)), ("model", r.model), ("version", r.version),
              ("previous", r.previous_version or "unknown"), ("status", r.status.value),
              ("canary", ", ".join(r.canary) or "-"), ("other hosts", ", ".join(r.rest) or "-"),
              ("started", f"{when(r.created_at)} by {r.actor}" + (f" ({r.reason})" if r.reason else "")),
              ("analysis from", when(r.analysis_started_at)), ("next measurement", when(r.next_at)),
              ("ended", when(r.ended_at)), ("promoted by", r.promoted_by or "-"), ("aborted by", r.aborted_by or "-"),
              ("incident", f"#{r.incident_id}" if r.incident_id else "-"),
              ("retrain", str(r.retrain_id) if r.retrain_id else "-")]
    if r.gate_override:
        fields.append(("gate", f"OVERRIDDEN by {r.gate_override.get('by')}: {r.gate_override.get('reason')} "
                               f"({r.gate_override.get('problem', '')})"))
    return table(["", ""], fields, text=[1], id="rollout")


def measurements_table(measurements: Sequence[Measurement]) -> Table:
    rows = [[when(m.at), m.metric, "-" if m.value is None else f"{m.value:.4g}", m.verdict.value, m.reason]
            for m in measurements]
    marks = ["bad" if m.verdict.value == "failed" else "warn" if m.verdict.value == "inconclusive" else ""
             for m in measurements]
    return table(["at", "metric", "value", "verdict", "why"], rows, numeric=[2], text=[4], marks=marks,
                 empty="No measurement yet.", id="measurements")
