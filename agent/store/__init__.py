"""All SQL of the agent. ``Store(target)`` opens (and migrates) the store: the SQLite file (the
default) or a PostgreSQL database (``Store("postgresql://…", password=…)``).

Methods are named for intent (``open_incident``, ``record_run``), take and return dataclasses,
and bind every value. Each part of the store lives in its own module as a mixin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

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
from agent.store.sessions import SessionLimits
from agent.store.status import StatusStore
from agent.store.trust import TrustStore

STORE_FILE = "aiops.db"

__all__ = ["AuditBreak", "GENESIS", "STORE_FILE", "Store", "dumps", "open_store"]


class StoreSettings(Protocol):
    """What ``open_store`` reads of the config's ``store`` section (``agent.config.store.StoreConfig``):
    the store sits below the config and does not import it."""

    @property
    def url(self) -> str | None: ...
    @property
    def lock_timeout(self) -> float: ...
    @property
    def statement_timeout(self) -> float: ...
    @property
    def idle_in_transaction_timeout(self) -> float: ...
    @property
    def connect_timeout(self) -> float: ...

    def password_value(self) -> str | None: ...


class Store(SampleStore, DetectorStateStore, IncidentStore, RunStore, OutboxStore, PushedAlertStore, ReportStore,
            RolloutStore, LeaseStore, TrustStore, StatusStore, StoreBase):
    """The agent's store."""


def open_store(state_dir: Path, config: StoreSettings | None = None) -> Store:
    """The store ``config`` names (``store.url``), else the SQLite file in ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config is None or config.url is None:
        return Store(state_dir / STORE_FILE)
    sessions = SessionLimits(lock_timeout_s=config.lock_timeout, statement_timeout_s=config.statement_timeout,
                             idle_in_transaction_timeout_s=config.idle_in_transaction_timeout,
                             connect_timeout_s=config.connect_timeout)
    return Store(config.url, password=config.password_value(), sessions=sessions)
