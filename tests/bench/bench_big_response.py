"""Benchmark: one query_range answer of 500,000 series read by the Prometheus source.

A server process writes the answer in Prometheus' own layout (``{"status":"success","data":
{"resultType":"matrix","result":[{"metric":...,"values":[[t,"v"],...]}, ...]}}``), made up as it
is sent: a real Prometheus holding 500,000 series needs minutes of backfill and gigabytes of its
own, and what is measured here is the agent reading the answer. A fresh child process runs one
``PrometheusSource.fetch`` of a 30-minute window at 60 s (31 points a series, the agent's default
``series_limit`` of 10,000) and reports its own peak RSS. The baseline, in a child of its own on
the same answer: the whole body read, then ``json.loads`` (what the source did before it read
answers as they arrive). Prints figures, the ratio, then one JSON line.

Run: .venv/bin/python tests/bench/bench_big_response.py [--series 500000] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

STEP_S = 60
WINDOW_S = 1800
SERIES_LIMIT = 10_000
END = 1_700_000_000 - 1_700_000_000 % STEP_S


def serve(port_file: str, series: int) -> None:
    """The answer for any query: ``series`` series, one point per step of the asked range."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection does: no length needed

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            start, end, step = (float(form[k][0]) for k in ("start", "end", "step"))
            stamps = [int(start + step * i) for i in range(int(round((end - start) / step)) + 1)]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"success","data":{"resultType":"matrix","result":[')
            for first in range(0, series, 1000):
                items = [f'{{"metric":{{"__name__":"bench_metric","instance":"host{i:06d}:9100","job":"fleet"}},'
                         f'"values":[' + ",".join(f'[{t},"{i % 97 + k * 0.25}"]' for k, t in enumerate(stamps)) + "]}"
                         for i in range(first, min(series, first + 1000))]
                self.wfile.write((b"," if first else b"") + ",".join(items).encode())
            self.wfile.write(b"]}}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def fetch_child(url: str) -> None:
    """One fetch as a cycle does it; prints what it read and its own peak RSS."""
    import pandas as pd

    from agent.config.sources import PrometheusSourceConfig, QueryConfig
    from agent.metrics import Metrics
    from agent.sources.health import TargetHealth
    from agent.sources.prometheus import PrometheusSource

    metrics = Metrics()
    config = PrometheusSourceConfig(url=url, queries=[QueryConfig(name="bench", expr="bench_metric * 1", step=STEP_S)])
    source = PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=SERIES_LIMIT)
    started = time.perf_counter()
    frame = source.fetch(pd.Timestamp(END - WINDOW_S, unit="s", tz="UTC"), pd.Timestamp(END, unit="s", tz="UTC"))
    print(json.dumps({"seconds": time.perf_counter() - started, "shape": list(frame.values.shape),
                      "bytes": source.stats.bytes, "requests": source.stats.requests,
                      "dropped": metrics.registry.get_sample_value("aiops_samples_dropped_total",
                                                                  {"reason": "series_limit"}),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def baseline_child(url: str) -> None:
    """The whole answer read, then parsed: its peak RSS."""
    import requests

    params = {"query": "bench_metric * 1", "start": str(END - WINDOW_S), "end": str(END), "step": str(STEP_S)}
    started = time.perf_counter()
    body = requests.post(url + "/api/v1/query_range", data=params, timeout=600).content
    series = len(json.loads(body)["data"]["result"])
    print(json.dumps({"seconds": time.perf_counter() - started, "series": series, "bytes": len(body),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child(kind: str, url: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, __file__, f"--{kind}", url], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the {kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=500_000)
    parser.add_argument("--no-baseline", action="store_true", help="skip the whole-body baseline (GBs of memory)")
    parser.add_argument("--fetch")
    parser.add_argument("--baseline")
    parser.add_argument("--serve", nargs=2)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]))
    if args.fetch:
        return fetch_child(args.fetch)
    if args.baseline:
        return baseline_child(args.baseline)
    port_file = Path(f"/tmp/bench-big-response-{time.time_ns()}.port")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), str(args.series)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the answer's server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        got = child("fetch", url)
        points = WINDOW_S // STEP_S + 1
        if got["shape"] != [points, SERIES_LIMIT] or got["dropped"] != (args.series - SERIES_LIMIT) * got["requests"]:
            raise SystemExit(f"the fetch read something else than the answer: {got}")
        print(f"{args.series:,} series x {points} points, {got['bytes'] / 1e6:,.0f} MB of JSON in "
              f"{got['requests']} request(s): read in {got['seconds']:.1f} s, kept {SERIES_LIMIT:,}, "
              f"peak RSS {got['peak_rss_mb']:.0f} MB")
        result: dict[str, object] = {"bench": "big_response", "series": args.series,
                                     "big_response_peak_rss_mb": round(float(got["peak_rss_mb"]), 1)}
        if not args.no_baseline:
            base = child("baseline", url)
            if base["series"] != args.series:
                raise SystemExit(f"the baseline read something else than the answer: {base}")
            print(f"baseline (whole body, then json.loads): {base['seconds']:.1f} s, peak RSS "
                  f"{base['peak_rss_mb']:.0f} MB; ratio {float(got['peak_rss_mb']) / float(base['peak_rss_mb']):.2f}")
            result["baseline_peak_rss_mb"] = round(float(base["peak_rss_mb"]), 1)
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(timeout=30)
        port_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
