"""Config section `detectors`."""

from __future__ import annotations

from agent.config.types import Section


class DetectorsConfig(Section):
    """Settings for detectors."""
