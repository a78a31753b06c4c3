"""Store methods for remediation runs."""

from __future__ import annotations

from agent.store.base import StoreBase


class RunStore(StoreBase):
    """remediation runs."""
