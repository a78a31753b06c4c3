"""Store methods for the notification outbox."""

from __future__ import annotations

from agent.store.base import StoreBase


class OutboxStore(StoreBase):
    """the notification outbox."""
