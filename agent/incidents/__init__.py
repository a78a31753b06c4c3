"""Stage 3: correlate hits into incidents and run their lifecycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle


def correlate(ctx: "Context", cycle: "Cycle") -> list[Any]:
    """Incidents opened, updated or resolved this cycle."""
    return []
