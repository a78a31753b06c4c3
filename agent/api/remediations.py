"""HTTP endpoints of this stage (mounted by ``agent.api.create_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from agent.api.auth import require_token
from agent.api.docs import AUTH, errors
from agent.api.params import RowId
from agent.errors import StoreError, TransitionError
from agent.flow.runs import RunStatus, run_dict
from agent.report.period import period_since
from remediations.ledger import build_ledger, ledger_dict
from remediations.trust import modes

router = APIRouter()


@router.get("/api/v1/remediations", responses=errors(422))
def list_remediations(request: Request, status_: RunStatus | None = Query(default=None, alias="status"),
                      incident: int | None = Query(default=None, ge=1, le=2**63 - 1,
                                                   description="Only the runs of this incident."),
                      limit: int = Query(default=100, ge=1, le=1000)) -> dict[str, Any]:
    """Runs, newest first; ``?status=waiting_approval`` lists what waits for a person."""
    store = request.app.state.ctx.store
    runs = store.list_runs(incident_id=incident, statuses=[status_] if status_ else None, limit=limit)
    return {"runs": [_brief(run_dict(r)) for r in runs]}


@router.get("/api/v1/remediations/ledger", responses=errors(422))
def remediation_ledger(request: Request, since: str = Query(default="30d", max_length=64),
                       until: str | None = Query(default=None, max_length=64),
                       rule: str | None = Query(default=None, max_length=64)) -> dict[str, Any]:
    """What each rule's playbook did when it ran for real, per rule and playbook and per target:
    runs, verified, not fixed, rolled back, failed, median time to verify (seconds), the last
    failure and why, and how each rule runs now (``mode``)."""
    ctx = request.app.state.ctx
    try:
        period = period_since(since, now=ctx.clock(), until=until)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"since/until: {exc}") from None
    built = build_ledger(ctx.store, period.since, period.until, now=ctx.clock(), rule=rule,
                         modes=modes(ctx.config.remediation, ctx.store))
    return ledger_dict(built)


@router.get("/api/v1/remediations/{run_id}", responses=errors(404, 422))
def show_remediation(request: Request, run_id: RowId) -> dict[str, Any]:
    run = request.app.state.ctx.store.get_run(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no remediation run {run_id}")
    return run_dict(run)


@router.post("/api/v1/remediations/{run_id}/approve", responses=errors(*AUTH, 404, 409, 422))
def approve_remediation(request: Request, run_id: RowId, actor: str = Depends(require_token)) -> dict[str, Any]:
    """Grant a run that waits for approval; the daemon runs it in its next cycle."""
    ctx = request.app.state.ctx
    try:
        run = ctx.store.approve_run(run_id, actor=actor, now=ctx.clock())
    except StoreError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, exc.problem) from exc
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return run_dict(run)


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    run.pop("output", None)
    return run
