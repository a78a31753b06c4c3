"""HTTP endpoints of this stage (mounted by ``agent.api.create_app``).

- ``GET /api/v1/reports/mttr?since=30d&by=service``: the MTTR report as JSON;
- ``GET /reports/weekly?since=30d``: the weekly review page (self-contained HTML);
- ``GET /api/v1/audit?since=7d&format=jsonl|csv``: the audit export (bearer token: it names people).
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from agent.api.auth import require_token
from agent.api.docs import AUTH, errors
from agent.report.period import Period, period_since, zone

router = APIRouter()


def _now(request: Request) -> datetime:
    return request.app.state.ctx.clock()


def _period(request: Request, since: str, until: str | None) -> Period:
    try:
        return period_since(since, now=_now(request), until=until)
    except ValueError as exc:
        raise HTTPException(422, f"since/until: {exc}") from None


def _zone(tz: str) -> str:
    try:
        zone(tz)
    except ValueError as exc:
        raise HTTPException(422, f"tz: {exc}") from None
    return tz


@router.get("/api/v1/reports/mttr", tags=["reports"], responses=errors(422))
def mttr(request: Request, since: str = "30d", until: str | None = None,
         by: Literal["service", "severity", "rule", "detector", "model", "week"] | None = None,
         tz: str = "UTC") -> dict[str, Any]:
    """MTTD, MTTA and MTTR per group (seconds), auto-remediated share, automation vs by hand."""
    from agent.report.mttr import mttr_report
    from agent.report.render import as_dict

    period = _period(request, since, until)
    return as_dict(mttr_report(request.app.state.ctx.store, period, by=by, tz=_zone(tz), now=_now(request)))


@router.get("/reports/weekly", tags=["reports"], response_class=HTMLResponse, responses=errors(422))
def weekly(request: Request, since: str = "30d", until: str | None = None, tz: str = "UTC") -> HTMLResponse:
    """The weekly review page, as ``aiops report html`` writes it."""
    from agent.report.weekly import weekly_report
    from remediations.trust import modes

    ctx = request.app.state.ctx
    html = weekly_report(ctx.store, _period(request, since, until), tz=_zone(tz), now=_now(request),
                         modes=modes(ctx.config.remediation, ctx.store))
    return HTMLResponse(html)


@router.get("/api/v1/audit", tags=["reports"], response_class=PlainTextResponse, responses={
    **errors(*AUTH, 422), 200: {"description": "JSON lines (application/x-ndjson) or CSV (text/csv), as asked.",
                                "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                            "text/csv": {"schema": {"type": "string"}}}}})
def audit_export(request: Request, since: str = "7d", until: str | None = None,
                 format: Literal["jsonl", "csv"] = Query("jsonl"),
                 actor: str = Depends(require_token)) -> PlainTextResponse:
    """Audit entries of a period as JSON lines or CSV, oldest first."""
    from agent.report.audit import export

    buffer = io.StringIO()
    export(request.app.state.ctx.store, _period(request, since, until), format, buffer)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return PlainTextResponse(buffer.getvalue(), media_type=media)
