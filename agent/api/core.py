"""Health, self-metrics, status and config reload."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from agent.api.auth import require_token
from agent.api.docs import AUTH, errors
from agent.status import Report, as_json

router = APIRouter()


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"]
    reason: str
    role: Literal["leader", "active", "standby"] = "leader"
    holder: str | None = None
    leases: dict[str, str] = {}
    series_warming: int = 0


@router.get("/healthz", tags=["health"], response_model=HealthOut, responses={
    503: {"model": HealthOut, "description": "Unhealthy: too many failed cycles in a row; `reason` says why."}})
async def healthz(request: Request) -> JSONResponse:
    """200 while cycles succeed; 503 with the reason after too many failed cycles in a row, or
    when no cycle (the first one included) has finished within ``agent.stale_after``. ``role``
    says what this agent does among those sharing the store (``leader``: works its shard and runs
    the stages that act once for all; ``active``: works its shard; ``standby``: waits for its
    shard's lease, healthy), ``leases`` who holds which shard and the lead, as the agent last
    read them, ``series_warming`` how many series the detectors watch but have not fitted yet (see
    ``/status``). It answers from memory, on the event loop: never waits for the store or a thread."""
    ctx = request.app.state.ctx
    healthy, reason = ctx.health.check(ctx.config, at=ctx.monotonic())
    leases = ctx.leases
    role = "leader" if leases.leading() else "active" if leases.working() else "standby"
    held = leases.held()
    daemon = request.app.state.daemon
    status = daemon.pipeline.status if daemon is not None and daemon.pipeline is not None else None
    return JSONResponse({"status": "ok" if healthy else "unhealthy", "reason": reason, "role": role,
                         "holder": leases.holder, "leases": held,
                         "series_warming": status.series_warming if status is not None else 0},
                        status_code=200 if healthy else 503)


@router.get("/api/v1/status", tags=["health"])
def status(request: Request) -> dict:
    """What every agent on the store last reported: per shard its targets (URL without
    credentials, state, last success, last error and its kind, series), the detectors warming up
    and when their series are first scored, and its last cycle; ``stale`` when it has not reported
    for three intervals. As ``aiops status --format json`` prints it."""
    ctx = request.app.state.ctx
    return as_json(Report(agents=tuple(ctx.store.status.all()), now=ctx.clock()))


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse,
            responses={200: {"description": "The agent's own metrics, Prometheus text format 0.0.4."}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class ReloadResult(BaseModel):
    reloaded: bool
    errors: list[str]


@router.post("/api/v1/reload", tags=["admin"], response_model=ReloadResult, responses=errors(*AUTH, 409))
def reload(request: Request, actor: str = Depends(require_token)) -> ReloadResult:
    """Reload the config file, as SIGHUP does; an invalid file is refused and the old config kept."""
    daemon = request.app.state.daemon
    if daemon is None:
        raise HTTPException(409, "no daemon to reload (the app runs without one)")
    errors = daemon.reload(actor=actor)
    return ReloadResult(reloaded=not errors, errors=errors)
