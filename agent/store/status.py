"""What each agent last reported about itself (``agent.flow.status``): one row per shard,
replaced by the agent working it once a cycle, so ``aiops status`` and ``/status`` in any
process show every agent sharing the store, and how long ago each last reported.
``StatusRepository`` (``store.status``) is what a stage is handed."""

from __future__ import annotations

import json
import sqlite3

from agent.clock import to_epoch
from agent.flow.status import AgentStatus
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script


@migration(12, "agent status: what each shard's agent last reported")
def _agent_status(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE agent_status (
            shard TEXT PRIMARY KEY, holder TEXT NOT NULL, updated_at REAL NOT NULL, data TEXT NOT NULL)
    """)


class StatusRepository:
    """The ``agent_status`` table, on ``db``'s connection and transactions."""

    def __init__(self, db: StoreBase) -> None:
        self.db = db

    def save(self, status: AgentStatus) -> None:
        """Replace ``status.shard``'s row with ``status``."""
        with self.db.transaction():
            self.db.conn.execute(
                "INSERT INTO agent_status (shard, holder, updated_at, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (shard) DO UPDATE SET holder = excluded.holder, updated_at = excluded.updated_at, "
                "data = excluded.data",
                (status.shard, status.holder, to_epoch(status.updated_at), dumps(status.to_data())))

    def all(self) -> list[AgentStatus]:
        """Every shard's last report, by shard."""
        rows = self.db.conn.execute("SELECT data FROM agent_status ORDER BY shard")
        return [AgentStatus.from_data(json.loads(r[0])) for r in rows]


class StatusStore(StoreBase):
    """The store's face of ``StatusRepository``: ``store.status``."""

    @property
    def status(self) -> StatusRepository:
        return StatusRepository(self)
