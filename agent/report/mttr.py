"""MTTD, MTTA and MTTR per group, the share auto-remediated, and automation vs by hand.

Every figure counts episodes: each outage of an incident (the one that opened it, and each
recurrence that reopened it) with its own times. Definitions (docs/reports.md), all from UTC
epoch seconds:

- MTTD = detected_at − started_at (started_at is the outage's first anomalous point);
- MTTA = acknowledged_at − detected_at, over the episodes someone acknowledged;
- MTTR = resolved_at − started_at, over resolved episodes only. Unresolved episodes are
  counted (``unresolved``) but left out of the MTTR figures.

An episode is auto-remediated when its resolution is ``remediation`` and the remediation was
verified (``remediation_verified_at`` set); every other resolved episode was resolved without
a verified remediation ("by hand"). The comparison pits the two against each other per kind of
incident (the metric of its first signal), and pooled over the kinds that have both, so a
faster mean is not just easier incidents. Everything is aggregated with pandas group-bys:
no Python loop runs over incidents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from agent.report.period import Period, week_labels
from agent.store.reports import ReportStore

GROUPINGS = ("service", "severity", "rule", "detector", "model", "week")
DURATIONS = ("mttd", "mtta", "mttr")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stat:
    """One duration over a set of episodes, in seconds (None when no episode has it)."""

    n: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupFigures:
    """Counts of episodes (outages), but ``incidents``: the distinct incidents they belong to."""

    group: str
    incidents: int
    episodes: int
    resolved: int
    unresolved: int
    acknowledged: int
    auto_remediated: int
    auto_share: float | None  # auto-remediated / resolved, 0..1
    mttd: Stat
    mtta: Stat
    mttr: Stat


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """MTTR of incidents of one kind resolved by a verified remediation vs without one."""

    kind: str
    auto: Stat
    manual: Stat

    @property
    def speedup(self) -> float | None:
        """Mean MTTR by hand / mean MTTR automated (higher = automation saves more time)."""
        if not self.auto.mean_s or self.manual.mean_s is None:
            return None
        return self.manual.mean_s / self.auto.mean_s


@dataclass(frozen=True, slots=True, kw_only=True)
class MttrReport:
    period: Period
    by: str | None
    generated_at: datetime
    total: GroupFigures
    model: GroupFigures  # the model incidents (drift, inference latency, model errors)
    groups: tuple[GroupFigures, ...]
    comparison: tuple[Comparison, ...]
    comparison_total: Comparison  # pooled over the kinds in ``comparison``


def incident_durations(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds mttd, mtta, mttr (seconds; NaN where undefined) and ``is_acked``, per episode. The
    store decided ``is_resolved`` (the episode has a resolved_at) and ``is_auto``."""
    frame = frame.copy()
    frame["is_acked"] = frame["acknowledged_at"].notna()
    frame["mttd"] = frame["detected_at"] - frame["started_at"]
    frame["mtta"] = frame["acknowledged_at"] - frame["detected_at"]
    frame["mttr"] = (frame["resolved_at"] - frame["started_at"]).where(frame["is_resolved"])
    return frame


def mttr_report(store: ReportStore, period: Period, *, by: str | None = None, tz: str = "UTC",
                now: datetime) -> MttrReport:
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"expected a grouping among {', '.join(GROUPINGS)}, found {by!r}")
    frame = incident_durations(store.incident_times(period.since_s, period.until_s))
    return report_from_frame(frame, period, by=by, tz=tz, now=now)


def report_from_frame(frame: pd.DataFrame, period: Period, *, by: str | None, tz: str, now: datetime) -> MttrReport:
    """The report over ``incident_durations(...)`` rows already read (the weekly page reuses them)."""
    if by == "week":
        frame["week"] = week_labels(frame["started_at"], tz)
    comparison = compare(frame)
    return MttrReport(
        period=period, by=by, generated_at=now,
        total=_figures(frame.assign(_all="all"), "_all")[0] if len(frame) else empty_figures("all"),
        model=_model_row(frame),
        groups=tuple(_figures(frame, by)) if by else (),
        comparison=comparison,
        comparison_total=_pooled(frame, [c.kind for c in comparison]),
    )


def empty_figures(group: str) -> GroupFigures:
    none = Stat(n=0, mean_s=None, median_s=None, p90_s=None)
    return GroupFigures(group=group, incidents=0, episodes=0, resolved=0, unresolved=0, acknowledged=0, auto_remediated=0,
                        auto_share=None, mttd=none, mtta=none, mttr=none)


def _model_row(frame: pd.DataFrame) -> GroupFigures:
    models = frame[frame["is_model"]]
    return _figures(models.assign(_all="model incidents"), "_all")[0] if len(models) else empty_figures("model incidents")


def _figures(frame: pd.DataFrame, key: str) -> list[GroupFigures]:
    if frame.empty:
        return []
    grouped = frame.groupby(key, sort=True)
    counts = grouped.agg(incidents=("id", "nunique"), episodes=("id", "size"), resolved=("is_resolved", "sum"),
                         acknowledged=("is_acked", "sum"), auto=("is_auto", "sum"))
    stats = _stats(grouped)
    out = []
    for group, row in counts.iterrows():  # one iteration per group, not per incident
        resolved = int(row["resolved"])
        out.append(GroupFigures(
            group=str(group), incidents=int(row["incidents"]), episodes=int(row["episodes"]), resolved=resolved,
            unresolved=int(row["episodes"]) - resolved, acknowledged=int(row["acknowledged"]),
            auto_remediated=int(row["auto"]), auto_share=(int(row["auto"]) / resolved) if resolved else None,
            **{name: stats[name][group] for name in DURATIONS}))
    return out


def _stats(grouped: "pd.core.groupby.DataFrameGroupBy", columns: tuple[str, ...] = DURATIONS) -> dict[str, dict[object, Stat]]:
    """Per duration column, per group: count, mean, median and p90 (linear interpolation)."""
    agg = grouped[list(columns)].agg(["count", "mean", "median"])
    p90 = grouped[list(columns)].quantile(0.9)
    result: dict[str, dict[object, Stat]] = {}
    for column in columns:
        result[column] = {
            group: Stat(n=int(agg.at[group, (column, "count")]),
                        mean_s=_num(agg.at[group, (column, "mean")]),
                        median_s=_num(agg.at[group, (column, "median")]),
                        p90_s=_num(p90.at[group, column]))
            for group in agg.index}
    return result


def _num(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]


def _stat(values: pd.Series) -> Stat:
    values = values.dropna()
    if values.empty:
        return Stat(n=0, mean_s=None, median_s=None, p90_s=None)
    return Stat(n=int(values.size), mean_s=float(values.mean()), median_s=float(values.median()),
                p90_s=float(np.quantile(values.to_numpy(), 0.9)))


def compare(frame: pd.DataFrame) -> tuple[Comparison, ...]:
    """Per kind that has both auto-remediated and by-hand resolved incidents."""
    resolved = frame[frame["is_resolved"]]
    if resolved.empty:
        return ()
    both = resolved.groupby("kind")["is_auto"].agg(["any", "all"])
    kinds = sorted(both.index[both["any"] & ~both["all"]])
    chosen = resolved[resolved["kind"].isin(kinds)]
    grouped = chosen.assign(how=np.where(chosen["is_auto"], "auto", "manual")).groupby(["kind", "how"])
    stats = _stats(grouped, ("mttr",))["mttr"]
    return tuple(Comparison(kind=k, auto=stats[(k, "auto")], manual=stats[(k, "manual")]) for k in kinds)


def _pooled(frame: pd.DataFrame, kinds: list[str]) -> Comparison:
    chosen = frame[frame["is_resolved"] & frame["kind"].isin(kinds)]
    return Comparison(kind="all comparable kinds", auto=_stat(chosen.loc[chosen["is_auto"], "mttr"]),
                      manual=_stat(chosen.loc[~chosen["is_auto"], "mttr"]))
