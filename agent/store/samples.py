"""Store methods for series and the bounded sample history of the scrape source."""

from __future__ import annotations

from agent.store.base import StoreBase


class SampleStore(StoreBase):
    """series and the bounded sample history of the scrape source."""
