"""The HTTP app the daemon serves on loopback: ``/metrics``, ``/healthz``, ``/api/v1/…`` and
read-only pages (incidents, models, rollouts). Everything that changes state requires the bearer token.

A request that finds the store locked by another process (after the store's busy timeout), its
disk full, or the PostgreSQL server down, restarting or not answering, answers 503 with
``Retry-After``: the caller may try again, nothing was written.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent import __version__
from agent.errors import StoreFullError, StoreUnavailableError
from agent.store.base import is_connection_lost, psycopg_errors

if TYPE_CHECKING:
    from agent.context import Context


def create_app(ctx: Context, *, daemon: Any = None) -> FastAPI:
    from agent.api import core, docs, incidents, model_pages, pages, remediations, report, rollouts
    from agent.incidents.alerts import AlertIntake, WebhookPayload

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
    app.include_router(incidents.router)
    app.include_router(pages.router)
    app.include_router(model_pages.router)
    app.include_router(remediations.router)
    app.include_router(report.router)
    app.include_router(rollouts.router)
    docs.install(app, bodies=[WebhookPayload])
    app.state.intake = AlertIntake(ctx)
    app.add_exception_handler(sqlite3.OperationalError, _store_unavailable)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    for error in psycopg_errors():  # a session the server ended, a server that went away
        app.add_exception_handler(error, _store_unavailable)
    return app


RETRY_AFTER_S = 5
log = logging.getLogger(__name__)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    from agent.log import kv
    from agent.store.base import is_busy, store_error

    ctx = request.app.state.ctx
    if is_busy(exc):
        detail = "the store is locked by another process; try again"
    elif isinstance(exc, sqlite3.OperationalError) and isinstance(store_error(ctx.store.path, exc), StoreFullError):
        detail = "the store's disk is full; try again once space is freed"
    elif isinstance(exc, StoreUnavailableError) or is_connection_lost(exc):
        detail = "the store cannot be reached now; try again"
    else:
        raise exc
    log.warning(kv("api.store_unavailable", method=request.method, path=request.url.path, error=str(exc)))
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
