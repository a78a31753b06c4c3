"""Benchmark: 1,000 series x 24 h at 60 s step from a real Prometheus into the samples frame.

Backfills synthetic history with promtool (in a child process, so its memory does not count),
starts /usr/bin/prometheus over it, then times ``PrometheusSource.fetch`` as configured by default
(a plain selector: remote read) and with ``remote_read: off`` (query_range), median of 3 after a
warm-up each, against a floor: the same range fetched with plain ``requests`` + ``json.loads``
from query_range in the same run. Peak RSS is read after the default path's runs, before the
others (they hold more at once). Prints figures, then one JSON line.

Run: .venv/bin/python tests/bench/bench_sources.py
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import requests  # noqa: E402

SERIES = 1000
STEP_S = 60
SPAN_S = 24 * 3600
RUNS = 3


def backfill_child(data_dir: str, end: int) -> None:
    from tests.fixtures.prometheus import Family, backfill, openmetrics

    ts = np.arange(end - SPAN_S, end + 1, STEP_S, dtype="int64")
    rng = np.random.default_rng(1)
    phase = (ts - ts[0]) / 86400 * 2 * np.pi
    family = Family(name="bench_metric", series=[
        ({"instance": f"host{i:04d}", "job": "bench"}, ts, 50 + 20 * np.sin(phase + i) + rng.normal(0, 1, len(ts)))
        for i in range(SERIES)])
    backfill(openmetrics([family]), Path(data_dir))


def main() -> None:
    from tests.fixtures.prometheus import HAVE_PROMETHEUS, start_prometheus

    if not HAVE_PROMETHEUS:
        sys.exit("needs /usr/bin/prometheus and /usr/bin/promtool (Debian package prometheus)")
    end = math.floor(time.time() / STEP_S) * STEP_S - 600
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--backfill", str(work / "tsdb"), str(end)], check=True)
        print(f"backfill of {SERIES} series x 24 h: {time.perf_counter() - started:.1f} s")
        server = start_prometheus(work, data_dir=work / "tsdb")
        try:
            start, stop = pd.Timestamp(end - SPAN_S, unit="s", tz="UTC"), pd.Timestamp(end, unit="s", tz="UTC")
            fetch_s, decode_s, source, samples = timed_fetch(server.url, start, stop, "auto")
            if source.stats.read_queries != 1:
                sys.exit("the default path did not read by remote read: the figure would be query_range's")
            # read before the other runs: they hold more at once
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            points = int(samples.values.notna().sum().sum())
            assert samples.values.shape == (SPAN_S // STEP_S + 1, SERIES), samples.values.shape
            range_s, range_decode_s, range_source, range_samples = timed_fetch(server.url, start, stop, "off")
            if range_source.stats.read_queries != 0:
                sys.exit("remote_read: off still read by remote read")
            if not range_samples.values.equals(samples.values):
                sys.exit("remote read and query_range gave different frames")
            del range_samples
            floor_s, floor_decode_s = [], []
            for _ in range(RUNS):
                floor, floor_decode = direct_fetch(server.url, end - SPAN_S, end)
                floor_s.append(floor)
                floor_decode_s.append(floor_decode)
        finally:
            server.stop()
    fetch, floor, by_range = statistics.median(fetch_s), statistics.median(floor_s), statistics.median(range_s)
    if min(fetch_s + floor_s + range_s) <= 0:
        sys.exit(f"impossible timing: {fetch_s} {floor_s} {range_s}")
    print(f"series: {SERIES}, points: {points}, remote-read bytes: {source.stats.bytes / 1e6:.1f} MB in "
          f"{source.stats.requests} requests, query_range bytes: {range_source.stats.bytes / 1e6:.1f} MB in "
          f"{range_source.stats.requests} requests; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"fetch into the frame, remote read (median of {RUNS}): {fetch:.3f} s, of which decode and placing "
          f"{statistics.median(decode_s):.3f} s")
    print(f"fetch into the frame, query_range (median of {RUNS}): {by_range:.3f} s, of which JSON decode "
          f"{statistics.median(range_decode_s):.3f} s")
    print(f"floor, requests + json.loads of query_range (median of {RUNS}): {floor:.3f} s, of which JSON decode "
          f"{statistics.median(floor_decode_s):.3f} s")
    print(f"ratio fetch / floor: {fetch / floor:.2f}x (query_range path: {by_range / floor:.2f}x)")
    print(f"peak RSS: {peak_rss_mb:.0f} MB (targets: < 2 s, < 300 MB)")
    print(json.dumps({"bench": "sources", "series": SERIES, "points": points, "fetch_s": round(fetch, 4),
                      "peak_rss_mb": round(peak_rss_mb, 1), "json_decode_s": round(statistics.median(range_decode_s), 4),
                      "read_decode_s": round(statistics.median(decode_s), 4), "query_range_s": round(by_range, 4),
                      "floor_s": round(floor, 4), "fetch_to_floor": round(fetch / floor, 3)}))


def timed_fetch(url: str, start: pd.Timestamp, stop: pd.Timestamp, remote_read: str) -> tuple:
    """Seconds and decode seconds of RUNS fetches (after a warm-up), the source and the last frame."""
    from agent.config.sources import PrometheusSourceConfig, QueryConfig
    from agent.metrics import Metrics
    from agent.sources.health import TargetHealth
    from agent.sources.prometheus import PrometheusSource

    metrics = Metrics()
    config = PrometheusSourceConfig(url=url, timeout=60, step=STEP_S, remote_read=remote_read,
                                    queries=[QueryConfig(name="bench", expr="bench_metric")])
    source = PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=10_000)
    source.fetch(start, stop)  # warm-up: the server pages its blocks in
    fetch_s, decode_s = [], []
    samples = None
    for _ in range(RUNS):
        samples = None  # one frame alive at a time, as in the daemon
        t = time.perf_counter()
        samples = source.fetch(start, stop)
        fetch_s.append(time.perf_counter() - t)
        decode_s.append(source.stats.read_decode_s if remote_read != "off" else source.stats.json_decode_s)
    return fetch_s, decode_s, source, samples


def direct_fetch(url: str, start: int, end: int) -> tuple[float, float]:
    t = time.perf_counter()
    response = requests.post(f"{url}/api/v1/query_range", timeout=60,
                             data={"query": "bench_metric", "start": start, "end": end, "step": STEP_S})
    decode_started = time.perf_counter()
    payload = json.loads(response.content)
    done = time.perf_counter()
    assert len(payload["data"]["result"]) == SERIES
    return done - t, done - decode_started


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--backfill":
        backfill_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
