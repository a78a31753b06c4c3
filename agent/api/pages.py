"""Read-only HTML pages: ``/incidents`` (the list) and ``/incidents/ID`` (the summary with plots),
rendered by ``agent.incidents.pages``, and ``/status`` (every agent's targets, warm-up and last
cycle, rendered by ``agent.status``). Pages carry a Content-Security-Policy that allows no script
and no request to anywhere (the plots are inline SVG).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from agent.api.docs import errors
from agent.api.params import RowId
from agent.incidents.catalog import catalog_of
from agent.incidents.history import history_of
from agent.incidents.pages import render_html, render_list
from agent.incidents.summary import build
from agent.status import Report
from agent.status import html as status_html

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

router = APIRouter(tags=["pages"])


def _page(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "no-referrer"})


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request) -> HTMLResponse:
    """The incident list, newest first."""
    ctx = request.app.state.ctx
    return _page(render_list(ctx.store, lookback_s=ctx.config.incidents.changes_lookback))


@router.get("/incidents/{incident_id}", response_class=HTMLResponse, responses=errors(404, 422))
def incident_page(incident_id: RowId, request: Request) -> HTMLResponse:
    """One incident's summary with plots of its top signals."""
    ctx = request.app.state.ctx
    if ctx.store.get_incident(incident_id) is None:
        raise HTTPException(404, f"no incident #{incident_id}")
    summary = build(ctx.store, incident_id, base_url=ctx.config.http.base_url,
                    catalog=catalog_of(ctx.config), lookback_s=ctx.config.incidents.changes_lookback)
    return _page(render_html(summary, ctx.store, history=history_of(ctx.config, ctx.store)))


@router.get("/status", response_class=HTMLResponse)
def status_page(request: Request) -> HTMLResponse:
    """Every agent on the store: its targets (URL, state, last success and error, series), the
    detectors warming up, its last cycle; as ``aiops status`` prints it."""
    ctx = request.app.state.ctx
    return _page(status_html(Report(agents=tuple(ctx.store.status.all()), now=ctx.clock())))
