"""Store methods for series and the bounded sample history of the scrape source.

The scrape source has no Prometheus behind it, so the store keeps what seasonal detectors need:
derived values (gauges, rates, quantiles, bucket increases) per series, pruned past the
retention in small batches so that pruning never holds the write lock for long. The last raw
value of every counter lives in ``scrape_counters`` so rates survive a restart (``aiops once``
is a new process every time).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from agent.flow.samples import SeriesInfo
from agent.store.base import StoreBase
from agent.store.migrations import migration, run_script


@migration(10, "scrape counters")
def _scrape_counters(conn: sqlite3.Connection) -> None:
    run_script(conn, """
        CREATE TABLE scrape_counters (
            key TEXT PRIMARY KEY, ts REAL NOT NULL, value REAL NOT NULL) WITHOUT ROWID;
        CREATE INDEX series_last_seen ON series(last_seen)
    """)


@migration(11, "collect cursor")
def _collect_cursor(conn: sqlite3.Connection) -> None:
    run_script(conn, "CREATE TABLE collect_cursor (name TEXT PRIMARY KEY, last_end REAL NOT NULL) WITHOUT ROWID")


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterReading:
    """The last raw value of one counter (or histogram bucket) and when it was read."""

    key: str
    ts: float
    value: float


class SampleStore(StoreBase):
    """series and the bounded sample history of the scrape source."""

    def collected_until(self, name: str) -> float | None:
        """The end (epoch seconds) of the last window collected under ``name``, by any process."""
        row = self.conn.execute("SELECT last_end FROM collect_cursor WHERE name = ?", (name,)).fetchone()
        return None if row is None else float(row[0])

    def set_collected_until(self, name: str, end: float) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO collect_cursor (name, last_end) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET last_end = excluded.last_end", (name, end))

    def record_samples(self, series: Iterable[SeriesInfo], rows: Sequence[tuple[str, float, float]],
                       *, now: float) -> int:
        """Register ``series`` (first/last seen) and insert ``(series_id, ts, value)`` rows."""
        registry = [(s.series_id, s.metric, json.dumps(dict(s.labels), sort_keys=True), s.kind, now, now)
                    for s in series]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO series (series_id, metric, labels, kind, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(series_id) DO UPDATE SET last_seen = excluded.last_seen, kind = excluded.kind",
                registry)
            conn.executemany("INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)", rows)
        return len(rows)

    def record_derived(self, series_id: str, ts: float, value: float) -> None:
        """One value of a series the agent computes itself (a model's drift rate), kept for the
        incident pages' plots. It is not registered as a series, so no detector and no history
        read takes it for a scraped one; retention prunes it with the samples."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                         (series_id, ts, value))

    def known_series(self, *, labels: dict[str, str] | None = None, seen_since: float | None = None) -> list[SeriesInfo]:
        """Registered series, optionally only those carrying every label in ``labels``."""
        sql = "SELECT series_id, metric, labels, kind FROM series WHERE last_seen >= ?"
        params: list[object] = [seen_since if seen_since is not None else float("-inf")]
        for name, value in (labels or {}).items():
            sql += " AND json_extract(labels, ?) = ?"
            params += [f'$."{name}"', value]
        return [SeriesInfo(series_id=r["series_id"], metric=r["metric"], labels=json.loads(r["labels"]), kind=r["kind"])
                for r in self.conn.execute(sql + " ORDER BY series_id", params)]

    def sample_history(self, start: float, end: float, series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Samples in ``[start, end]`` as a long frame: columns series_id, ts (epoch s), value."""
        sql = "SELECT series_id, ts, value FROM samples WHERE ts >= ? AND ts <= ?"
        params: list[object] = [start, end]
        if series_ids is not None:
            sql += " AND series_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(series_ids)))
        rows = self.conn.execute(sql, params).fetchall()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["series_id", "ts", "value"])
        return frame.astype({"series_id": "object", "ts": "float64", "value": "float64"})

    def prune_scrape_history(self, before: float, *, max_rows: int) -> int:
        """Delete at most ``max_rows`` samples older than ``before``, oldest first; the count deleted.

        Bounded so a cycle never waits on a long delete: a backlog clears over several cycles."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM samples WHERE (series_id, ts) IN "
                "(SELECT series_id, ts FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)", (before, max_rows))
            deleted = cursor.rowcount
            conn.execute(
                "DELETE FROM series WHERE last_seen < ? AND NOT EXISTS "
                "(SELECT 1 FROM samples WHERE samples.series_id = series.series_id)",
                (before,))
            conn.execute("DELETE FROM scrape_counters WHERE ts < ?", (before,))
        return deleted

    def counter_readings(self, keys: Iterable[str]) -> dict[str, CounterReading]:
        rows = self.conn.execute(
            "SELECT key, ts, value FROM scrape_counters WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),)).fetchall()
        return {r["key"]: CounterReading(key=r["key"], ts=r["ts"], value=r["value"]) for r in rows}

    def save_counter_readings(self, readings: Iterable[CounterReading]) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO scrape_counters (key, ts, value) VALUES (?, ?, ?)",
                             [(r.key, r.ts, r.value) for r in readings])
