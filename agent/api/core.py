"""Health, self-metrics, status and config reload."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from agent.api.auth import require_token

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz(request: Request) -> JSONResponse:
    """200 while cycles succeed; 503 with the reason after too many failed cycles in a row, or
    when no cycle (the first one included) has finished within ``agent.stale_after``."""
    ctx = request.app.state.ctx
    healthy, reason = ctx.health.check(ctx.config, now=ctx.clock())
    return JSONResponse({"status": "ok" if healthy else "unhealthy", "reason": reason},
                        status_code=200 if healthy else 503)


@router.get("/metrics", tags=["health"])
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class ReloadResult(BaseModel):
    reloaded: bool
    errors: list[str]


@router.post("/api/v1/reload", tags=["admin"], response_model=ReloadResult)
def reload(request: Request, actor: str = Depends(require_token)) -> ReloadResult:
    """Reload the config file, as SIGHUP does; an invalid file is refused and the old config kept."""
    daemon = request.app.state.daemon
    if daemon is None:
        raise HTTPException(409, "no daemon to reload (the app runs without one)")
    errors = daemon.reload(actor=actor)
    return ReloadResult(reloaded=not errors, errors=errors)
