"""Sample history in hourly chunks: exact round trips, replaced and late samples, retention by
whole chunks, and stores from before chunks keeping every sample."""

from __future__ import annotations

import math
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from agent.flow.samples import SeriesInfo
from agent.store import Store, migrations
from agent.store import samples as sample_store
from agent.store.chunks import CHUNK_S

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()  # on an hour
HOUR = CHUNK_S
# Written by the store API of main at 136c160 (one row a sample): three series scraped each minute
# from T0 for five hours with millisecond jitter (node_load1 with a NaN at minute 42, a rate at
# full float precision, memory bytes), node_load1 minute 10 written twice (9.75 replaced it),
# three late scrapes out of order (one of them -0.0), and a derived series at microsecond times.
OLD_STORE = Path(__file__).resolve().parent.parent / "fixtures" / "stores" / "main-136c160-samples.sqlite"
LOAD = 'node_load1{instance="a:9100",job="node"}'


def info(sid: str) -> SeriesInfo:
    return SeriesInfo(series_id=sid, metric=sid.split("{")[0])


def rows_of(store: Store, start: float = 0.0, end: float = 4e9) -> list[tuple[str, float, float]]:
    frame = store.sample_history(start, end)
    return sorted(zip(frame["series_id"], frame["ts"], frame["value"]))


def same(a: list[tuple[str, float, float]], b: list[tuple[str, float, float]]) -> bool:
    """Equal row for row, values bit for bit (so -0.0 is not 0.0), NaN equal to NaN."""
    def bits(v: float) -> bytes:
        return b"nan" if math.isnan(v) else np.float64(v).tobytes()
    return len(a) == len(b) and all((x[0], x[1], bits(x[2])) == (y[0], y[1], bits(y[2])) for x, y in zip(a, b))


def odd_values(n: int) -> list[float]:
    """Values that exercise both codecs: decimals, integers, full-precision floats and specials."""
    special = [float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1.7976931348623157e308]
    out = [round(20 + i * 0.37, 2) if i % 3 == 0 else float(i * 4096) if i % 3 == 1 else i / 7 for i in range(n)]
    out[: len(special)] = special
    return out


def test_samples_come_back_exactly_from_the_head_and_from_packed_chunks(store):
    values = odd_values(150)
    times = [T0 + 30 * i + (0.000001 * i if i % 2 else 0.001 * i) for i in range(150)]  # microseconds kept
    rows = [("odd", t, v) for t, v in zip(times, values)]
    rows += [("tenths", t, round(0.1 * i, 1)) for i, t in enumerate(times)]  # the decimal codec
    store.record_samples([info("odd"), info("tenths")], rows, now=times[-1])
    assert same(rows_of(store), sorted(rows))
    head = store.query_one("SELECT count(*) FROM sample_head")[0]
    store.record_samples([], [], now=T0 + 3 * HOUR)  # the next hour's first write packs the past
    assert store.query_one("SELECT count(*) FROM sample_head")[0] == 0 < head
    assert sorted(r[0] for r in store.query("SELECT DISTINCT codec FROM sample_chunks")) == [0, 2]
    assert same(rows_of(store), sorted(rows))
    assert same(rows_of(store, times[10], times[20]), sorted(r for r in rows if times[10] <= r[1] <= times[20]))


def test_a_sample_written_again_replaces_the_first_even_once_packed(store):
    store.record_samples([info("a")], [("a", T0 + 60 * m, float(m)) for m in range(3)], now=T0 + 120)
    store.record_samples([info("a")], [("a", T0 + 60, 10.0)], now=T0 + 120)  # in the head
    store.record_samples([], [], now=T0 + HOUR)
    store.record_samples([info("a")], [("a", T0 + 120, 20.0), ("a", T0 + 30, 0.5)], now=T0 + HOUR)  # late
    assert rows_of(store) == [("a", T0, 0.0), ("a", T0 + 30, 0.5), ("a", T0 + 60, 10.0), ("a", T0 + 120, 20.0)]
    store.record_samples([], [], now=T0 + 2 * HOUR)  # the late ones merge into the packed hour
    assert store.query_one("SELECT count(*), sum(n) FROM sample_chunks")[:] == (1, 4)
    assert rows_of(store) == [("a", T0, 0.0), ("a", T0 + 30, 0.5), ("a", T0 + 60, 10.0), ("a", T0 + 120, 20.0)]


def test_backfill_gives_what_recording_row_by_row_gives(tmp_path):
    series = [info("x"), info("y")]
    times = [T0 + 60 * i for i in range(130)]
    values = np.array([odd_values(130), [i % 5 for i in range(130)]], dtype="float64")
    one, other = Store(tmp_path / "one.db"), Store(tmp_path / "other.db")
    assert one.backfill_samples(series, times, values, now=times[-1]) == 260
    other.record_samples(series, [(s.series_id, t, float(v)) for s, row in zip(series, values)
                                  for t, v in zip(times, row)], now=times[-1])
    assert same(rows_of(one), rows_of(other)) and len(rows_of(one)) == 260
    with pytest.raises(ValueError, match=r"backfill: values shape \(2, 130\), expected \(series, ts\) = \(2, 129\)"):
        one.backfill_samples(series, times[:-1], values, now=times[-1])


def test_the_wide_frame_puts_each_series_in_its_column_at_its_times(store):
    store.record_samples([info("b"), info("a")], [("b", T0, 1.0), ("a", T0 + 60, 2.0), ("b", T0 + 60, 3.0)],
                         now=T0 + HOUR)
    wide = store.sample_frame(0, 4e9)
    assert list(wide.columns) == ["a", "b"] and list(wide.index) == [T0, T0 + 60]
    assert wide.to_numpy().tolist()[1] == [2.0, 3.0] and math.isnan(wide.to_numpy()[0, 0])
    assert list(store.sample_frame(0, 4e9, ["b"]).columns) == ["b"]
    assert store.sample_frame(0, T0 - 1).empty


def test_retention_drops_whole_hours_oldest_first_and_forgets_keys_left_empty(store):
    minutes = range(0, 180, 10)  # three hours, six samples in each
    store.record_samples([info("a"), info("b")], [(s, T0 + 60 * m, float(m)) for m in minutes for s in "ab"],
                         now=T0 + 3 * HOUR)
    store.record_samples([info("b")], [("b", T0 + 3 * HOUR, 1.0)], now=T0 + 3 * HOUR)
    # The cut-off is inside the second hour: only the first hour goes, and at most ~7 samples a call.
    assert store.prune_scrape_history(T0 + HOUR + 1800, max_rows=7) == 6
    assert store.prune_scrape_history(T0 + HOUR + 1800, max_rows=7) == 6
    assert store.prune_scrape_history(T0 + HOUR + 1800, max_rows=7) == 0
    assert min(r[1] for r in rows_of(store)) == T0 + HOUR
    assert store.prune_samples(T0 + 3 * HOUR, 100) == 24
    assert rows_of(store) == [("b", T0 + 3 * HOUR, 1.0)]
    assert [r[0] for r in store.query("SELECT series_id FROM sample_keys")] == ["b"]  # a's samples are all gone
    assert store.prune_scrape_history(T0 + 3 * HOUR, max_rows=100) == 0
    assert [s.series_id for s in store.known_series()] == ["a", "b"]  # both last seen at T0 + 3 h
    assert store.prune_scrape_history(T0 + 3 * HOUR + 1, max_rows=100) == 1  # b's last sample, from the head
    assert store.known_series() == [] and store.query("SELECT * FROM sample_keys") == []


def test_a_store_written_by_main_before_chunks_keeps_every_sample(tmp_path):
    path = tmp_path / "aiops.db"
    shutil.copy(OLD_STORE, path)
    conn = sqlite3.connect(path)
    before = sorted(conn.execute("SELECT series_id, ts, coalesce(value, 'nan') FROM samples").fetchall())
    conn.close()
    before = [(s, t, float(v)) for s, t, v in before]
    assert len(before) == 924 and sum(math.isnan(r[2]) for r in before) == 1
    store = Store(path)
    assert 70 in {r[0] for r in store.query("SELECT number FROM migrations")}
    assert store.query_one("SELECT count(*) FROM sqlite_master WHERE name = 'samples'")[0] == 0
    assert same(rows_of(store), before)
    assert (LOAD, T0 + 600, 9.75) in before and (LOAD, T0 + 60 * 301.5, -0.0) in before
    # Three series in hours 9-13, node_load1's late scrapes in hour 14, the derived series in hours 9-12.
    assert store.query_one("SELECT count(*) FROM sample_chunks")[0] == 3 * 5 + 1 + 4


def test_the_migration_moves_rows_across_its_batches_and_series(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:  # the store as it was before chunks
        patch.delitem(migrations.MIGRATIONS, 70)
        old = Store(path)
    rng = np.random.default_rng(7)
    rows = [(f"s{i:02d}", float(T0 + 60 * m), float(rng.normal()) if m % 11 else None)
            for i in range(30) for m in range(int(rng.integers(1, 400)))]
    with old.transaction() as conn:
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?)", rows)
    old.close()
    monkeypatch.setattr(sample_store, "_BATCH_ROWS", 97)  # series cross batch ends
    store = Store(path)
    expected = sorted((s, t, float("nan") if v is None else v) for s, t, v in rows)
    assert len(expected) > 3000 and same(rows_of(store), expected)
    assert store.query_one("SELECT count(*) FROM sample_keys")[0] == 30
