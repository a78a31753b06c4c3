"""Read-only HTML pages of model operations: ``/models``, ``/models/NAME``, ``/rollouts`` and
``/rollouts/ID``. They show the tables ``aiops model list|show`` and ``aiops rollout
list|status`` print (``agent.rollouts.views``), rendered by the reports' ``page.html``; every
cell escaped, no script, the pages' Content-Security-Policy as the incident pages'.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse

from agent.api.docs import errors
from agent.api.pages import CSP
from agent.api.params import RowId
from agent.report.render import environment
from agent.report.tables import Table
from agent.rollouts import views

router = APIRouter(tags=["pages"])

LIST_LIMIT = 200
LINKS = (("/models", "models"), ("/rollouts", "rollouts"), ("/incidents", "incidents"))


def _page(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "no-referrer"})


def _render(title: str, sections: Sequence[tuple[str, Table, str]], *, lead: str = "",
            row_links: dict[str, list[tuple[str, str]]] | None = None) -> HTMLResponse:
    return _page(environment().get_template("page.html").render(
        title=title, lead=lead, sections=sections, links=LINKS, row_links=row_links or {}))


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    """The configured models: what serves each, since when and what put it there."""
    ctx = request.app.state.ctx
    links = [(f"/models/{quote(m.name)}", m.name) for m in ctx.config.models]
    return _render("Models", [("", views.models_table(ctx.config, ctx.store), "")], row_links={"models": links})


@router.get("/models/{name}", response_class=HTMLResponse, responses=errors(404, 422))
def model_page(request: Request, name: str = Path(max_length=64)) -> HTMLResponse:
    """One model: its versions with their gates, what served when, retrains and rollouts."""
    ctx = request.app.state.ctx
    if ctx.config.model(name) is None:
        raise HTTPException(404, f"no model {name!r} configured")
    store = ctx.store
    rollouts = store.list_rollouts(model=name, limit=LIST_LIMIT)
    return _render(f"Model {name}", [
        ("Versions", views.versions_table(store.model_versions(name)), ""),
        ("Served", views.served_table(store.serving_history(name)), "Every version that served, and what put it there."),
        ("Retrains", views.retrains_table(store.list_retrains(name)), ""),
        ("Rollouts", views.rollouts_table(rollouts), "")],
        row_links={"rollouts": [(f"/rollouts/{r.id}", f"rollout {r.id}") for r in rollouts]})


@router.get("/rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request) -> HTMLResponse:
    """Rollouts, newest first."""
    rollouts = request.app.state.ctx.store.list_rollouts(limit=LIST_LIMIT)
    return _render("Rollouts", [("", views.rollouts_table(rollouts), "")],
                   row_links={"rollouts": [(f"/rollouts/{r.id}", f"rollout {r.id}") for r in rollouts]})


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse, responses=errors(404, 422))
def rollout_page(request: Request, rollout_id: RowId) -> HTMLResponse:
    """One rollout and every measurement of its analysis."""
    store = request.app.state.ctx.store
    rollout = store.get_rollout(rollout_id)
    if rollout is None:
        raise HTTPException(404, f"no rollout {rollout_id}")
    return _render(f"Rollout {rollout.id}: {rollout.model} {rollout.version}", [
        ("", views.rollout_table(rollout), ""), ("Measurements", views.measurements_table(store.measurements(rollout_id)),
                                                 "")])
