"""Store methods for fitted detector state and drift baselines."""

from __future__ import annotations

from agent.store.base import StoreBase


class DetectorStateStore(StoreBase):
    """fitted detector state and drift baselines."""
