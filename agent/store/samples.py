"""Store methods for series and the bounded sample history of the scrape source.

The scrape source has no Prometheus behind it, so the store keeps what seasonal detectors need:
derived values (gauges, rates, quantiles, bucket increases) per series. A series is stored under
an integer key (``sample_keys``); its samples are packed one chunk per hour (``sample_chunks``,
see ``agent.store.chunks``: about 2-8 bytes a sample instead of a row holding the series' text).
A cycle's samples land in ``sample_head``, one small row each, until their hour is over; the next
write after that packs the hour into chunks. Reads merge both. Retention drops whole chunks (an
hour of one series), oldest first, in bounded batches so pruning never holds the write lock for
long. The last raw value of every counter lives in ``scrape_counters`` so rates survive a restart
(``aiops once`` is a new process every time).

Timestamps are kept to the microsecond and values bit for bit (-0.0 included, which the rows
before chunks kept as 0), except that a NaN is NaN whatever its payload (SQLite keeps NaN as NULL).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.flow.samples import SeriesInfo
from agent.store import chunks
from agent.store.base import StoreBase, each_value
from agent.store.chunks import CHUNK_S, Decoded
from agent.store.migrations import is_postgresql, migration, run_script
from agent.store.silences import SilenceStore

_BATCH_ROWS = 200_000  # old rows moved per step of the chunk migration


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


@migration(70, "samples: integer series keys, hourly chunks")
def _sample_chunks(conn: sqlite3.Connection) -> None:
    """Move every row of ``samples`` into chunks, then drop the table (VACUUM gives the space back)."""
    # The head's value has no declared type: a REAL column would keep -0.0 as the integer 0.
    script = """
        CREATE TABLE sample_keys (key INTEGER PRIMARY KEY, series_id TEXT NOT NULL UNIQUE);
        CREATE TABLE sample_chunks (
            series_key INTEGER NOT NULL, start INTEGER NOT NULL, n INTEGER NOT NULL,
            codec INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (series_key, start)) WITHOUT ROWID;
        CREATE INDEX sample_chunks_start ON sample_chunks(start);
        CREATE TABLE sample_head (
            ts INTEGER NOT NULL, series_key INTEGER NOT NULL, value,
            PRIMARY KEY (ts, series_key)) WITHOUT ROWID
    """
    if is_postgresql(conn):  # PostgreSQL's double precision keeps -0.0 as it is
        script = script.replace("value,", "value DOUBLE PRECISION,")
    run_script(conn, script)
    cursor = conn.execute("SELECT series_id, ts, value FROM samples ORDER BY series_id, ts")
    carried: list[tuple[str, float, float | None]] = []
    while batch := cursor.fetchmany(_BATCH_ROWS):
        rows = carried + [tuple(r) for r in batch]
        cut = len(rows)
        while cut and rows[cut - 1][0] == rows[-1][0]:  # the last series may go on in the next batch
            cut -= 1
        carried = rows[cut:]
        _move_rows(conn, rows[:cut])
    _move_rows(conn, carried)
    run_script(conn, "DROP INDEX samples_ts; DROP TABLE samples")


def _move_rows(conn: sqlite3.Connection, rows: Sequence[tuple[str, float, float | None]]) -> None:
    if not rows:
        return
    ids = list(dict.fromkeys(r[0] for r in rows))
    keys = _keys(conn, ids, create=True)
    write_chunks(conn, Decoded(np.fromiter((keys[r[0]] for r in rows), "int64", len(rows)),
                               chunks.to_us([r[1] for r in rows]),
                               np.array([r[2] for r in rows], dtype="float64")))


def _keys(conn: sqlite3.Connection, series_ids: Sequence[str], *, create: bool) -> dict[str, int]:
    """The integer key of each of ``series_ids`` (new ones get a key when ``create``)."""
    sql = f"SELECT series_id, key FROM sample_keys WHERE series_id IN ({each_value(conn)})"
    found = dict(conn.execute(sql, (json.dumps(list(series_ids)),)).fetchall())
    missing = [sid for sid in series_ids if sid not in found]
    if missing and create:
        conn.executemany("INSERT INTO sample_keys (series_id) VALUES (?)", [(sid,) for sid in missing])
        found.update(conn.execute(sql, (json.dumps(missing),)).fetchall())
    return found


def write_chunks(conn: sqlite3.Connection, samples: Decoded) -> None:
    """Merge ``samples`` into the stored chunks: each chunk they touch is read, merged (the new
    sample wins a tie on time) and written back whole."""
    samples = chunks.sort_unique(samples)
    if not len(samples):
        return
    starts = chunks.chunk_start(samples.ts_us)
    keys = np.unique(samples.keys)
    cur = conn.cursor()
    cur.row_factory = None
    stored = cur.execute(
        "SELECT series_key, start, n, codec, data FROM sample_chunks "
        f"WHERE series_key IN ({each_value(conn, integer=True)}) AND start >= ? AND start <= ? "
        "ORDER BY series_key, start",
        (json.dumps(keys.tolist()), int(starts.min()), int(starts.max()))).fetchall()
    if stored:
        touched = set(zip(samples.keys.tolist(), starts.tolist()))
        stored = [r for r in stored if (r[0], r[1]) in touched]
        samples = chunks.merge(chunks.decode(stored), samples)
    conn.executemany("INSERT INTO sample_chunks (series_key, start, n, codec, data) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT(series_key, start) DO UPDATE SET n = excluded.n, codec = excluded.codec, "
                     "data = excluded.data", chunks.encode(samples))


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
        """Register ``series`` (first/last seen) and store ``(series_id, ts, value)`` rows (a row
        for a series and time already stored replaces it). Hours before ``now``'s are packed."""
        with self.transaction() as conn:
            self._register(conn, series, now)
            if rows:
                keys = _keys(conn, list(dict.fromkeys(r[0] for r in rows)), create=True)
                conn.executemany("INSERT INTO sample_head (ts, series_key, value) VALUES (?, ?, ?) "
                                 "ON CONFLICT(ts, series_key) DO UPDATE SET value = excluded.value",
                                 [(round(ts * chunks.US), keys[sid], value) for sid, ts, value in rows])
            self._pack_head(conn, now)
        return len(rows)

    def backfill_samples(self, series: Sequence[SeriesInfo], ts: Sequence[float] | np.ndarray, values: np.ndarray,
                         *, now: float) -> int:
        """Register ``series`` and store ``values[i, j]``, the sample of ``series[i]`` at ``ts[j]``
        (epoch s), straight into chunks: what ``record_samples`` would keep, for a block of past
        history (an import) without the per-row head. Returns the number of samples."""
        values = np.asarray(values, dtype="float64")
        if values.shape != (len(series), len(ts)):
            raise ValueError(f"backfill: values shape {values.shape}, expected (series, ts) = ({len(series)}, {len(ts)})")
        with self.transaction() as conn:
            self._register(conn, series, now)
            keys = _keys(conn, [s.series_id for s in series], create=True)
            key_of = np.array([keys[s.series_id] for s in series], dtype="int64")
            write_chunks(conn, Decoded(np.repeat(key_of, len(ts)), np.tile(chunks.to_us(ts), len(series)),
                                       values.ravel()))
        return int(values.size)

    def record_derived(self, series_id: str, ts: float, value: float) -> None:
        """One value of a series the agent computes itself (a model's drift rate), kept for the
        incident pages' plots. It is not registered as a series, so no detector and no history
        read takes it for a scraped one; retention prunes it with the samples."""
        self.record_samples([], [(series_id, ts, value)], now=ts)

    @staticmethod
    def _register(conn: sqlite3.Connection, series: Iterable[SeriesInfo], now: float) -> None:
        registry = [(s.series_id, s.metric, json.dumps(dict(s.labels), sort_keys=True), s.kind, now, now)
                    for s in series]
        conn.executemany(
            "INSERT INTO series (series_id, metric, labels, kind, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(series_id) DO UPDATE SET last_seen = excluded.last_seen, kind = excluded.kind",
            registry)

    @staticmethod
    def _pack_head(conn: sqlite3.Connection, now: float) -> None:
        """Pack the head's samples of hours before ``now``'s into chunks."""
        boundary = int(chunks.chunk_start(round(now * chunks.US))) * chunks.US
        oldest = conn.execute("SELECT min(ts) FROM sample_head").fetchone()[0]
        if oldest is None or oldest >= boundary:
            return
        cur = conn.cursor()
        cur.row_factory = None
        rows = cur.execute("SELECT series_key, ts, value FROM sample_head WHERE ts < ?", (boundary,)).fetchall()
        write_chunks(conn, _as_samples(rows))
        conn.execute("DELETE FROM sample_head WHERE ts < ?", (boundary,))

    def known_series(self, *, labels: dict[str, str] | None = None, seen_since: float | None = None,
                     series_ids: Sequence[str] | None = None) -> list[SeriesInfo]:
        """Registered series, optionally only those carrying every label in ``labels``, or only
        those of ``series_ids``."""
        sql = "SELECT series_id, metric, labels, kind FROM series WHERE last_seen >= ?"
        params: list[object] = [seen_since if seen_since is not None else float("-inf")]
        if series_ids is not None:
            sql += f" AND series_id IN ({each_value(self.conn)})"
            params.append(json.dumps(list(series_ids)))
        for name, value in (labels or {}).items():
            sql += " AND json_extract(labels, ?) = ?"
            params += [f'$."{name}"', value]
        return [SeriesInfo(series_id=r["series_id"], metric=r["metric"], labels=json.loads(r["labels"]), kind=r["kind"])
                for r in self.conn.execute(sql + " ORDER BY series_id", params)]

    # -- reading history -------------------------------------------------------------------------

    def sample_history(self, start: float, end: float, series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Samples in ``[start, end]`` as a long frame: columns series_id, ts (epoch s), value;
        ordered by time, then series."""
        packed, head, names = self._read(start, end, series_ids)
        found = chunks.merge(packed, head)
        frame = pd.DataFrame({"series_id": names[found.keys] if len(found) else np.empty(0, dtype=object),
                              "ts": chunks.to_s(found.ts_us), "value": found.values})
        frame = frame.sort_values(["ts", "series_id"], kind="stable", ignore_index=True)
        return frame.astype({"series_id": "object", "ts": "float64", "value": "float64"})

    def sample_frame(self, start: float, end: float, series_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Samples in ``[start, end]`` as a wide frame: rows = epoch seconds (ascending), one float64
        column per series that has samples, by series_id; NaN where a series has no sample."""
        packed, head, names = self._read(start, end, series_ids)
        if not len(packed) and not len(head):
            return pd.DataFrame(index=pd.Index([], dtype="float64"), dtype="float64")
        present = np.union1d(_runs(packed.keys)[0], _runs(head.keys)[0])
        times = np.unique(np.concatenate((packed.ts_us, head.ts_us)))
        wide = np.full((len(times), len(present)), np.nan)
        for part in (packed, head):  # the head's sample of a time wins over a packed one
            keys, sizes = _runs(part.keys)
            columns = np.repeat(np.searchsorted(present, keys), sizes)
            wide[np.searchsorted(times, part.ts_us), columns] = part.values
        columns = names[present]
        order = np.argsort(columns, kind="stable")
        return pd.DataFrame(wide[:, order], index=pd.Index(chunks.to_s(times)), columns=columns[order].tolist())

    def _read(self, start: float, end: float, series_ids: Sequence[str] | None) -> tuple[Decoded, Decoded, np.ndarray]:
        """Packed and head samples in ``[start, end]`` of ``series_ids`` (all when None), each
        sorted by (key, ts), and the series_id of each key as an array indexed by key."""
        conn = self.conn
        cur = conn.cursor()
        cur.row_factory = None
        lo, hi = round(start * chunks.US), round(end * chunks.US)
        span = (int(chunks.chunk_start(lo)), int(chunks.chunk_start(hi)))
        if series_ids is None:
            key_rows = cur.execute("SELECT key, series_id FROM sample_keys").fetchall()
            stored = cur.execute("SELECT series_key, start, n, codec, data FROM sample_chunks "
                                 "WHERE start >= ? AND start <= ? ORDER BY series_key, start", span).fetchall()
        else:
            ids = json.dumps(list(series_ids))
            key_rows = cur.execute("SELECT key, series_id FROM sample_keys "
                                   f"WHERE series_id IN ({each_value(conn)})", (ids,)).fetchall()
            stored = cur.execute(
                "SELECT series_key, start, n, codec, data FROM sample_chunks WHERE series_key IN "
                f"(SELECT key FROM sample_keys WHERE series_id IN ({each_value(conn)})) "
                "AND start >= ? AND start <= ? ORDER BY series_key, start", (ids, *span)).fetchall()
        head_sql = "SELECT series_key, ts, value FROM sample_head WHERE ts >= ? AND ts <= ?"
        if series_ids is None:
            head = _as_samples(cur.execute(head_sql, (lo, hi)).fetchall())
        else:
            head = _as_samples(cur.execute(head_sql + f" AND series_key IN ({each_value(conn, integer=True)})",
                                           (lo, hi, json.dumps([k for k, _ in key_rows]))).fetchall())
        names = np.empty(max((k for k, _ in key_rows), default=0) + 1, dtype=object)
        for key, sid in key_rows:
            names[key] = sid
        packed = chunks.decode(stored)
        packed = _where(packed, (packed.ts_us >= lo) & (packed.ts_us <= hi))  # the first and last hours
        return packed, head, names

    def sample_span(self) -> tuple[float, float] | None:
        """The first and last time (epoch s) the history holds, to the hour for packed samples;
        None when it holds none."""
        row = self.conn.execute(
            "SELECT (SELECT min(start) FROM sample_chunks), (SELECT max(start) FROM sample_chunks), "
            "(SELECT min(ts) FROM sample_head), (SELECT max(ts) FROM sample_head)").fetchone()
        firsts = [v for v in (row[0], row[2]) if v is not None]
        lasts = [v for v in (None if row[1] is None else row[1] + chunks.CHUNK_US, row[3]) if v is not None]
        if not firsts:
            return None
        return min(firsts) / chunks.US, max(lasts) / chunks.US

    # -- retention ----------------------------------------------------------------------------------

    def prune_scrape_history(self, before: float, *, max_rows: int) -> int:
        """Drop at most about ``max_rows`` samples older than ``before``, a whole chunk (an hour of
        one series) at a time, oldest first; the count dropped. Series last seen before ``before``
        with nothing left are forgotten.

        Bounded so a cycle never waits on a long delete: a backlog clears over several cycles."""
        with self.transaction() as conn:
            deleted = self._drop_samples(conn, before, max_rows)
            # A series last seen before the cut-off was last written then: its samples are gone
            # once its key is (keys go with their last chunk).
            conn.execute("DELETE FROM series WHERE last_seen < ? AND series_id NOT IN "
                         "(SELECT series_id FROM sample_keys)", (before,))
            conn.execute("DELETE FROM scrape_counters WHERE ts < ?", (before,))
        return deleted

    def prune_samples(self, before_s: float, limit: int) -> int:
        """Retention's batch: like ``prune_scrape_history``, without touching the series registry."""
        with self.transaction() as conn:
            return self._drop_samples(conn, before_s, limit)

    @staticmethod
    def _drop_samples(conn: sqlite3.Connection, before: float, limit: int) -> int:
        """Chunks wholly before ``before`` (about ``limit`` samples; at least one chunk), the head's
        samples before it, and the keys left without samples; the count of samples dropped."""
        candidates = conn.execute("SELECT series_key, start, n FROM sample_chunks WHERE start <= ? ORDER BY start LIMIT ?",
                                  (before - CHUNK_S, limit)).fetchall()
        dropped: list[tuple[int, int]] = []
        count = 0
        for key, start, n in candidates:
            if dropped and count + n > limit:
                break
            dropped.append((key, start))
            count += n
        conn.executemany("DELETE FROM sample_chunks WHERE series_key = ? AND start = ?", dropped)
        emptied = {k for k, _ in dropped}
        if count < limit:
            gone = conn.execute(
                "DELETE FROM sample_head WHERE (ts, series_key) IN "
                "(SELECT ts, series_key FROM sample_head WHERE ts < ? ORDER BY ts LIMIT ?) RETURNING series_key",
                (round(before * chunks.US), limit - count)).fetchall()
            count += len(gone)
            emptied.update(k for (k,) in gone)
        if emptied:  # a key goes with its last sample
            orphans = [k for (k,) in conn.execute(
                f"SELECT key FROM sample_keys WHERE key IN ({each_value(conn, integer=True)}) AND NOT EXISTS "
                "(SELECT 1 FROM sample_chunks WHERE series_key = key)", (json.dumps(sorted(emptied)),))]
            if orphans:
                conn.execute(f"DELETE FROM sample_keys WHERE key IN ({each_value(conn, integer=True)}) AND key NOT IN "
                             "(SELECT DISTINCT series_key FROM sample_head)", (json.dumps(orphans),))
        return count

    def counter_readings(self, keys: Iterable[str]) -> dict[str, CounterReading]:
        rows = self.conn.execute(
            f"SELECT key, ts, value FROM scrape_counters WHERE key IN ({each_value(self.conn)})",
            (json.dumps(list(keys)),)).fetchall()
        return {r["key"]: CounterReading(key=r["key"], ts=r["ts"], value=r["value"]) for r in rows}

    def save_counter_readings(self, readings: Iterable[CounterReading]) -> None:
        with self.transaction() as conn:
            conn.executemany("INSERT INTO scrape_counters (key, ts, value) VALUES (?, ?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET ts = excluded.ts, value = excluded.value",
                             [(r.key, r.ts, r.value) for r in readings])


def _as_samples(rows: Sequence[tuple[int, int, float | None]]) -> Decoded:
    """(series_key, ts_us, value) rows → samples sorted by (key, ts); a NULL value is NaN."""
    if not rows:
        return Decoded.empty()
    keys, ts, values = zip(*rows)
    return chunks.sort_unique(Decoded(np.array(keys, dtype="int64"), np.array(ts, dtype="int64"),
                                      np.array(values, dtype="float64")))


def _where(samples: Decoded, mask: np.ndarray) -> Decoded:
    if mask.all():
        return samples
    return Decoded(samples.keys[mask], samples.ts_us[mask], samples.values[mask])


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys of sorted ``keys`` and how many times each occurs, in order."""
    if not len(keys):
        return np.empty(0, "int64"), np.empty(0, "int64")
    first = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    return keys[first], np.diff(np.concatenate((first, [len(keys)])))


class SampleReader(SampleStore, SilenceStore):
    """The sample history and the silences of a SQLite store file, read-only (SQLite's
    ``mode=ro``): never migrated or written, so a replay can read a live agent's beside it."""

    def __init__(self, path: Path) -> None:  # noqa: D107 - no StoreBase.__init__: it would migrate
        self.path = Path(path)
        self.postgresql = False
        self._engine = None
        self._local = threading.local()

    def _connect_sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                               timeout=self.BUSY_TIMEOUT_MS / 1000, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
        conn.row_factory = sqlite3.Row
        return conn
