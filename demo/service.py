"""A small model-serving service for the demo and the end-to-end tests.

It serves a fake fraud model from ``MODELS_DIR/current`` (a symlink to ``versions/<v>``, a
directory with a ``model.json``; a moved link is picked up within a second), drives itself with light synthetic traffic, and exposes what a real model server
would on ``/metrics``: an inference-latency histogram, request and error counters, a
prediction-score histogram, input-feature histograms and the model version. Faults are injected
by writing ``faults.json`` beside the models dir (``python -m demo inject``); the service takes them
in within a second. Faults marked ``sticky`` survive a restart; the others live in the process,
so restarting the service is a real fix for them.

Run: ``python -m demo.service --port 9850 --models-dir DIR``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

MODEL = "fraud"
FEATURES = ("amount", "account_age_days", "tx_per_hour")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# One log-spaced scale serves every feature, so they share one histogram with a `feature` label.
FEATURE_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181)


def rps_at(epoch_s: float, base_rps: float) -> float:
    """Requests per second at a moment: a daily cycle peaking at 14:00 UTC (the history that the
    demo backfills follows the same curve, so live traffic looks like the past week)."""
    day_fraction = (epoch_s % 86400) / 86400
    return base_rps * (1 + 0.4 * math.sin(2 * math.pi * (day_fraction - 0.333)))


def feature_sample(rng: random.Random, feature: str, shift: float) -> float:
    """One input value; ``shift`` > 0 moves the distribution as a broken preprocessing would."""
    if feature == "amount":
        return rng.lognormvariate(math.log(60) + shift, 0.6)
    if feature == "account_age_days":
        return rng.lognormvariate(math.log(400) - 1.5 * shift, 0.8)
    return rng.lognormvariate(math.log(3) + shift, 0.5)


class ModelServer:
    def __init__(self, models_dir: Path, *, scratch_dir: Path | None = None, seed: int = 7, rps: float = 20.0) -> None:
        self.models_dir = models_dir
        self.scratch_dir = scratch_dir
        self.faults_path = models_dir.parent / "faults.json"
        self.rng = random.Random(seed)
        self.rps = rps
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.latency = Histogram("demo_inference_latency_seconds", "Inference latency.", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.requests = Counter("demo_inference_requests_total", "Inference requests.", ["model"], registry=r)
        self.errors = Counter("demo_inference_errors_total", "Failed inference requests.", ["model"], registry=r)
        self.scores = Histogram("demo_prediction_score", "Predicted fraud probability.", ["model"],
                                buckets=SCORE_BUCKETS, registry=r)
        self.inputs = Histogram("demo_input_feature", "Input feature values.", ["model", "feature"],
                                buckets=FEATURE_BUCKETS, registry=r)
        self.info = Gauge("demo_model_info", "The model version being served (value 1).", ["model", "version"], registry=r)
        scratch = Gauge("demo_scratch_bytes", "Bytes used by the service's scratch (spool) directory.", registry=r)
        scratch.set_function(self.scratch_bytes)
        self.faults: dict[str, Any] = {}
        self.leak: list[bytes] = []
        self.model: dict[str, Any] = {}
        self._stop = threading.Event()
        self.load_model()

    def load_model(self) -> None:
        current = self.models_dir / "current"
        self.loaded_from = os.readlink(current) if current.is_symlink() else str(current)
        self.model = json.loads((current / "model.json").read_text())
        self.info.clear()
        self.info.labels(MODEL, self.model["version"]).set(1)

    def reload_if_moved(self) -> None:
        """Model servers watch their model dir: a moved ``current`` link (rollout or rollback)
        takes effect within a second, without a restart."""
        current = self.models_dir / "current"
        try:
            target = os.readlink(current)
        except OSError:
            return
        if target != self.loaded_from:
            try:
                self.load_model()
            except (OSError, ValueError):
                pass  # half-written version: keep serving the old one and try again

    def scratch_bytes(self) -> float:
        if self.scratch_dir is None or not self.scratch_dir.is_dir():
            return 0.0
        return float(sum(p.stat().st_size for p in self.scratch_dir.rglob("*") if p.is_file()))

    def take_faults(self) -> None:
        """Read faults.json; in-process faults are consumed (a restart clears them)."""
        try:
            faults = json.loads(self.faults_path.read_text())
        except (OSError, ValueError):
            return
        if not faults.get("sticky"):
            self.faults_path.unlink(missing_ok=True)
        if faults.get("clear"):  # the demo's reset: healthy again without a restart
            self.faults, self.leak = {}, []
            return
        self.faults = faults

    def fault(self, name: str, default: float = 0.0) -> float:
        return float(self.faults.get(name, default))

    def serve_one(self) -> None:
        shift = float(self.model.get("feature_shift", 0.0))
        values = {f: feature_sample(self.rng, f, shift) for f in FEATURES}
        for f, v in values.items():
            self.inputs.labels(MODEL, f).observe(v)
        base = float(self.model.get("latency_s", 0.06))
        latency = self.rng.lognormvariate(math.log(base), 0.25) * (1 + self.fault("latency_factor"))
        self.latency.labels(MODEL).observe(latency)
        self.requests.labels(MODEL).inc()
        if self.rng.random() < 0.005 + self.fault("error_rate"):
            self.errors.labels(MODEL).inc()
            return
        z = 0.01 * values["amount"] - 0.002 * values["account_age_days"] + 0.2 * values["tx_per_hour"] - 2
        self.scores.labels(MODEL).observe(1 / (1 + math.exp(-z)))

    def traffic(self) -> None:
        next_fault_check = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_fault_check:
                self.take_faults()
                self.reload_if_moved()
                leak_mb = self.fault("leak_mb_per_s")
                if leak_mb:
                    self.leak.append(b"x" * int(leak_mb * 1024 * 1024))
                next_fault_check = now + 1.0
            self.serve_one()
            self._stop.wait(1.0 / rps_at(time.time(), self.rps))

    def stop(self) -> None:
        self._stop.set()


def make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.startswith("/metrics"):
                body = generate_latest(server.registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                body = json.dumps({"status": "ok", "version": server.model["version"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:
                body = b"not found\n"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Demo model-serving service with Prometheus metrics.")
    parser.add_argument("--port", type=int, default=9850)
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--scratch-dir", type=Path)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--pid-file", type=Path)
    args = parser.parse_args()
    model_server = ModelServer(args.models_dir, scratch_dir=args.scratch_dir, rps=args.rps)
    httpd = ThreadingHTTPServer((args.listen, args.port), make_handler(model_server))
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown, daemon=True).start())
    threading.Thread(target=model_server.traffic, name="traffic", daemon=True).start()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        model_server.stop()
        httpd.server_close()


if __name__ == "__main__":
    main()
