"""The incident pages as HTML: the list and one incident's summary with plots (served at
``/incidents`` and ``/incidents/ID`` by ``agent.api.pages``; ``aiops incidents show --format html``).

Templates live in ``agent/incidents/templates`` and render with autoescape on, so label values
and messages are escaped; every untrusted string also passes the ``clean`` filter, which shows
control and bidi characters as escapes. The plots are inline ``data:`` PNGs, so a page needs no request to anywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from agent.incidents.summary import (
    CHANGES_LOOKBACK_S,
    TOP_PLOTS,
    Summary,
    action_lines,
    clean,
    done_lines,
    earlier_outages,
    next_step,
    other_labels,
    root_cause_line,
    run_outcome,
    signal_text,
    status_line,
    timeline_rows,
    title_of,
    ts,
)

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
    png_b64: str


def plots_for(summary: Summary, store: "Store", *, top: int = TOP_PLOTS) -> list[Plot]:
    """PNG plots of the top ``top`` signals that have recorded hits. A drift signal gets its
    model's drift rate against the alert share and its features' PSI against the threshold, not
    the 0/1 of its hits."""
    from datetime import timedelta

    from agent.incidents.plot import drift_png, signal_png

    hits = store.summary_hits(summary.incident.id)
    plots: list[Plot] = []
    for line in summary.signals:
        if len(plots) >= top:
            break
        sig = line.signal
        mine = [h for h in hits if h.series_id == sig.series_id and h.detector == sig.detector]
        if not mine:
            continue
        span = max(mine[-1].ts - mine[0].ts, timedelta(minutes=20))
        samples = store.summary_samples(sig.series_id, start=mine[0].ts - 2 * span, end=mine[-1].ts + span / 2)
        name = f"{sig.metric or sig.series_id} {_labels(sig.labels)}"
        facts = line.drift
        if facts is not None:
            png = drift_png(samples or [(h.ts, h.value) for h in mine], facts.share, list(facts.psi.values()),
                            facts.threshold)
            numbered = "; ".join(f"{n}: {f}" for n, f in enumerate(facts.psi, 1))
            caption = f"{name}: drift rate against the alert share; PSI of the drifted features ({numbered})"
        else:
            png = signal_png(mine, samples)
            caption = f"{name} ({sig.detector}): {line.deviation}"
        plots.append(Plot(caption=caption, png_b64=base64.b64encode(png).decode("ascii")))
    return plots


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def render_html(summary: Summary, store: "Store", *, list_url: str = "/incidents") -> str:
    """A self-contained HTML page (inline CSS and PNGs) of one incident summary."""
    return _ENV.get_template("summary.html").render(
        s=summary, i=summary.incident, status=status_line(summary.incident), plots=plots_for(summary, store),
        done=done_lines(summary), next=next_step(summary), earlier=earlier_outages(summary.incident),
        signals=[(line, signal_text(n, line)) for n, line in enumerate(summary.signals, 1)],
        other_labels=other_labels(summary), list_url=list_url, cause=root_cause_line(summary),
        actions=action_lines(summary), timeline=timeline_rows(summary))


def render_list(store: "Store", *, limit: int = LIST_LIMIT, lookback_s: float = CHANGES_LOOKBACK_S) -> str:
    rows = store.list_incidents(limit=limit)
    titles = {i.id: title_of(store, i, lookback_s=lookback_s) for i in rows}
    open_count = store.count_open_incidents()
    return _ENV.get_template("list.html").render(rows=rows, titles=titles, open_count=open_count, limit=limit)
