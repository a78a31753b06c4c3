"""Config section `notify`."""

from __future__ import annotations

from agent.config.types import Section


class NotifyConfig(Section):
    """Settings for notify."""
