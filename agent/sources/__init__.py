"""Stage 1: collect samples from the configured source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.sources.base import Samples, SeriesInfo, Source, series_id, shard_of

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle

__all__ = ["Samples", "SeriesInfo", "Source", "collect", "series_id", "shard_of"]


def collect(ctx: "Context", cycle: "Cycle") -> Samples:
    """The samples this cycle judges."""
    return Samples.empty()
