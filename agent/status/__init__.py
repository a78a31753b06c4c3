"""What the agents on a store last reported (``agent.flow.status``), as ``aiops status`` prints
it, as JSON (``--format json``, ``/api/v1/status``) and as the ``/status`` page: per shard, its
source's targets (URL, state, last success, last error and its kind, series), the detectors
still warming up and when their series are first scored, and the last cycle.

A report older than three intervals is ``stale``: the agent that wrote it stopped, or hangs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from agent.clock import duration
from agent.flow.status import AgentStatus, TargetState, TargetStatus, WarmingUp
from agent.log import printable

STALE_INTERVALS = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The reports on the store, judged at ``now``."""

    agents: tuple[AgentStatus, ...]
    now: datetime

    def age_s(self, status: AgentStatus) -> float:
        return (self.now - status.updated_at).total_seconds()

    def stale(self, status: AgentStatus) -> bool:
        return self.age_s(status) > STALE_INTERVALS * status.interval_s

    @property
    def healthy(self) -> bool:
        """Some agent reported, every report is fresh, and every last cycle read data and failed no stage."""
        return bool(self.agents) and all(
            not self.stale(a) and a.cycle is not None and not a.cycle.failed_stages and not a.cycle.blind
            for a in self.agents)


# -- text ----------------------------------------------------------------------------------------

def text(report: Report) -> list[str]:
    """``aiops status``: a block per shard."""
    if not report.agents:
        return ["no agent has reported to this store yet: start one (aiops run), or run one cycle (aiops once)"]
    lines: list[str] = []
    for status in report.agents:
        lines += _agent_lines(report, status) + [""]
    return lines[:-1]


def _agent_lines(report: Report, status: AgentStatus) -> list[str]:
    age = report.age_s(status)
    stale = (f"; STALE: nothing for {duration(age)}, more than {STALE_INTERVALS} intervals (is it running?)"
             if report.stale(status) else "")
    lines = [f"shard {status.shard}: {status.role}, {status.holder}, reported {duration(age)} ago "
             f"(every {duration(status.interval_s)}){stale}"]
    lines.append("  last cycle: " + cycle_text(status))
    lines.append(f"  source {status.source}:")
    lines += ["    " + line for line in _table(status.targets, report.now)]
    lines.append("  detectors: " + warming_text(status, report.now))
    return lines


def cycle_text(status: AgentStatus) -> str:
    cycle = status.cycle
    if cycle is None:
        return "none yet"
    state = ("every source failed (read nothing)" if cycle.blind else
             "failed stages: " + ", ".join(cycle.failed_stages) if cycle.failed_stages else "ok")
    return (f"{cycle.started_at:%Y-%m-%d %H:%M:%S}Z, {state}, {cycle.duration_s:.2f}s, "
            f"{cycle.series} series, {cycle.hits} hits")


def _table(targets: Sequence[TargetStatus], now: datetime) -> list[str]:
    if not targets:
        return ["(no targets)"]
    rows = [("TARGET", "STATE", "URL", "SERIES", "LAST SUCCESS", "LAST ERROR")]
    rows += [(printable(t.target), state_text(t), printable(t.url), "-" if t.series is None else str(t.series),
              _ago(t.last_success_at, now), error_text(t, now)) for t in targets]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[5] for row in rows]


def state_text(target: TargetStatus) -> str:
    if target.state is TargetState.DOWN and target.optional:
        return "absent"  # an optional target: expected to be missing on some hosts
    return str(target.state)


def error_text(target: TargetStatus, now: datetime) -> str:
    if target.last_error_at is None:
        return "-"
    return f"{_ago(target.last_error_at, now)}: {target.last_error_kind}: {printable(target.last_error or '')}"


def _ago(at: datetime | None, now: datetime) -> str:
    return "never" if at is None else f"{duration((now - at).total_seconds())} ago"


def warming_text(status: AgentStatus, now: datetime) -> str:
    scored = f"{status.series_scored} signals judged in the last cycle"
    if not status.warming:
        return f"{scored}; none warming up"
    parts = [_warming_one(w, now, status.interval_s) for w in status.warming]
    return f"{scored}; warming up {status.series_warming} series: " + "; ".join(parts)


def _warming_one(warming: WarmingUp, now: datetime, interval_s: float) -> str:
    tail = (f"; {warming.calibrating} scored, no hit until their own past says how rare a point is"
            if warming.calibrating else "")
    if not warming.series:
        return f"{warming.detector}{tail.replace(';', '', 1)}"
    return _unfitted(warming, now, interval_s) + tail


def _unfitted(warming: WarmingUp, now: datetime, interval_s: float) -> str:
    head = f"{warming.detector} {warming.series} series (min_history {duration(warming.min_history_s)})"
    if warming.first_fit_at is None:
        return f"{head}, history not measured yet (at the next refit)"
    first = _until(warming.first_fit_at, now, interval_s)
    if warming.last_fit_at is None or warming.last_fit_at == warming.first_fit_at:
        return f"{head}, first scored {first}"
    return f"{head}, first scored {first}, the last {_until(warming.last_fit_at, now, interval_s)}"


def _until(fit_at: datetime, now: datetime, interval_s: float) -> str:
    """When a series fitted at ``fit_at`` is first scored: the cycle after its fit."""
    left = max((fit_at - now).total_seconds(), 0.0) + interval_s
    return f"in about {duration(left)}"


# -- JSON -----------------------------------------------------------------------------------------

def as_json(report: Report) -> dict[str, Any]:
    """``{"now", "healthy", "agents": [{..., "age_s", "stale"}]}``, times as ISO-8601."""
    return {"now": report.now.isoformat(), "healthy": report.healthy,
            "agents": [{**_iso(asdict(a)), "series_warming": a.series_warming, "age_s": round(report.age_s(a), 3),
                        "stale": report.stale(a)} for a in report.agents]}


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_iso(v) for v in value]
    return str(value) if isinstance(value, StrEnum) else value


# -- HTML ------------------------------------------------------------------------------------------

def _environment() -> Environment:
    # The incident pages' base.html gives every page of the agent one look.
    loader = ChoiceLoader([PackageLoader("agent.status", "templates"), PackageLoader("agent.incidents", "templates")])
    env = Environment(loader=loader, autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["clean"] = printable
    return env


_ENV = _environment()


def html(report: Report) -> str:
    """The ``/status`` page: what ``aiops status`` prints, as tables."""
    template = _ENV.get_template("status.html")
    return template.render(report=report, cycle_text=cycle_text, state_text=state_text, error_text=error_text,
                           warming_text=warming_text, ago=_ago, duration=duration)
