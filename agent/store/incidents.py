"""Store methods for hits, incidents, their signals and timeline, changes and silences."""

from __future__ import annotations

from agent.store.base import StoreBase


class IncidentStore(StoreBase):
    """hits, incidents, their signals and timeline, changes and silences."""

    def count_open_incidents(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM incidents WHERE status != 'resolved'").fetchone()
        return int(row[0])
