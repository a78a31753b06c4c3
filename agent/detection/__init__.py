"""Stage 2: run the configured detectors over the collected samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.base import Hit

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle


def detect(ctx: "Context", cycle: "Cycle") -> list[Hit]:
    """Hits among this cycle's new points."""
    return []
