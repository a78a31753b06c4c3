"""The HTTP app the daemon serves on loopback: ``/metrics``, ``/healthz``, ``/api/v1/…`` and
read-only incident pages. Everything that changes state requires the bearer token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from agent import __version__

if TYPE_CHECKING:
    from agent.context import Context


def create_app(ctx: "Context", *, daemon: Any = None) -> FastAPI:
    from agent.api import core, docs
    from agent.incidents import api as incidents_api
    from agent.incidents.alerts import WebhookPayload
    from agent.incidents import pages as incident_pages
    from agent.report import api as report_api
    from remediations import api as remediations_api

    app = FastAPI(
        title="aiops-agent",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.daemon = daemon
    app.include_router(core.router)
    app.include_router(incidents_api.router)
    app.include_router(incident_pages.router)
    app.include_router(remediations_api.router)
    app.include_router(report_api.router)
    docs.install(app, bodies=[WebhookPayload])
    return app
