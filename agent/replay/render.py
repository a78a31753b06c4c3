"""The replay report as text, JSON or one self-contained HTML page (label values escaped; each
incident with the plots of its incident page, their points read from the replayed source)."""

from __future__ import annotations

import json
from datetime import datetime

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from agent.clock import duration
from agent.incidents.catalog import catalog_of
from agent.incidents.history import History, history_of
from agent.incidents.pages import plots_for
from agent.incidents.summary import build
from agent.replay.report import Report
from agent.replay.run import Replayed
from agent.store import open_store

PLOTTED = 20  # incidents drawn in the HTML page; the rest are listed


def render_text(report: Report) -> str:
    r = report
    out = [f"replay {_t(r.start)} to {_t(r.end)} UTC from {r.source}: {r.days} days with data",
           f"incidents {len(r.incidents)}, pages {r.pages} ({r.pages_per_day:.2f} a day)"]
    out += [f"note: {note}" for note in r.notes]
    out += ["", "day         series   hits  incidents  pages  would-run"]
    for d in r.timeline:
        gap = "  gap: nothing read" if d.gap else ""
        out.append(f"{d.day[:10]}  {d.series:>6} {d.hits:>6} {d.incidents:>10} {d.pages:>6} {d.would_run:>10}{gap}")
    out += ["", "incidents:"] + ([] if r.incidents else ["  none"])
    for line in r.incidents:
        still = " (still open at the end)" if line.resolved_at is None else ""
        out.append(f"  #{line.id} {_t(line.started_at)} {duration(line.duration_s)}{still} [{line.severity}] {line.title}")
        out += [f"      {s}" for s in line.signals[:5]]
        if len(line.signals) > 5:
            out.append(f"      and {len(line.signals) - 5} more signals")
        if line.graph_url:
            out.append(f"      graph: {line.graph_url}")
    out += ["", "remediation rules (shadow: nothing ran):"] + ([] if r.rules else ["  no rule matched"])
    for rule in r.rules:
        why = f" ({'; '.join(rule.stopped_because)})" if rule.stopped_because else ""
        out.append(f"  {rule.rule}: would run {rule.would_run}, held for approval {rule.held_for_approval}, "
                   f"check only {rule.check_only}, stopped by a limit {rule.stopped}{why}")
    out += ["", "notifications (routed, nothing sent):"] + ([] if r.notifications else ["  no route matched"])
    out += [f"  {name}: would send {n['would send']}, silenced {n['silenced']}" for name, n in r.notifications.items()]
    out += ["", "noisiest series:"] + [f"  {c.hits:>6}  {c.name}" for c in r.noisiest_series]
    out += ["noisiest detectors:"] + [f"  {c.hits:>6}  {c.name}" for c in r.noisiest_detectors]
    return "\n".join(out) + "\n"


def render_json(report: Report, **extra: object) -> str:
    return json.dumps({**report.as_dict(), **extra}, indent=2, default=_json_default) + "\n"


def _json_default(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def render_html(report: Report, replayed: Replayed, *, history: History | None = None) -> str:
    """The page; ``history`` gives the plots their points (None: the Prometheus source, when it
    is the one replayed; the embedded history passes its own reader)."""
    env = Environment(loader=ChoiceLoader([PackageLoader("agent.replay", "templates"),
                                           PackageLoader("agent.incidents", "templates")]),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    store = open_store(replayed.state_dir)
    try:
        history = history or history_of(replayed.config, store)
        catalog = catalog_of(replayed.config)
        incidents = []
        for n, line in enumerate(report.incidents):
            plots = plots_for(build(store, line.id, catalog=catalog), store, history=history, top=1) if n < PLOTTED else []
            incidents.append((line, plots))
        return env.get_template("replay.html").render(r=report, incidents=incidents, duration=duration)
    finally:
        store.close()


def _t(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


__all__ = ["render_html", "render_json", "render_text"]
