"""Config section `remediation`."""

from __future__ import annotations

from agent.config.types import Section


class RemediationConfig(Section):
    """Settings for remediation."""
