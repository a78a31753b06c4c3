"""Benchmark: correlation on synthetic faults, a clean week, and Alertmanager ingestion.

Series are 5-minute points: a daily sine, 3 % Gaussian noise and single-point spikes about once
per series every three days. The seasonal detector runs with the example config's parameters
(threshold 5, min_rel_dev 0.1), fitted on 7 days with the spikes left out (as the daemon's
refits leave out points that were hits); the correlator uses a 10-minute window, the default
correlation labels and one persistence rule for every series: 3 hits in 3 cycles (15 minutes).

1. fault: 50 series on 5 hosts; the database on host-0 slows down and every service that
   depends on it follows, one host every 5 minutes, for an hour. Target: exactly 1 incident,
   with the database as the root-cause guess.
2. clean: 1,000 series (100 hosts, 20 services), 7 clean days scored an hour at a time and
   correlated cycle by cycle. Target: at most 2 incidents a day.
3. ingest: the real daemon (``aiops run`` in a subprocess with a temporary config and a free
   port, alone on its SQLite store, cycling every ``--interval`` seconds over a local exporter)
   receives 100,000 Alertmanager alerts in batches of 100 over loopback (10,000 alerts of 200
   services, each re-sent 10 times as Alertmanager does, the last round resolved).
   Target: >= 2,500 alerts/s, ahead of Event-Driven Ansible's published 150,000 events/min on
   4 CPUs (the baseline the ratio is printed against), and no change of role (``role_changes``:
   ``agent.standby`` and ``lease.lost`` lines in its log; target 0).
4. big webhook: a fresh daemon, cycling the same way, receives one body of ``--big`` alerts
   (100,000: Alertmanager with ``max_alerts: 0`` in an outage), each on a host and service of
   its own. Targets: answered within 30 s (``big_webhook_s``), at most 51 incidents opened
   (``big_webhook_incidents``: ``max_new_per_cycle`` and the storm), no change of role.

Prints figures (medians of the ingest rounds), then one JSON line.

Run: .venv/bin/python tests/bench/bench_incidents.py [--alerts N] [--senders N] [--big N] [--interval S]
     [--skip-detect]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.config import parse_config  # noqa: E402
from agent.flow.samples import Samples, series_id  # noqa: E402
from agent.incidents.correlator import Correlator  # noqa: E402
from agent.incidents.lifecycle import advance  # noqa: E402
from agent.store import Store  # noqa: E402
from detectors.base import Hit  # noqa: E402
from detectors.seasonal import SeasonalDetector  # noqa: E402
from tests.fixtures.fleet import TextExporter, gauges_text  # noqa: E402

EDA_ALERTS_PER_S = 150_000 / 60  # Event-Driven Ansible, published figure on 4 CPUs
STEP = "5min"
CYCLE_S = 300.0
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
TOKEN = "bench-token-0123456789"
DETECTOR_PARAMS = {"direction": "both", "threshold": 5.0, "min_rel_dev": 0.1}  # as config/agent.example.yaml

CORRELATION = """
incidents:
  window: 10m
  quiet_cycles: 3
  flap_window: 30m
  persistence:
    - labels: {{}}
      hits: 3
      cycles: 3
  topology:
    depends_on: {deps}
    hosts: {hosts}
"""


# -- synthetic series ----------------------------------------------------------------------------

def clean_frame(columns: list[str], start: datetime, days: float,
                rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily sine + 3 % Gaussian noise, plus single-point spikes about once per series every
    three days (real, brief, not incidents). Returns the values and where the spikes are."""
    index = pd.date_range(start, periods=int(days * 288), freq=STEP, tz="UTC", name="ts")
    phase = 2 * np.pi * np.arange(len(index)) / 288
    base = rng.uniform(10, 100, len(columns))
    amplitude = rng.uniform(0.1, 0.3, len(columns)) * base
    shift = rng.uniform(0, 2 * np.pi, len(columns))
    noise = rng.normal(0, 0.03, (len(index), len(columns))) * base
    spiked = rng.random((len(index), len(columns))) < 1 / 864
    spikes = spiked * rng.uniform(0.5, 1.5, (len(index), len(columns))) * base
    values = base + amplitude * np.sin(phase[:, None] + shift) + noise + spikes
    return (pd.DataFrame(values, index=index, columns=columns),
            pd.DataFrame(spiked, index=index, columns=columns))


def fit_detector(frame: pd.DataFrame, spiked: pd.DataFrame) -> SeasonalDetector:
    """Fit on the history before T0, leaving out the spikes, as the daemon's refits leave out
    points that were hits (incident-aware baselines)."""
    history = frame.loc[frame.index < T0].mask(spiked.loc[spiked.index < T0])
    return SeasonalDetector(**DETECTOR_PARAMS).fit(history)


def labelled(names: list[tuple[str, dict[str, str]]]) -> tuple[list[str], dict[str, dict[str, str]]]:
    ids = [series_id(metric, labels) for metric, labels in names]
    return ids, {sid: labels for sid, (_, labels) in zip(ids, names)}


def replay(frame: pd.DataFrame, labels: dict[str, dict[str, str]], detector: SeasonalDetector,
           correlator: Correlator, store: Store) -> int:
    """Score ``frame`` an hour at a time and correlate cycle by cycle; returns the hits."""
    hits_total = 0
    config = correlator.config
    for hour_start in range(0, len(frame), 12):
        window = frame.iloc[hour_start:hour_start + 12]
        by_ts: dict[pd.Timestamp, list[Hit]] = {}
        for h in detector.score(window).hits:
            metric = h.series_id.split("{", 1)[0]
            h = Hit(**{**{f: getattr(h, f) for f in Hit.__dataclass_fields__}, "labels": labels[h.series_id],
                       "metric": metric})
            by_ts.setdefault(pd.Timestamp(h.ts), []).append(h)
        for i in range(len(window)):
            ts = window.index[i]
            now = ts.to_pydatetime() + timedelta(seconds=30)
            cycle_hits = by_ts.get(ts, [])
            hits_total += len(cycle_hits)
            placed = correlator.ingest(cycle_hits, now=now)
            samples = Samples(values=window.iloc[max(0, i - 2):i + 1], series={})
            advance(store, config, samples, placed.touched, now=now)
    return hits_total


def fault_run(workdir: Path, rng: np.random.Generator) -> tuple[int, int, str]:
    names = []
    for host in range(5):
        service = "db" if host == 0 else f"svc-{host}"
        for metric in ("latency_seconds", "cpu_ratio", "errors_per_s", "queue_depth", "requests_per_s",
                       "gc_seconds", "open_conns", "p99_seconds", "saturation_ratio", "retries_per_s"):
            names.append((metric, {"service": service, "instance": f"host-{host}:9100"}))
    ids, labels = labelled(names)
    frame, spiked = clean_frame(ids, T0 - timedelta(days=7), 7.5, rng)  # 7 days of history, 12 hours live
    detector = fit_detector(frame, spiked)
    live = frame.loc[frame.index >= T0].copy()
    start = 36  # the fault starts 3 h in: the database first, each dependent 5 minutes later
    for n, sid in enumerate(ids):
        host = n // 10
        begin = start + host
        live.iloc[begin:begin + 12, n] *= 3.0
    store = Store(workdir / "fault.db")
    deps = {f"svc-{h}": ["db"] for h in range(1, 5)}
    hosts = {f"host-{h}": ["db" if h == 0 else f"svc-{h}"] for h in range(5)}
    config = parse_config(CORRELATION.format(deps=json.dumps(deps), hosts=json.dumps(hosts)))
    correlator = Correlator(store, config.incidents, interval_s=CYCLE_S)
    hits = replay(live, labels, detector, correlator, store)
    incidents = store.list_incidents()
    root = incidents[0].root_cause_reason if incidents else ""
    store.close()
    return hits, len(incidents), root or ""


def clean_run(workdir: Path, rng: np.random.Generator, days: int = 7) -> tuple[int, int]:
    names = []
    for n in range(1000):
        host, service = n % 100, n % 20
        names.append((f"metric_{n // 100}", {"service": f"svc-{service}", "instance": f"host-{host}:9100"}))
    ids, labels = labelled(names)
    frame, spiked = clean_frame(ids, T0 - timedelta(days=7), 7 + days, rng)
    detector = fit_detector(frame, spiked)
    live = frame.loc[frame.index >= T0]
    store = Store(workdir / "clean.db")
    config = parse_config(CORRELATION.format(deps="{}", hosts="{}"))
    correlator = Correlator(store, config.incidents, interval_s=CYCLE_S)
    hits = replay(live, labels, detector, correlator, store)
    opened = len(store.list_incidents())
    store.close()
    return hits, opened


# -- ingestion into the real daemon ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(workdir: Path, exporter: TextExporter, interval_s: float) -> tuple[subprocess.Popen[bytes], str]:
    """``aiops run`` alone on a SQLite store in ``workdir``, cycling every ``interval_s`` over
    ``exporter``'s gauges; its log in ``workdir/daemon.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "agent.yaml"
    config.write_text(
        f"agent:\n  state_dir: {workdir / 'state'}\n  interval: {interval_s}s\n  log_level: info\n"
        "  unhealthy_after: 1000\n"
        f"http:\n  listen: 127.0.0.1\n  port: {port}\n  token: {TOKEN}\n"
        "sources:\n  kind: scrape\n  scrape:\n    self_metrics: false\n    targets:\n"
        f"      - {{name: app, url: '{exporter.url}'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    log = open(workdir / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code in (200, 503):
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.terminate()
    raise SystemExit(f"the daemon did not start; see {workdir / 'daemon.log'}")


def alert_batches(total: int, batch: int = 100, services: int = 200, per_service: int = 50,
                  rounds: int = 10) -> list[bytes]:
    distinct = services * per_service
    bodies = []
    sent = 0
    r = 0
    while sent < total:
        status = "resolved" if r == rounds - 1 else "firing"
        for first in range(0, distinct, batch):
            alerts = []
            for k in range(first, min(first + batch, distinct, first + total - sent)):
                service, pod = divmod(k, per_service)
                alerts.append({
                    "status": status,
                    "labels": {"alertname": "HighLatency", "service": f"svc-{service}",
                               "instance": f"svc-{service}-{pod}:8080", "severity": "warning"},
                    "annotations": {"summary": "p99 latency above 800ms"},
                    "startsAt": "2026-03-02T12:00:00Z",
                    "endsAt": "2026-03-02T13:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{k:016x}"})
            if not alerts:
                break
            bodies.append(json.dumps({
                "version": "4", "groupKey": f"{{}}:{{service=\"svc-{first // per_service}\"}}", "truncatedAlerts": 0,
                "status": status, "receiver": "aiops", "groupLabels": {}, "commonLabels": {},
                "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts}).encode())
            sent += len(alerts)
        r += 1
    return bodies


ROLE_CHANGE = re.compile(rb"event=(agent\.standby|lease\.lost) ")


def role_changes(workdir: Path) -> int:
    """Times the daemon said it lost its role: standby, or a lease lost."""
    return len(ROLE_CHANGE.findall((workdir / "daemon.log").read_bytes()))


def cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds the daemon has used (user and system): less at the mercy of a busy machine
    than the wall clock."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """The daemon's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("impossible: no VmHWM in /proc/PID/status")


def cycles_done(workdir: Path) -> int:
    return (workdir / "daemon.log").read_bytes().count(b"event=cycle.done ")


def ingest(total: int, senders: int, workdir: Path, exporter: TextExporter,
           interval_s: float) -> tuple[float, list[float], int, int]:
    """Alerts per second, each batch's latency, role changes and cycles done meanwhile."""
    import requests

    bodies = alert_batches(total)
    proc, base = start_daemon(workdir, exporter, interval_s)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    try:
        # one warm-up request (imports, first connection), not counted
        warm = requests.post(base + "/api/v1/alerts", data=bodies[0], timeout=30,
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        assert warm.status_code == 200, warm.text

        def send(part: list[bytes]) -> None:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            for body in part:
                t = time.perf_counter()
                answer = session.post(base + "/api/v1/alerts", data=body, headers=headers, timeout=60)
                with lock:
                    latencies.append(time.perf_counter() - t)
                    if answer.status_code != 200:
                        errors.append(f"{answer.status_code}: {answer.text[:200]}")

        threads = [threading.Thread(target=send, args=(bodies[i::senders],)) for i in range(senders)]
        cycles_before, cpu_before = cycles_done(workdir), cpu_s(proc)
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cycles = cycles_done(workdir) - cycles_before
        print(f"ingest: the daemon used {cpu_s(proc) - cpu_before:.1f} CPU seconds in {elapsed:.1f}s "
              f"(load average {os.getloadavg()[0]:.1f})")
        if errors:
            raise SystemExit(f"{len(errors)} batches refused, first: {errors[0]}")
        metrics = requests.get(base + "/metrics", timeout=10).text
        ingested = next(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("aiops_alerts_ingested_total"))
        assert ingested == total + len(json.loads(bodies[0])["alerts"]), ingested
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return total / elapsed, latencies, role_changes(workdir), cycles


def big_body(n: int) -> bytes:
    """One webhook of ``n`` alerts, each on a host and service of its own (nothing correlates)."""
    alerts = [{"status": "firing", "labels": {"alertname": "NodeDown", "service": f"svc-{k}",
                                              "instance": f"node-{k:06d}:9100", "severity": "critical"},
               "annotations": {"summary": "node down"}, "startsAt": "2026-03-02T12:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
               "fingerprint": f"{k:016x}"} for k in range(n)]
    return json.dumps({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
                       "receiver": "aiops", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://alertmanager:9093", "alerts": alerts}).encode()


def big_webhook(n: int, workdir: Path, exporter: TextExporter, interval_s: float) -> dict[str, float]:
    """Seconds to answer one body of ``n`` alerts, incidents it opened, signals in the storm,
    role changes and cycles done while it was placed."""
    import requests

    body = big_body(n)
    proc, base = start_daemon(workdir, exporter, interval_s)
    try:
        cycles_before, cpu_before = cycles_done(workdir), cpu_s(proc)
        started = time.perf_counter()
        answer = requests.post(base + "/api/v1/alerts", data=body, timeout=600,
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        seconds = time.perf_counter() - started
        cpu, rss = cpu_s(proc) - cpu_before, peak_rss_mb(proc)
        if answer.status_code != 200:
            raise SystemExit(f"the big webhook was refused: {answer.status_code} {answer.text[:300]}")
        cycles = cycles_done(workdir) - cycles_before
        done = answer.json()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    store = Store(workdir / "state" / "aiops.db")
    try:
        incidents = store.list_incidents()
        storm = store.get_incident(done["storm"]) if done.get("storm") else None
        held = len(storm.signals) if storm is not None else 0
    finally:
        store.close()
    if len(incidents) + held - (1 if storm is not None else 0) < n:
        raise SystemExit(f"impossible: {n} alerts, but {len(incidents)} incidents and {held} held in the storm")
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": rss, "incidents": len(incidents), "held": held,
            "role_changes": role_changes(workdir), "cycles": cycles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=1, help="concurrent HTTP clients (default 1)")
    parser.add_argument("--big", type=int, default=100_000, help="alerts in the one big webhook (0: skip it)")
    parser.add_argument("--interval", type=float, default=5.0, help="the daemon's agent.interval in seconds")
    parser.add_argument("--skip-detect", action="store_true", help="only the ingestion parts")
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    result: dict[str, object] = {"bench": "incidents"}
    with tempfile.TemporaryDirectory(prefix="bench-incidents-") as tmp:
        workdir = Path(tmp)
        if not args.skip_detect:
            t = time.perf_counter()
            fault_hits, fault_incidents, reason = fault_run(workdir, rng)
            print(f"fault: 50 series on 5 hosts -> {fault_hits} hits -> {fault_incidents} incident(s) "
                  f"(target 1) in {time.perf_counter() - t:.1f}s; root cause: {reason}")
            t = time.perf_counter()
            clean_hits, clean_incidents = clean_run(workdir, rng)
            per_day = clean_incidents / 7
            print(f"clean: 1,000 series x 7 days -> {clean_hits} hits -> {clean_incidents} incidents = "
                  f"{per_day:.2f}/day (target <= 2) in {time.perf_counter() - t:.1f}s")
            result.update(fault_hits=fault_hits, fault_incidents=fault_incidents,
                          clean_incidents_per_day=round(per_day, 3))
        exporter = TextExporter()
        exporter.set(gauges_text("app_queue_depth", [{"host": f"h{i:03d}"} for i in range(100)], [1.0] * 100))
        try:
            rate, latencies, changes, cycles = ingest(args.alerts, args.senders, workdir / "ingest", exporter,
                                                      args.interval)
            print(f"ingest: {args.alerts:,} alerts in batches of 100 to the real daemon over loopback "
                  f"({args.senders} sender{'s' if args.senders > 1 else ''}), cycling every {args.interval:g}s: "
                  f"{rate:,.0f} alerts/s; median batch {statistics.median(latencies) * 1000:.1f} ms, "
                  f"p95 {np.percentile(latencies, 95) * 1000:.1f} ms; {cycles} cycles meanwhile, "
                  f"{changes} role changes")
            print(f"ratio to Event-Driven Ansible's 150,000 events/min (2,500/s): {rate / EDA_ALERTS_PER_S:.2f}x")
            result.update(ingest_alerts_per_s=round(rate, 1), role_changes=changes)
            if args.big:
                big = big_webhook(args.big, workdir / "big", exporter, args.interval)
                print(f"big webhook: one body of {args.big:,} alerts answered in {big['seconds']:.1f}s (target <= 30; "
                      f"the daemon's CPU meanwhile {big['cpu_s']:.1f}s, its peak RSS {big['peak_rss_mb']:.0f} MB, "
                      f"load average {os.getloadavg()[0]:.1f}); "
                      f"{big['incidents']:.0f} incidents opened (target <= 51), {big['held']:.0f} signals held by the "
                      f"storm; {big['cycles']:.0f} cycles meanwhile, {big['role_changes']:.0f} role changes")
                result.update(big_webhook_s=round(big["seconds"], 2), big_webhook_incidents=big["incidents"],
                              big_webhook_cpu_s=round(big["cpu_s"], 2), big_webhook_peak_rss_mb=round(big["peak_rss_mb"]))
                result["role_changes"] = changes + int(big["role_changes"])
        finally:
            exporter.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
