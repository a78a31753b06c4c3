"""Config section `sources`."""

from __future__ import annotations

from agent.config.types import Section


class SourcesConfig(Section):
    """Settings for sources."""
