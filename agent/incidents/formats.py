"""One incident's summary in the format asked for: text, markdown, JSON (``summary``) or the
HTML page (``pages``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.incidents.catalog import Catalog
from agent.incidents.render import render_json, render_markdown, render_text
from agent.incidents.summary import CHANGES_LOOKBACK_S, build

if TYPE_CHECKING:
    from agent.incidents.history import History
    from agent.store import Store

FORMATS = ("text", "markdown", "json", "html")


def render(store: "Store", incident_id: int, fmt: str, *, base_url: str | None = None,
           prometheus_url: str | None = None, lookback_s: float = CHANGES_LOOKBACK_S,
           catalog: Catalog | None = None, history: "History | None" = None) -> str:
    """The summary of incident ``incident_id`` as ``fmt`` (text, markdown, json or html; the
    html page's plots read their points from ``history``, by default the store)."""
    if fmt not in FORMATS:
        raise ValueError(f"expected a format among {', '.join(FORMATS)}, found {fmt!r}")
    summary = build(store, incident_id, base_url=base_url, catalog=catalog, prometheus_url=prometheus_url,
                    lookback_s=lookback_s)
    if fmt == "text":
        return render_text(summary)
    if fmt == "markdown":
        return render_markdown(summary)
    if fmt == "json":
        return render_json(summary)
    from agent.incidents.pages import render_html  # matplotlib and Jinja2 load only for html

    return render_html(summary, store, history=history)
