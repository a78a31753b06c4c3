"""The incident pages as HTML: the list and one incident's summary with plots (served at
``/incidents`` and ``/incidents/ID`` by ``agent.api.pages``; ``aiops incidents show --format html``).

Templates live in ``agent/incidents/templates`` and render with autoescape on, so label values
and messages are escaped; every untrusted string also passes the ``clean`` filter, which shows
control and bidi characters as escapes. The plots are inline SVG (``agent.incidents.plot``), so a page
needs no request to anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from agent.flow.incidents import Signal
from agent.incidents.catalog import BEFORE, Catalog
from agent.incidents.cause import root_cause_line
from agent.incidents.history import History, StoredHistory
from agent.incidents.plot import SignalPlot, drift_svg, signal_svg
from agent.incidents.summary import (
    CHANGES_LOOKBACK_S,
    TOP_PLOTS,
    SignalLine,
    Summary,
    action_lines,
    bound_side,
    clean,
    done_lines,
    earlier_outages,
    label_text,
    next_step,
    other_labels,
    run_outcome,
    saw_words,
    signal_text,
    status_line,
    timeline_rows,
    title_of,
    ts,
)
from agent.store.outbox import HitPoint

if TYPE_CHECKING:
    from agent.store import Store

LIST_LIMIT = 200

def _environment() -> Environment:
    env = Environment(loader=PackageLoader("agent.incidents", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["clean"] = clean
    env.filters["ts"] = ts
    env.filters["num"] = lambda v: "-" if v is None else f"{v:.4g}"
    env.filters["labels"] = lambda labels: clean(", ".join(f"{k}={v}" for k, v in sorted(dict(labels).items())))
    env.filters["outcome"] = lambda run: clean(run_outcome(run))
    return env


_ENV = _environment()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plot:
    caption: str
    svg: Markup  # an inline <svg> from agent.incidents.svg, every text in it escaped


def plots_for(summary: Summary, store: "Store", *, history: History | None = None, top: int = TOP_PLOTS) -> list[Plot]:
    """SVG plots of the top ``top`` signals that have recorded hits, from an hour before each
    began to a while after its last hit. A drift signal gets its model's drift rate against the
    alert share and its features' PSI against the threshold, not the 0/1 of its hits."""
    history = history or StoredHistory(store=store)
    plots: list[Plot] = []
    for line in summary.signals:
        if len(plots) >= top:
            break
        sig = line.signal
        mine = store.summary_hits(summary.incident.id, series_id=sig.series_id, detector=sig.detector)
        if not mine:
            continue
        began, start, end = span_of(summary, sig, mine)
        mine = [h for h in mine if start <= h.ts <= end]
        name = f"{sig.metric or sig.series_id} {{{label_text(sig.labels)}}}"
        facts = line.drift
        if facts is not None:
            rates = history.points(sig.series_id, None, start, end) or [(h.ts, h.value) for h in mine]
            caption = f"{name}: the drift rate against the alert share; the PSI of each drifted feature"
            svg = drift_svg(rates, facts.share, facts.psi, facts.threshold, began_at=began, start=start, end=end,
                            label=clean(caption))
        else:
            samples = history.points(sig.series_id, summary.catalog.promql(sig), start, end)
            caption = f"{name} ({sig.detector}): {saw_words(line)}"
            svg = signal_svg(SignalPlot(samples=samples, hits=mine, began_at=began, start=start, end=end,
                                        unit=line.unit, bound=bound_of(line, summary.catalog)), label=clean(caption))
        plots.append(Plot(caption=caption, svg=Markup(svg)))
    return plots


def span_of(summary: Summary, sig: Signal, hits: list[HitPoint]) -> tuple[datetime, datetime, datetime]:
    """(when the signal began in the current outage, the plot's start an hour before, its end a
    while after the last hit, or after the resolution)."""
    episode = summary.episode
    began = sig.first_at
    if episode is not None and sig.last_at >= episode.started_at:
        began = max(began, episode.started_at)
    last = max(sig.last_at, hits[-1].ts)
    if summary.incident.resolved_at is not None:
        last = max(last, summary.incident.resolved_at)
    after = max(timedelta(minutes=10), (last - began) / 4)
    return began, began - BEFORE, last + after


def bound_of(line: SignalLine, catalog: Catalog) -> tuple[str, float] | None:
    """An SLO's objective, or a threshold's bound the peak crossed: drawn as a line."""
    sig = line.signal
    side = bound_side(line)
    value = sig.peak_upper if side is None or side[0] == "above" else sig.peak_lower
    if sig.detector in catalog.slos:
        value = value if value is not None else sig.peak_lower
        return ("objective", value) if value is not None else None
    if line.expected is None and side is not None and value is not None:
        return side[1], value
    return None


def render_html(summary: Summary, store: "Store", *, list_url: str = "/incidents",
                history: History | None = None) -> str:
    """A self-contained HTML page (inline CSS and SVG plots) of one incident summary; ``history``
    gives the plots their points (by default what the store kept)."""
    return _ENV.get_template("summary.html").render(
        s=summary, i=summary.incident, status=status_line(summary.incident),
        plots=plots_for(summary, store, history=history),
        done=done_lines(summary), next=next_step(summary), earlier=earlier_outages(summary.incident),
        signals=[(line, signal_text(n, line)) for n, line in enumerate(summary.signals, 1)],
        other_labels=other_labels(summary), list_url=list_url, cause=root_cause_line(summary),
        actions=action_lines(summary), timeline=timeline_rows(summary))


def render_list(store: "Store", *, limit: int = LIST_LIMIT, lookback_s: float = CHANGES_LOOKBACK_S) -> str:
    rows = store.list_incidents(limit=limit)
    titles = {i.id: title_of(store, i, lookback_s=lookback_s) for i in rows}
    open_count = store.count_open_incidents()
    return _ENV.get_template("list.html").render(rows=rows, titles=titles, open_count=open_count, limit=limit)
