"""HTTP endpoints of this stage (mounted by ``agent.api.create_app``).

Reads are open on loopback; everything that changes state takes the bearer token. A malformed
Alertmanager body gets 400 with the reason; a refused transition 409 with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agent.api.auth import require_token
from agent.api.docs import AUTH, errors, json_body
from agent.api.params import RowId
from agent.config.types import parse_duration
from agent.errors import StoreUnavailableError, TransitionError
from agent.flow.incidents import IncidentStatus
from agent.incidents.alerts import MalformedPayload, WebhookPayload
from agent.incidents.changes import suspect_changes
from agent.incidents.serialize import (
    change_dict,
    event_dict,
    incident_dict,
    silence_dict,
)
from agent.incidents.silences import create_silence
from agent.incidents.summary import title_of
from agent.store.incidents import UnknownIncidentError
from agent.store.silences import UnknownSilenceError

router = APIRouter(tags=["incidents"])


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


@router.post("/api/v1/alerts", responses=errors(400, *AUTH, 503), openapi_extra=json_body(
    WebhookPayload, "What Alertmanager posts to a webhook receiver (version 4)."))
async def post_alerts(request: Request, actor: str = Depends(require_token)) -> JSONResponse:
    """Alertmanager webhook (version 4): firing alerts open or join incidents, resolved ones
    resolve their signal; past ``incidents.max_new_per_cycle`` new incidents in a cycle the rest
    go into the storm incident (``storm``). ``truncated``: alerts Alertmanager said it left out.
    A store that is down or not answering gets 503 with ``Retry-After`` (Alertmanager retries).
    Example receiver: ``webhook_configs: [{url: http://127.0.0.1:9847/api/v1/alerts,
    http_config: {authorization: {credentials_file: /etc/aiops-agent/token}}}]``."""
    ctx = _ctx(request)
    if not ctx.leases.store_answering():  # a hung server: no thread waits on it for a webhook
        raise StoreUnavailableError(str(ctx.store.path), "its lease round has not answered")
    body = await request.body()
    try:  # off the event loop: 100,000 alerts take seconds to read, /healthz must not wait
        payload, done = await run_in_threadpool(request.app.state.intake.receive, body, actor=actor)
    except MalformedPayload as exc:
        raise HTTPException(400, f"malformed Alertmanager payload: {exc}") from None
    return JSONResponse({"accepted": len(payload.alerts), "firing": done.firing, "resolved": done.resolved,
                         "opened": done.opened, "incidents": done.incidents,
                         "resolved_incidents": done.resolved_incidents, "storm": done.storm,
                         "truncated": done.truncated})


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    ts: datetime | None = None


@router.post("/api/v1/changes", status_code=201, responses=errors(400, *AUTH, 422))
def post_change(change: ChangeIn, request: Request, actor: str = Depends(require_token)) -> dict[str, Any]:
    """Record a deploy, model rollout or config change (``ts`` defaults to now)."""
    ctx = _ctx(request)
    now = ctx.clock()
    ts = change.ts or now
    if ts.tzinfo is None:
        raise HTTPException(400, f"expected ts with a time zone (e.g. 2026-01-01T12:00:00Z), found {change.ts}")
    saved = ctx.store.add_change(ts=ts, kind=change.kind, labels=change.labels, description=change.description,
                                 actor=actor, now=now)
    return change_dict(saved)


@router.get("/api/v1/changes", responses=errors(422))
def get_changes(request: Request, limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
    return [change_dict(c) for c in _ctx(request).store.list_changes(limit=limit)]


@router.get("/api/v1/incidents", responses=errors(422))
def list_incidents(request: Request, status: IncidentStatus | None = None,
                   limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
    ctx = _ctx(request)
    lookback = ctx.config.incidents.changes_lookback
    return [{**incident_dict(i, signals=False), "title": title_of(ctx.store, i, lookback_s=lookback)}
            for i in ctx.store.list_incidents(status=status, limit=limit)]


@router.get("/api/v1/incidents/{incident_id}", responses=errors(404, 422))
def get_incident(incident_id: RowId, request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    incident = ctx.store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(404, f"no incident #{incident_id}")
    body = incident_dict(incident)
    body["title"] = title_of(ctx.store, incident, lookback_s=ctx.config.incidents.changes_lookback)
    body["events"] = [event_dict(e) for e in ctx.store.incident_events(incident_id)]
    body["suspect_changes"] = [change_dict(c) for c in suspect_changes(
        ctx.store, incident, lookback_s=ctx.config.incidents.changes_lookback)]
    return body


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ""


def _move(request: Request, incident_id: int, to: IncidentStatus, reason: str, actor: str) -> dict[str, Any]:
    ctx = _ctx(request)
    try:
        incident = ctx.store.transition_incident(incident_id, to, actor=actor, reason=reason, now=ctx.clock(),
                                                 resolution="manual" if to is IncidentStatus.RESOLVED else None)
    except UnknownIncidentError as exc:
        raise HTTPException(404, str(exc)) from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    ctx.metrics.open_incidents.set(ctx.store.count_open_incidents())
    return incident_dict(incident)


@router.post("/api/v1/incidents/{incident_id}/ack", responses=errors(400, *AUTH, 404, 409, 422))
def ack_incident(incident_id: RowId, request: Request, body: TransitionIn | None = None,
                 actor: str = Depends(require_token)) -> dict[str, Any]:
    return _move(request, incident_id, IncidentStatus.ACKNOWLEDGED, body.reason if body else "", actor)


@router.post("/api/v1/incidents/{incident_id}/resolve", responses=errors(400, *AUTH, 404, 409, 422))
def resolve_incident(incident_id: RowId, request: Request, body: TransitionIn | None = None,
                     actor: str = Depends(require_token)) -> dict[str, Any]:
    return _move(request, incident_id, IncidentStatus.RESOLVED, body.reason if body else "", actor)


# Documented in the OpenAPI document (so generated clients and fuzzers send usable values); the
# checks themselves stay in create_silence and parse_duration, which answer with the reason.
MATCHER_PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=).*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*$"


def _date_time(schema: dict[str, Any]) -> None:
    """Documented without null: a silence gives ``ends_at`` or ``duration``, not a null."""
    schema.pop("anyOf", None)
    schema.pop("default", None)
    schema.update(type="string", format="date-time")


def _duration(schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    schema["anyOf"] = [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number", "minimum": 0}]


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["ends_at"]}, {"required": ["duration"]}],
        "description": "Give the end either as ends_at or as a duration from the start (now by default)."})

    matchers: list[Annotated[str, Field(json_schema_extra={"pattern": MATCHER_PATTERN})]] = Field(
        min_length=1, description="Label matchers, all of which must match: service=api, env!=dev, "
                                  "instance=~web.*, job!~batch.*")
    reason: str = Field(min_length=1)
    starts_at: datetime | None = None
    ends_at: datetime | None = Field(default=None, json_schema_extra=_date_time)
    duration: str | float | None = Field(default=None, json_schema_extra=_duration,
                                         description="How long from the start: 90, 30s, 5m, 2h, 7d, 1w.")


@router.post("/api/v1/silences", status_code=201, responses=errors(400, *AUTH, 422))
def post_silence(silence: SilenceIn, request: Request, actor: str = Depends(require_token)) -> dict[str, Any]:
    """Silence incidents whose labels match every matcher (``service=api``, ``instance=~web.*``)."""
    ctx = _ctx(request)
    try:
        duration_s = parse_duration(silence.duration) if silence.duration is not None else None
        saved = create_silence(ctx.store, silence.matchers, reason=silence.reason, actor=actor, now=ctx.clock(),
                               starts_at=silence.starts_at, ends_at=silence.ends_at, duration_s=duration_s)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return silence_dict(saved)


@router.get("/api/v1/silences", responses=errors(422))
def get_silences(request: Request, all: bool = False) -> list[dict[str, Any]]:
    ctx = _ctx(request)
    silences = ctx.store.list_silences(active_at=None if all else ctx.clock())
    return [silence_dict(s) for s in silences]


@router.post("/api/v1/silences/{silence_id}/expire", responses=errors(*AUTH, 404, 409, 422))
def expire_silence(silence_id: RowId, request: Request, actor: str = Depends(require_token)) -> dict[str, Any]:
    ctx = _ctx(request)
    try:
        return silence_dict(ctx.store.expire_silence(silence_id, actor=actor, now=ctx.clock()))
    except UnknownSilenceError as exc:
        raise HTTPException(404, str(exc)) from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
