"""Benchmark: the embedded default at 10,000 series: scrape, store, and read a week back.

An in-process exporter on 127.0.0.1 serves 10,000 gauges in the Prometheus text format: 4,000
temperatures at two decimals, 3,000 memory sizes in whole pages, 2,000 queue depths, 1,000
ratios at full float precision (the hardest for the store). Time is simulated: the week before
the last hour is written through the store's backfill (what 10,080 scrapes would store, hour by
hour), then the scrape source scrapes the exporter for real once a minute through the last hour
and across into the next, which packs that hour into chunks.

Prints: bytes_per_sample (store file / samples), the 8-day projection at 1-minute scrapes,
scrape_cycle_s (median of the real scrape-and-store cycles with the body gzipped, as node_exporter
sends it; the cycle that packs an hour is shown apart), scrape_cycle_identity_s (the same cycles
with a plain body: scrapes alternate between the two, and gzip_ratio is gzip / plain), refit_read_s
(7 days of all 10,000 series read as refits read them: ``Collector.history``
at the refit step, in slices of ``detectors.refit.max_per_cycle`` series), and the old layout's
bytes per sample (one row a sample, the series' text in each row), measured on one hour of the
same series in the same run, which is then migrated to chunks (seconds per million samples).
The last line is JSON.

Run: .venv/bin/python tests/bench/bench_embedded.py [--hours 168] [--series 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tests.fixtures.fleet import TextExporter  # noqa: E402

END = datetime(2026, 3, 9, tzinfo=timezone.utc)  # the simulated now: the week ends here
STEP_S = 60
GB = 1e9


class Exporter:
    """The metrics text of ``series`` gauges; ``advance()`` moves every value one scrape on."""

    def __init__(self, series: int, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        n = series
        self.kinds = np.repeat([0, 1, 2, 3], [n * 4 // 10, n * 3 // 10, n * 2 // 10, n - n * 9 // 10])
        self.names = [("bench_temperature_celsius", "bench_memory_free_bytes", "bench_queue_depth",
                       "bench_cache_hit_ratio")[k] for k in self.kinds]
        self.labels = [{"host": f"h{i // 20:03d}", "slot": str(i % 20)} for i in range(n)]
        self.state = np.where(self.kinds == 0, 40.0, np.where(self.kinds == 1, 2.0 ** 30, 0.0))
        self.state = self.state + self.rng.normal(0, 1, n) * np.where(self.kinds == 1, 2.0 ** 20, 1.0)
        self.text = ""

    def block(self, steps: int) -> np.ndarray:
        """The next ``steps`` values of every series: (series, steps)."""
        n = len(self.kinds)
        walk = self.state[:, None] + np.cumsum(self.rng.normal(0, 0.05, (n, steps)), axis=1)
        out = np.empty((n, steps))
        temp, mem, queue, ratio = (self.kinds == k for k in range(4))
        out[temp] = np.round(walk[temp], 2)
        out[mem] = 4096.0 * np.round(self.state[mem, None] / 4096 + np.cumsum(
            self.rng.integers(-50, 51, (mem.sum(), steps)), axis=1))
        out[queue] = self.rng.poisson(20, (queue.sum(), steps)).astype("float64")
        out[ratio] = self.rng.random((ratio.sum(), steps))
        self.state = np.where(temp | mem, out[:, -1], self.state)
        return out

    def render(self, values: np.ndarray) -> None:
        lines = [f'{name}{{host="{lab["host"]}",slot="{lab["slot"]}"}} {v!r}'
                 for name, lab, v in zip(self.names, self.labels, values.tolist())]
        self.text = "\n".join(lines) + "\n"


def old_layout_bytes_per_sample(path: Path, series_ids: list[str], values: np.ndarray, start_s: float) -> float:
    """One row a sample, as the store kept history before chunks (its DDL, its INSERT OR REPLACE)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE samples (series_id TEXT NOT NULL, ts REAL NOT NULL, value REAL, "
                 "PRIMARY KEY (series_id, ts)) WITHOUT ROWID")
    conn.execute("CREATE INDEX samples_ts ON samples(ts)")
    for j in range(values.shape[1]):  # a cycle at a time, as scrapes wrote it
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)",
                         zip(series_ids, [start_s + STEP_S * j] * len(series_ids), values[:, j].tolist()))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size / values.size


def migrate_old_layout(path: Path) -> tuple[float, int]:
    """Run the chunk migration over the old-layout file; its seconds and the samples it packed."""
    from agent.store.samples import _sample_chunks

    conn = sqlite3.connect(path, isolation_level=None)
    rows = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    _sample_chunks(conn)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    packed = conn.execute("SELECT sum(n) FROM sample_chunks").fetchone()[0]
    conn.close()
    if packed != rows:
        sys.exit(f"impossible: the migration packed {packed} of {rows} samples")
    return elapsed, rows


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=168, help="hours of history (default: a week)")
    parser.add_argument("--series", type=int, default=10_000)
    args = parser.parse_args()

    from agent import sources
    from agent.config import parse_config
    from agent.context import Context
    from agent.flow.samples import SeriesInfo, series_id
    from agent.sources.health import TargetHealth
    from agent.store.chunks import CHUNK_S

    exporter = Exporter(args.series)
    server = TextExporter()
    server.gzip = True
    url = server.url.removesuffix("/metrics")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = parse_config(
            f"agent:\n  state_dir: {work / 'state'}\nhttp:\n  enabled: false\n"
            "sources:\n  scrape:\n    self_metrics: false\n    timeout: 30s\n    deadline: 60s\n"
            f"    targets:\n      - name: bench\n        url: {url}/metrics\n")
        ctx = Context.create(config, work / "state")
        source = sources.build_source(config, store=ctx.store, metrics=ctx.metrics, health=TargetHealth(ctx.metrics))
        store = ctx.store
        collector = sources.Collector(ctx)
        instance = url.removeprefix("http://")
        infos = [SeriesInfo(series_id=series_id(name, {**lab, "job": "bench", "instance": instance}), metric=name,
                            labels={**lab, "job": "bench", "instance": instance})
                 for name, lab in zip(exporter.names, exporter.labels)]

        # -- the week before the last hour, through the store's backfill ---------------------
        live_from = END - timedelta(hours=1)
        first = live_from - timedelta(hours=args.hours - 1)
        started = time.perf_counter()
        for hour in range(args.hours - 1):
            t0 = (first + timedelta(hours=hour)).timestamp()
            values = exporter.block(CHUNK_S // STEP_S)
            store.backfill_samples(infos, t0 + STEP_S * np.arange(CHUNK_S // STEP_S), values, now=t0 + CHUNK_S)
            if hour == 0:
                old_bps = old_layout_bytes_per_sample(work / "old.db", [i.series_id for i in infos], values, t0)
        backfill_s = time.perf_counter() - started
        print(f"backfill: {args.hours - 1} h x {args.series} series in {backfill_s:.1f} s")

        # -- the last hour and the next hour's first minutes, scraped for real ---------------
        cycles, plain, pack = [], [], None
        live = exporter.block(CHUNK_S // STEP_S + 3)
        for minute in range(live.shape[1]):
            exporter.render(live[:, minute])
            server.gzip = minute % 2 == 0  # every other scrape plain: the baseline, in the same run
            server.set(exporter.text)
            at = live_from + timedelta(minutes=minute)
            t = time.perf_counter()
            outcome = collector.collect(at) if minute == live.shape[1] - 1 else None
            if outcome is None:
                scraped = source.scrape(at)
                if scraped.failed or scraped.written != args.series:
                    sys.exit(f"impossible: scrape at {at} wrote {scraped.written} of {args.series} (failed {scraped.failed})")
            elapsed = time.perf_counter() - t
            if minute == CHUNK_S // STEP_S:  # the first scrape of the next hour packs the last
                pack = elapsed
            elif outcome is None:
                (cycles if server.gzip else plain).append(elapsed)
        collect_s = elapsed
        last = outcome.values.iloc[-1]
        want = dict(zip([i.series_id for i in infos], live[:, -1]))
        if len(last) != args.series or any(last[sid] != want[sid] for sid in last.index):
            sys.exit("impossible: the last collected values differ from what the exporter served")

        # -- the store's size --------------------------------------------------------------------
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = store.query_one("SELECT coalesce(sum(n), 0) FROM sample_chunks")[0]
        stored += store.query_one("SELECT count(*) FROM sample_head")[0]
        expected = args.series * (args.hours * CHUNK_S // STEP_S + 3)
        if stored != expected:
            sys.exit(f"impossible: the store holds {stored} samples, {expected} were written")
        size = file_bytes(store.path)
        bps = size / stored
        projected_gb = bps * args.series * 8 * 86400 / STEP_S / GB

        # -- refits read 7 days (or what there is) of every series ---------------------------------
        refit = ctx.config.detectors.refit
        span = min(args.hours * 3600.0, refit.history)
        end = pd.Timestamp(END)
        start = end - pd.Timedelta(seconds=span)
        ids = sorted(i.series_id for i in infos)
        per = refit.max_per_cycle
        read_s, points = 0.0, 0
        for k in range(0, len(ids), per):
            t = time.perf_counter()
            frame = collector.history(start, end, series_ids=ids[k:k + per], step_s=refit.step).values
            read_s += time.perf_counter() - t
            points += int(frame.notna().to_numpy().sum())
        want_points = args.series * (int(span) // STEP_S + 1)
        if abs(points - want_points) > args.series:
            sys.exit(f"impossible: refits read {points} points, expected about {want_points}")
        migrate_s, migrated = migrate_old_layout(work / "old.db")
        server.stop()
        source.close()
        ctx.store.close()

    print(f"series: {args.series}; history {args.hours} h at {STEP_S} s; samples stored: {stored:,}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"store file: {size / 1e6:.1f} MB = {bps:.2f} bytes/sample; old layout {old_bps:.1f} bytes/sample "
          f"(ratio old/new {old_bps / bps:.0f}x); 8 days at 1 min projected: {projected_gb:.2f} GB (target <= 2 GB)")
    gzip_s, plain_s = statistics.median(cycles), statistics.median(plain)
    print(f"scrape + store cycle of {args.series} series, body gzipped (median of {len(cycles)}): {gzip_s:.3f} s; "
          f"plain (median of {len(plain)}): {plain_s:.3f} s (ratio gzip/plain {gzip_s / plain_s:.2f}); "
          f"the cycle that packs the hour: {pack:.3f} s; a whole collect (scrape, store, read the window): "
          f"{collect_s:.3f} s")
    print(f"refit read of {span / 86400:.1f} days x {args.series} series in slices of {per}: {read_s:.2f} s "
          f"({points:,} points; target <= 30 s)")
    print(f"migration of the old layout: {migrated:,} samples in {migrate_s:.2f} s "
          f"({migrate_s / migrated * 1e6:.2f} s per million samples)")
    print(json.dumps({"bench": "embedded", "series": args.series, "hours": args.hours,
                      "bytes_per_sample": round(bps, 3), "store_gb_8d_projected": round(projected_gb, 3),
                      "scrape_cycle_s": round(gzip_s, 4), "scrape_cycle_identity_s": round(plain_s, 4),
                      "gzip_ratio": round(gzip_s / plain_s, 3), "pack_cycle_s": round(pack, 4),
                      "refit_read_s": round(read_s, 3), "old_bytes_per_sample": round(old_bps, 1),
                      "migrate_s_per_million": round(migrate_s / migrated * 1e6, 3)}))


if __name__ == "__main__":
    main()
