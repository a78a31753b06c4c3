"""Store methods for MTTR figures, reports and retention."""

from __future__ import annotations

from agent.store.base import StoreBase


class ReportStore(StoreBase):
    """MTTR figures, reports and retention."""
