"""HTTP endpoints for model operations (mounted by ``agent.api.create_app``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import require_token
from agent.api.docs import AUTH, errors
from agent.api.params import RowId
from agent.errors import TransitionError
from agent.flow.rollouts import measurement_dict, rollout_dict
from agent.rollouts import engine
from agent.rollouts.engine import RolloutError

router = APIRouter()


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)
    canary: list[str] | None = Field(default=None, max_length=100)
    reason: str = Field(default="", max_length=1000)
    # Roll out a version whose gate failed or that never passed one; needs a reason (audited).
    override_gate: bool = False


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000)


@router.post("/api/v1/rollouts", status_code=status.HTTP_201_CREATED, responses=errors(400, *AUTH, 409, 422))
def start_rollout(request: Request, body: RolloutIn, actor: str = Depends(require_token)) -> dict[str, Any]:
    """Record a guarded rollout; the daemon's next cycle runs the rollout playbook on the canary.
    A version the models directory does not hold answers 422 with the versions it does; one whose
    gate failed or that never passed one, 409, unless ``override_gate`` with a ``reason``."""
    ctx = request.app.state.ctx
    try:
        rollout = engine.start(ctx, body.model, body.version, canary=body.canary, actor=actor, now=ctx.clock(),
                               reason=body.reason, override_gate=body.override_gate)
    except RolloutError as exc:
        code = status.HTTP_409_CONFLICT if exc.conflict else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from exc
    return rollout_dict(rollout)


@router.get("/api/v1/rollouts", responses=errors(422))
def list_rollouts(request: Request, model: str | None = Query(default=None, max_length=64),
                  limit: int = Query(default=100, ge=1, le=1000)) -> dict[str, Any]:
    rollouts = request.app.state.ctx.store.list_rollouts(model=model, limit=limit)
    return {"rollouts": [rollout_dict(r) for r in rollouts]}


@router.get("/api/v1/rollouts/{rollout_id}", responses=errors(404, 422))
def show_rollout(request: Request, rollout_id: RowId) -> dict[str, Any]:
    store = request.app.state.ctx.store
    rollout = store.get_rollout(rollout_id)
    if rollout is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rollout {rollout_id}")
    return {**rollout_dict(rollout), "measurements": [measurement_dict(m) for m in store.measurements(rollout_id)]}


def _move(request: Request, rollout_id: int, actor: str, body: MoveIn | None, verb: str) -> dict[str, Any]:
    ctx = request.app.state.ctx
    act = engine.abort if verb == "abort" else engine.promote
    try:
        rollout = act(ctx, rollout_id, actor=actor, reason=body.reason if body else "", now=ctx.clock())
    except RolloutError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except TransitionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return rollout_dict(rollout)


@router.post("/api/v1/rollouts/{rollout_id}/abort", responses=errors(400, *AUTH, 404, 409, 422))
def abort_rollout(request: Request, rollout_id: RowId, body: MoveIn | None = None,
                  actor: str = Depends(require_token)) -> dict[str, Any]:
    """Stop a rollout; a version already out is rolled back in the next cycle."""
    return _move(request, rollout_id, actor, body, "abort")


@router.post("/api/v1/rollouts/{rollout_id}/promote", responses=errors(400, *AUTH, 404, 409, 422))
def promote_rollout(request: Request, rollout_id: RowId, body: MoveIn | None = None,
                    actor: str = Depends(require_token)) -> dict[str, Any]:
    """Promote a paused (or analysing) rollout in the next cycle."""
    return _move(request, rollout_id, actor, body, "promote")
