"""Config section `retention`."""

from __future__ import annotations

from agent.config.types import Section


class RetentionConfig(Section):
    """Settings for retention."""
