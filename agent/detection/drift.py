"""Model drift in the daemon: live histograms of a model's features against its saved baseline."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from agent.sources.base import Samples
from detectors.base import Hit

if TYPE_CHECKING:
    from agent.context import Context


class DriftWatch:
    def detect(self, ctx: "Context", samples: Samples, *, now: datetime) -> list[Hit]:
        return []
