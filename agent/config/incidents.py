"""Config section `incidents`."""

from __future__ import annotations

from agent.config.types import Section


class IncidentsConfig(Section):
    """Settings for incidents."""
