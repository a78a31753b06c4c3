"""HTTP endpoints of this stage (mounted by ``agent.api.create_app``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
