"""Stage 4: match incidents to remediation rules and run playbooks safely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.context import Context
    from agent.pipeline import Cycle


def remediate(ctx: "Context", cycle: "Cycle") -> list[Any]:
    """Remediation runs started, verified or rolled back this cycle."""
    return []
