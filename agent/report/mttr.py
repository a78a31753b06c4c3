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
faster mean is not just easier incidents. SQLite decides each episode's group, kind, flags and
durations in one pass (``ReportStore.episode_figures``); numpy counts and sums per group, and
partitions each group's values at the ranks its median and P90 read: no Python loop runs over
episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from agent.report.period import Period, week_labels
from agent.store.reports import AUTO, FIRST, MODEL, RESOLVED, ReportStore

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
    figures = store.episode_figures(period.since_s, period.until_s, by=by)
    return _report(figures, period, by=by, tz=tz, now=now)


def report_from_frame(frame: pd.DataFrame, period: Period, *, by: str | None, tz: str, now: datetime) -> MttrReport:
    """The report over ``incident_durations(...)`` rows already read (the weekly page reuses them)."""
    flags = (frame["is_resolved"].to_numpy(bool) * RESOLVED + frame["is_auto"].to_numpy(bool) * AUTO
             + frame["is_model"].to_numpy(bool) * MODEL + ~frame["id"].duplicated().to_numpy() * FIRST)
    figures = pd.DataFrame({"id": frame["id"], "started_at": frame["started_at"],
                            "group": frame[by] if by and by != "week" else None, "kind": frame["kind"],
                            "flags": flags, "mttd": frame["mttd"], "mtta": frame["mtta"], "mttr": frame["mttr"]})
    return _report(figures, period, by=by, tz=tz, now=now)


def _report(figures: pd.DataFrame, period: Period, *, by: str | None, tz: str, now: datetime) -> MttrReport:
    if by == "week":
        figures["group"] = week_labels(figures["started_at"], tz)
    # Plain arrays from here on: a boolean selection of the frame would copy every column.
    columns = {name: figures[name].to_numpy("float64") for name in DURATIONS}
    columns["flags"] = figures["flags"].to_numpy("int64")
    if by == "week":
        columns["id"] = figures["id"].to_numpy("int64")
    kind_codes, kinds = _codes(figures["kind"])
    comparison, pooled = compare(columns, kind_codes, kinds)
    everything = np.zeros(len(figures), dtype="int64")
    model = (columns["flags"] & MODEL) != 0
    return MttrReport(
        period=period, by=by, generated_at=now,
        total=_figures(columns, everything, ["all"])[0] if len(figures) else empty_figures("all"),
        model=_figures({k: v[model] for k, v in columns.items()}, everything[model], ["model incidents"])[0]
        if model.any() else empty_figures("model incidents"),
        groups=tuple(_figures(columns, *_codes(figures["group"]), per_episode=by == "week")) if by and len(figures)
        else (),
        comparison=comparison,
        comparison_total=pooled,
    )


def empty_figures(group: str) -> GroupFigures:
    none = Stat(n=0, mean_s=None, median_s=None, p90_s=None)
    return GroupFigures(group=group, incidents=0, episodes=0, resolved=0, unresolved=0, acknowledged=0, auto_remediated=0,
                        auto_share=None, mttd=none, mtta=none, mttr=none)


def _codes(keys: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's group as 0..n-1, and the n group names in sorted order (a categorical's own
    codes and categories when they are sorted: a category with no row gets no row's code)."""
    if isinstance(keys.dtype, pd.CategoricalDtype) and keys.cat.categories.is_monotonic_increasing:
        return keys.cat.codes.to_numpy("int64"), [str(name) for name in keys.cat.categories]
    codes, names = pd.factorize(keys.astype(str), sort=True)
    return codes.astype("int64"), [str(name) for name in names]


def _figures(columns: dict[str, np.ndarray], codes: np.ndarray, names: list[str], *,
             per_episode: bool = False) -> list[GroupFigures]:
    """One GroupFigures per name; ``codes`` gives each episode's index into ``names``. A grouping
    by something of the incident puts all its episodes in one group, so counting FIRST flags
    counts its distinct incidents; a ``per_episode`` grouping (the week) counts them by id."""
    size = len(names)
    flags = columns["flags"]
    resolved = np.bincount(codes, weights=(flags & RESOLVED) != 0, minlength=size).astype(int)
    auto = np.bincount(codes, weights=(flags & AUTO) != 0, minlength=size).astype(int)
    episodes = np.bincount(codes, minlength=size)
    if per_episode:
        ids = columns["id"]
        pairs = np.unique(codes * (int(ids.max(initial=0)) + 1) + ids)  # distinct (group, incident)
        incidents = np.bincount(pairs // (int(ids.max(initial=0)) + 1), minlength=size)
    else:
        incidents = np.bincount(codes, weights=(flags & FIRST) != 0, minlength=size).astype(int)
    stats = {name: _stats(codes, size, columns[name]) for name in DURATIONS}
    return [GroupFigures(
        group=group, incidents=int(incidents[g]), episodes=int(episodes[g]), resolved=int(resolved[g]),
        unresolved=int(episodes[g] - resolved[g]), acknowledged=stats["mtta"][g].n, auto_remediated=int(auto[g]),
        auto_share=int(auto[g]) / int(resolved[g]) if resolved[g] else None,
        **{name: stats[name][g] for name in DURATIONS}) for g, group in enumerate(names)]


def _stats(codes: np.ndarray, size: int, values: np.ndarray) -> list[Stat]:
    """Per group 0..size-1: count, mean, median and P90 (linear interpolation, as pandas and
    numpy compute them) of the values that are not NaN. Each group's values are partitioned at
    just the ranks the median and P90 read (the same values a full sort puts there, in linear
    time)."""
    kept = ~np.isnan(values)
    codes, values = codes[kept], values[kept]  # a copy: partitioned in place below
    n = np.bincount(codes, minlength=size)
    sums = np.bincount(codes, weights=values, minlength=size)
    first = np.cumsum(n) - n
    if size > 1:  # group the values (a stable radix sort on small codes)
        values = values[np.argsort(codes.astype("int16" if size < 2 ** 15 else "int64"), kind="stable")]
    out = []
    for g in range(size):  # one iteration per group, not per episode
        count = int(n[g])
        if count == 0:
            out.append(Stat(n=0, mean_s=None, median_s=None, p90_s=None))
            continue
        group = values[first[g]:first[g] + count]
        p90_low = int(np.floor(0.9 * (count - 1)))
        group.partition(sorted({(count - 1) // 2, count // 2, p90_low, min(p90_low + 1, count - 1)}))
        out.append(Stat(n=count, mean_s=float(sums[g] / count),
                        median_s=float((group[(count - 1) // 2] + group[count // 2]) / 2),
                        p90_s=_quantile(group, 0.9)))
    return out


def _quantile(ordered: np.ndarray, q: float) -> float:
    """Linear interpolation between the two closest ranks (pandas' groupby quantile); ``ordered``
    needs only the values at those two ranks in their sorted places."""
    position = q * (len(ordered) - 1)
    low = int(np.floor(position))
    fraction = position - low
    if fraction == 0.0:
        return float(ordered[low])
    return float(ordered[low] + (ordered[low + 1] - ordered[low]) * fraction)


def compare(columns: dict[str, np.ndarray], kind_codes: np.ndarray,
            kinds: list[str]) -> tuple[tuple[Comparison, ...], Comparison]:
    """Per kind that has both auto-remediated and by-hand resolved episodes, and pooled over
    those kinds. ``kind_codes`` index each episode's kind in ``kinds``."""
    flags = columns["flags"]
    resolved = (flags & RESOLVED) != 0
    auto = (flags[resolved] & AUTO) != 0
    codes = kind_codes[resolved]
    with_auto = np.bincount(codes, weights=auto, minlength=len(kinds))
    with_both = (with_auto > 0) & (with_auto < np.bincount(codes, minlength=len(kinds)))
    comparable = with_both[codes]
    mttr = columns["mttr"][resolved][comparable]
    # Group 2k is kind k automated, 2k + 1 kind k by hand; the two pooled groups follow.
    stats = _stats(codes[comparable] * 2 + ~auto[comparable], 2 * len(kinds), mttr)
    pooled = _stats((~auto[comparable]).astype("int64"), 2, mttr)
    comparison = tuple(Comparison(kind=kind, auto=stats[2 * k], manual=stats[2 * k + 1])
                       for k, kind in enumerate(kinds) if with_both[k])
    return comparison, Comparison(kind="all comparable kinds", auto=pooled[0], manual=pooled[1])
