"""Stage 5: deliver notifications from the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle


def notify(ctx: "Context", cycle: "Cycle") -> int:
    """Deliver what is due; returns how many notifications went out."""
    return 0
