"""All SQL of the agent. ``Store(target)`` opens (and migrates) the store: the SQLite file (the
default) or a PostgreSQL database (``Store("postgresql://…", password=…)``).

Methods are named for intent (``open_incident``, ``record_run``), take and return dataclasses,
and bind every value. Each part of the store lives in its own module as a mixin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.store.base import GENESIS, AuditBreak, StoreBase, dumps
from agent.store.detectors import DetectorStateStore
from agent.store.incidents import IncidentStore
from agent.store.leases import LeaseStore
from agent.store.outbox import OutboxStore
from agent.store.pushed import PushedAlertStore
from agent.store.reports import ReportStore
from agent.store.rollouts import RolloutStore
from agent.store.runs import RunStore
from agent.store.samples import SampleStore

if TYPE_CHECKING:
    from agent.config.store import StoreConfig

STORE_FILE = "aiops.db"

__all__ = ["AuditBreak", "GENESIS", "STORE_FILE", "Store", "dumps", "open_store"]


class Store(SampleStore, DetectorStateStore, IncidentStore, RunStore, OutboxStore, PushedAlertStore, ReportStore,
            RolloutStore, LeaseStore, StoreBase):
    """The agent's store."""


def open_store(state_dir: Path, config: StoreConfig | None = None) -> Store:
    """The store ``config`` names (``store.url``), else the SQLite file in ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config is None or config.url is None:
        return Store(state_dir / STORE_FILE)
    return Store(config.url, password=config.password_value())
