"""The replay's report, read from its throwaway store and kept hits: what would have paged,
what would have run, what made the noise, day by day.

A page is an episode: an incident opening, or reopening after it resolved (the unit the page
budget counts). Notifications are the routed events the throwaway outbox holds, per channel:
``would send`` (pending) or ``silenced`` (a paging channel kept quiet for a flapping reopen).
A remediation decision is one shadow run: ``would run`` (mode auto, within every gate; later
limits and cooldowns count it), ``held for approval`` (mode approve), ``check only`` (mode
suggest), or ``stopped`` by a gate (rate limit, cooldown, circuit breaker, pause) with its reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from agent.flow.incidents import Incident
from agent.flow.runs import Run, RunMode
from agent.incidents.catalog import catalog_of
from agent.replay.hits import KeptHit
from agent.replay.run import DayRead, Replayed
from agent.store import open_store
from agent.store.outbox import OutboxStatus

TOP = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentLine:
    id: int
    title: str
    severity: str
    started_at: datetime
    detected_at: datetime
    resolved_at: datetime | None  # None: still open when the range ended
    duration_s: float  # to its resolution, or to the range's end
    episodes: int
    signals: tuple[str, ...]  # "metric{labels} (detector)", the strongest first
    graph_url: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleLine:
    rule: str
    would_run: int
    held_for_approval: int
    check_only: int
    stopped: int
    stopped_because: tuple[str, ...]  # distinct reasons, first seen first


@dataclass(frozen=True, slots=True, kw_only=True)
class DayLine:
    day: str  # the day's start, UTC
    rows: int
    series: int
    hits: int
    incidents: int  # opened that day
    pages: int
    would_run: int
    gap: bool  # nothing read: the source was down or kept nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class Count:
    name: str
    hits: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    start: datetime
    end: datetime
    source: str
    days: int  # days with data replayed
    incidents: tuple[IncidentLine, ...]
    pages: int
    pages_per_day: float
    notifications: dict[str, dict[str, int]]  # channel -> {"would send": n, "silenced": n}
    rules: tuple[RuleLine, ...]
    noisiest_series: tuple[Count, ...]
    noisiest_detectors: tuple[Count, ...]
    timeline: tuple[DayLine, ...]
    notes: tuple[str, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def build_report(replayed: Replayed, *, top: int = TOP, notes: Sequence[str] = ()) -> Report:
    store = open_store(replayed.state_dir)
    try:
        incidents = store.list_incidents()
        runs = store.list_runs()
        outbox = store.outbox.items()
    finally:
        store.close()
    hits = replayed.hits()
    catalog = catalog_of(replayed.config)
    end = replayed.end
    lines = tuple(sorted((_incident_line(i, catalog, end) for i in incidents), key=lambda line: line.started_at))
    with_data = [d for d in replayed.days if not d.empty]
    days = sum((d.end - d.start).total_seconds() for d in with_data) / 86400.0
    pages = sum(len(i.episodes) for i in incidents)
    notifications: dict[str, dict[str, int]] = {}
    for item in outbox:
        counts = notifications.setdefault(item.channel, {"would send": 0, "silenced": 0})
        counts["silenced" if item.status is OutboxStatus.SILENCED else "would send"] += 1
    return Report(
        start=replayed.start, end=end, source=replayed.source, days=len(with_data), incidents=lines, pages=pages,
        pages_per_day=round(pages / days, 3) if days else 0.0, notifications=notifications, rules=_rules(runs),
        noisiest_series=_top(Counter(k.hit.series_id for k in hits), top),
        noisiest_detectors=_top(Counter(k.hit.detector for k in hits), top),
        timeline=_timeline(replayed.days, hits, incidents, runs), notes=(*replayed.notes, *notes))


def _incident_line(incident: Incident, catalog, end: datetime) -> IncidentLine:
    signals = sorted(incident.signals, key=lambda s: (-(s.peak_score or 0.0), s.first_at))
    until = incident.resolved_at or end
    # the strongest signal the graph tool can draw (an entity's score is not a series there)
    links = (catalog.graph_url(s, end=until + timedelta(minutes=30)) for s in signals)
    url = next((link for link in links if link), None)
    return IncidentLine(
        id=incident.id, title=incident.title, severity=incident.severity.value, started_at=incident.started_at,
        detected_at=incident.detected_at, resolved_at=incident.resolved_at,
        duration_s=max((until - incident.started_at).total_seconds(), 0.0), episodes=len(incident.episodes),
        signals=tuple(f"{s.metric or s.series_id}{_labels(s.labels)} ({s.detector})" for s in signals), graph_url=url)


def _labels(labels) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


def decision(run: Run) -> str:
    """``would_run``, ``held_for_approval``, ``check_only`` or ``stopped`` (see the module's text)."""
    if "would not run" in (run.reason or ""):
        return "stopped"
    if run.rule_mode == "approve":
        return "held_for_approval"
    if run.rule_mode == "suggest":
        return "check_only"
    return "would_run"


def _rules(runs: Sequence[Run]) -> tuple[RuleLine, ...]:
    by_rule: dict[str, Counter] = {}
    reasons: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda r: (r.requested_at, r.id)):
        if run.status.value != "shadow":
            continue
        what = decision(run)
        by_rule.setdefault(run.rule, Counter())[what] += 1
        if what == "stopped":
            reason = (run.reason or "").split("would not run: ", 1)[-1]
            reason = reason.split(":", 1)[0]  # the kind of gate, not the counts of the moment
            if reason not in reasons.setdefault(run.rule, []):
                reasons[run.rule].append(reason)
    return tuple(RuleLine(rule=rule, would_run=c["would_run"], held_for_approval=c["held_for_approval"],
                          check_only=c["check_only"], stopped=c["stopped"],
                          stopped_because=tuple(reasons.get(rule, ())))
                 for rule, c in sorted(by_rule.items()))


def _top(counts: Counter, top: int) -> tuple[Count, ...]:
    return tuple(Count(name=name, hits=n) for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top])


def _timeline(days: Sequence[DayRead], hits: Sequence[KeptHit], incidents: Sequence[Incident],
              runs: Sequence[Run]) -> tuple[DayLine, ...]:
    out = []
    would = [r.requested_at for r in runs if r.mode is RunMode.APPLY and r.status.value == "shadow"]
    episodes = [e.detected_at for i in incidents for e in i.episodes]
    opened = [i.detected_at for i in incidents]
    for day in days:
        out.append(DayLine(day=day.start.isoformat(), rows=day.rows, series=day.series,
                           hits=_within(day, [k.hit.ts for k in hits]), incidents=_within(day, opened),
                           pages=_within(day, episodes), would_run=_within(day, would), gap=day.empty))
    return tuple(out)


def _within(day: DayRead, times: Sequence[datetime]) -> int:
    """How many of ``times`` fall in ``day`` (after its start, up to its end)."""
    return sum(day.start < t <= day.end for t in times)


__all__ = ["Count", "DayLine", "IncidentLine", "Report", "RuleLine", "build_report", "decision"]
