"""Config section `retention`: how long raw history is kept, and how pruning runs."""

from __future__ import annotations

from pydantic import Field

from agent.config.types import Seconds, Section


class RetentionConfig(Section):
    """Raw samples and hits are pruned after a period; incidents, runs and audit entries are
    kept unless a period is set for them. Every prune writes an audit entry of what it deleted."""

    samples: Seconds | None = Field(default=14 * 86400.0, gt=0)
    hits: Seconds | None = Field(default=30 * 86400.0, gt=0)
    incidents: Seconds | None = Field(default=None, gt=0)
    runs: Seconds | None = Field(default=None, gt=0)
    audit: Seconds | None = Field(default=None, gt=0)
    interval: Seconds = Field(default=3600.0, gt=0)
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    budget: Seconds = Field(default=5.0, gt=0)
