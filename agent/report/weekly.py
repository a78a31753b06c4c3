"""The weekly review as one self-contained HTML page.

MTTR per week (plot and table), incidents by service and severity, the noisiest series and
detectors (alert fatigue: tuning candidates, with pages per day), remediation success per
playbook, the remediation ledger (per rule: verified, not fixed, rolled back, failed, median time
to verify, last failure, how it runs now), open incidents, and model health (drift rate and
inference latency P95 per model).
Images are PNG data URIs and the page loads nothing from the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agent.clock import to_epoch
from agent.flow.incidents import Severity
from agent.incidents.summary import title_of
from agent.report import plots
from agent.report.ledger import rules_table
from agent.report.mttr import incident_durations, report_from_frame
from agent.report.period import Period, week_labels
from agent.report.render import environment, rows_of
from remediations.ledger import build_ledger

if TYPE_CHECKING:
    from agent.store import Store

OPEN_SHOWN = 50
SEVERITY_RANK = {s.value: s.rank for s in Severity}


def weekly_report(store: "Store", period: Period, *, tz: str = "UTC", now: datetime,
                  modes: Mapping[str, str] | None = None) -> str:
    """``modes``: how each remediation rule runs now, for the ledger's mode column."""
    frame = incident_durations(store.incident_times(period.since_s, period.until_s))
    summary = report_from_frame(frame, period, by=None, tz=tz, now=now)
    weeks = _weeks(frame, period, tz)
    by_service = _by_service(frame)
    runs = store.run_outcomes(period.since_s, period.until_s)
    decided = runs["succeeded"] + runs["failed"]
    runs["success_rate"] = (runs["succeeded"] / decided.where(decided > 0)).astype("float64")
    noisy = store.noisy_signals(period.since_s, period.until_s)
    noisy["pages_per_day"] = noisy["pages"] / period.days
    noisy["incidents_per_day"] = noisy["incidents"] / period.days
    open_incidents = store.open_incident_rows()
    open_incidents["age_s"] = float(to_epoch(now)) - open_incidents["started_at"]
    open_incidents["rank"] = open_incidents["severity"].map(SEVERITY_RANK).fillna(0)
    # Most severe first, then oldest: the page lists the first OPEN_SHOWN and counts the rest.
    open_incidents = open_incidents.sort_values(["rank", "age_s"], ascending=False, kind="stable")
    models = store.model_health(period.since_s, period.until_s)
    return environment().get_template("weekly.html").render(
        report=summary, rows=rows_of(summary), period=period, tz=tz, generated_at=now,
        weeks=weeks, weeks_plot=plots.mttr_per_week(weeks) if len(frame) else None,
        by_service=by_service, service_plot=plots.incidents_by_service(by_service) if len(frame) else None,
        noisy=noisy.to_dict("records"), runs=runs.to_dict("records"),
        open_incidents=_with_titles(store, open_incidents.head(OPEN_SHOWN).to_dict("records")),
        open_total=len(open_incidents),
        models=models.to_dict("records"),
        ledger=rules_table(build_ledger(store, period.since, period.until, now=now, modes=modes)),
        missing=_missing)


def _with_titles(store: "Store", rows: list[dict]) -> list[dict]:
    """The rows with the title every other view gives each incident (from its signals' peaks)."""
    for row in rows:
        incident = store.get_incident(int(row["id"]))
        if incident is not None:
            row["title"] = title_of(store, incident)
    return rows


def _by_service(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts per service (rows) and severity (columns, most severe first)."""
    if frame.empty:
        return pd.DataFrame()
    table = pd.crosstab(frame["service"], frame["severity"])
    order = [s for s in ("critical", "warning", "info") if s in table.columns]
    return table[order + sorted(c for c in table.columns if c not in order)]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _weeks(frame: pd.DataFrame, period: Period, tz: str) -> pd.DataFrame:
    """One row per week of the period (weeks without outages too): episodes by the week they started."""
    days = pd.Series(np.append(np.arange(period.since_s, period.until_s, 86400.0), period.until_s - 1e-3))
    every = pd.Index(week_labels(days, tz).unique(), name="week")
    columns = ["episodes", "unresolved", "mttr_mean_s", "mttr_median_s", "mttr_p90_s"]
    if frame.empty:
        return pd.DataFrame(0.0, index=every, columns=columns).assign(
            mttr_mean_s=np.nan, mttr_median_s=np.nan, mttr_p90_s=np.nan)
    frame = frame.assign(week=week_labels(frame["started_at"], tz))
    grouped = frame.groupby("week")
    weeks = pd.DataFrame({
        "episodes": grouped.size(),
        "unresolved": grouped["is_resolved"].agg(lambda s: int((~s).sum())),
        "mttr_mean_s": grouped["mttr"].mean(),
        "mttr_median_s": grouped["mttr"].median(),
        "mttr_p90_s": grouped["mttr"].quantile(0.9),
    })
    return weeks.reindex(every.union(weeks.index)).fillna({"episodes": 0, "unresolved": 0})
