"""Benchmark: MTTR report, weekly HTML report and audit verification over a big store, and
one incident's page.

The store holds 100,000 incidents over a year (one or two signals each, a remediation run for
a third of them) and 1,000,000 audit entries with a valid hash chain, written with executemany
in one transaction. Prints medians, then one JSON line.

Then the MTTR report again over a second store of 1,000,000 one-outage incidents (--large).

First, the incident page as ``GET /incidents/ID`` renders it server side, for one incident with 50
signals and 10,000 points (200 hits a signal, 10 s apart; each series' samples of the two hours
before kept in the store, 720 a series): summary, root-cause line, three plots; against the text
summary of the same incident in the same process (--page-only: just this part).

Run: .venv/bin/python tests/bench/bench_report.py [--incidents N] [--audit N] [--repeat N] [--large N]
     [--page-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.report.mttr import incident_durations, mttr_report, report_from_frame  # noqa: E402
from agent.report.period import Period  # noqa: E402
from agent.report.weekly import weekly_report  # noqa: E402
from agent.store import GENESIS, Store  # noqa: E402
from agent.store.base import entry_hash  # noqa: E402

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
YEAR_S = 365 * 86400.0
TARGET_S = 0.3  # issue 18: 100,000 episodes in < 0.3 s, 1,000,000 in < 2 s
PAGE_TARGET_S = 0.2  # issue 32: the page of an incident with 50 signals and 10,000 points in < 200 ms


def build(store: Store, incidents: int, audit_entries: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    now_s = NOW.timestamp()
    started = now_s - rng.uniform(0, YEAR_S, incidents)
    detected = started + rng.exponential(120, incidents)
    acked = np.where(rng.random(incidents) < 0.6, detected + rng.exponential(300, incidents), np.nan)
    resolved_mask = rng.random(incidents) < 0.95
    resolved = np.where(resolved_mask, started + rng.exponential(3600, incidents), np.nan)
    auto = resolved_mask & (rng.random(incidents) < 0.35)
    services = np.array(["api", "db", "cache", "queue", "web", "search", "auth", "billing"])
    severities = np.array(["critical", "warning", "info"])
    metrics = np.array(["node_cpu_usage", "disk_io", "http_errors", "latency_p99", "model_inference_latency_seconds",
                        "feature_drift"])
    service = services[rng.integers(0, len(services), incidents)]
    severity = severities[rng.integers(0, 3, incidents)]
    metric = metrics[rng.integers(0, len(metrics), incidents)]

    ids = np.arange(1, incidents + 1).tolist()
    drift = metric == "feature_drift"
    # Column lists built with numpy, rows zipped from them: no Python work per value in a loop.
    label_text = {(s, d): json.dumps({"service": s, **({"model": "churn"} if d else {})})
                  for s in services.tolist() for d in (False, True)}
    labels = [label_text[key] for key in zip(service.tolist(), drift.tolist())]
    verified_started = _opt(np.where(auto, detected + 30, np.nan))
    verified = _opt(np.where(auto, resolved - 60, np.nan))
    resolution = np.where(resolved_mask, np.where(auto, "remediation", "manual"), None).tolist()

    conn = store.conn
    with store.transaction():
        conn.executemany(
            "INSERT INTO incidents (id, status, severity, title, labels, started_at, detected_at, acknowledged_at, "
            "remediation_started_at, remediation_verified_at, resolved_at, resolution, updated_at) "
            "VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            zip(ids, np.where(resolved_mask, "resolved", "open").tolist(), severity.tolist(), labels, started.tolist(),
                detected.tolist(), _opt(acked), verified_started, verified, _opt(resolved), resolution,
                detected.tolist()))
        conn.execute(  # each incident one outage: its episode carries the same times
            "INSERT INTO incident_episodes (incident_id, number, started_at, detected_at, acknowledged_at, "
            "remediation_started_at, remediation_verified_at, resolved_at, resolution) "
            "SELECT id, 1, started_at, detected_at, acknowledged_at, remediation_started_at, remediation_verified_at, "
            "resolved_at, resolution FROM incidents")
        series = np.char.add(np.char.add(metric, "{host=h"), np.char.add((np.arange(incidents) % 50).astype(str), "}"))
        detector = np.where(drift, "drift", "stl")
        conn.executemany(
            "INSERT INTO incident_signals (incident_id, signal_key, series_id, detector, metric, labels, first_at, "
            "last_at, hits) VALUES (?, ?, ?, ?, ?, '{}', ?, ?, 3)",
            zip(ids, np.char.add(np.char.add(series, "|"), detector).tolist(), series.tolist(), detector.tolist(),
                metric.tolist(), started.tolist(), (started + 60).tolist()))
        ran = np.flatnonzero(auto | (np.arange(incidents) % 10 == 0))
        conn.executemany(
            "INSERT INTO remediation_runs (incident_id, rule, playbook, mode, status, requested_at, started_at, "
            "ended_at) VALUES (?, ?, ?, 'apply', ?, ?, ?, ?)",
            zip((ran + 1).tolist(), np.char.add("restart-", service[ran]).tolist(),
                np.char.add(np.char.add("restart-", service[ran]), ".yml").tolist(),
                np.where(auto[ran], "verified", "not_fixed").tolist(), (detected[ran] + 20).tolist(),
                (detected[ran] + 30).tolist(), (detected[ran] + 90).tolist()))
        audit_ts = np.sort(now_s - rng.uniform(0, YEAR_S, audit_entries))
        actions = ("incident.open", "incident.acknowledge", "remediation.run", "silence.create", "config.reload")

        def entries():
            prev = GENESIS
            for n in range(audit_entries):
                ts = float(audit_ts[n])
                action = actions[n % len(actions)]
                details = f'{{"reason":"bench {n}"}}'
                digest = entry_hash(prev, ts, "agent", action, f"incident:{n % incidents + 1}", details)
                yield (ts, "agent", action, f"incident:{n % incidents + 1}", details, prev, digest)
                prev = digest

        conn.executemany("INSERT INTO audit (ts, actor, action, subject, details, prev_hash, hash) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", entries())


def _opt(values: np.ndarray) -> list[float | None]:
    """The values as a list, NaN as None (NULL)."""
    return [None if math.isnan(v) else v for v in values.tolist()]


CPU: dict[str, float] = {}


def timed(fn, repeat: int, name: str) -> tuple[float, object]:
    """Median wall-clock seconds (and, in CPU[name], median CPU seconds of this process: on a
    shared machine the wall clock also counts the time other processes held the cores)."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    CPU[name] = statistics.median(cpu)
    return statistics.median(times), result


def page_store(store: Store, signals: int = 50, hits_per_signal: int = 200) -> int:
    """One incident of ``signals`` latency signals on one service, ``hits_per_signal`` hits each
    (10 s apart), two hours of samples of each series before its first hit; returns its id."""
    from agent.flow.incidents import Severity
    from detectors.base import Direction, Hit

    rng = np.random.default_rng(3)
    start = NOW - timedelta(hours=1)
    incident = store.open_incident(severity=Severity.CRITICAL, title="latency", labels={"service": "api"},
                                   started_at=start, now=start + timedelta(seconds=30))
    for k in range(signals):
        sid = f'http_request_duration_seconds{{instance="web-{k}",service="api"}}'
        labels = {"service": "api", "instance": f"web-{k}"}
        values = 0.8 + 0.2 * rng.random(hits_per_signal)
        hits = [Hit(series_id=sid, detector="seasonal", ts=start + timedelta(seconds=10 * i), value=float(v),
                    score=float(v) * 50, direction=Direction.UP, expected=0.1, lower=0.06, upper=0.14,
                    metric="http_request_duration_seconds", labels=labels, explanation="far above")
                for i, v in enumerate(values)]
        store.record_hits(hits, incident_id=incident.id, now=hits[-1].ts)
        before = start.timestamp() - 10 * np.arange(720, 0, -1)
        store.record_samples([], list(zip([sid] * 720, before.tolist(), (0.1 + 0.01 * rng.standard_normal(720)).tolist())),
                             now=start.timestamp())
    return incident.id


def incident_page(repeat: int) -> tuple[float, float, int]:
    """(median seconds of the HTML page, of the text summary, the page's size in bytes)."""
    from agent.incidents.formats import render

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "aiops.db")
        incident_id = page_store(store)
        render(store, incident_id, "html")  # imports and first reads out of the way
        page_s, page = timed(lambda: render(store, incident_id, "html"), repeat, "page")
        text_s, _ = timed(lambda: render(store, incident_id, "text"), repeat, "text")
        store.close()
    plots = page.count('<figure class="plot">')  # type: ignore[union-attr]
    if plots != 3 or page_s <= 0:
        raise SystemExit(f"the page is not what is measured: {plots} plots, {page_s} s")
    return page_s, text_s, len(page)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large", type=int, default=1_000_000, help="episodes in the second, large store")
    parser.add_argument("--page-only", action="store_true", help="only the incident page")
    args = parser.parse_args()
    page_s, text_s, page_bytes = incident_page(max(args.repeat, 5))
    print(f"incident page (50 signals, 10,000 hits): median {page_s:.3f}s wall, {CPU['page']:.3f}s CPU, "
          f"{page_bytes // 1024} KiB  ({page_s / text_s:.1f}x the text summary's {text_s:.3f}s; "
          f"{page_s / PAGE_TARGET_S:.2f}x the {PAGE_TARGET_S} s target)")
    if args.page_only:
        print(json.dumps({"bench": "report", "incident_page_s": round(page_s, 3)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "aiops.db")
        started = time.perf_counter()
        build(store, args.incidents, args.audit)
        print(f"built store: {args.incidents} incidents, {args.audit} audit entries "
              f"in {time.perf_counter() - started:.1f}s")
        period = Period(since=NOW - timedelta(days=366), until=NOW)
        mttr_s, report = timed(lambda: mttr_report(store, period, now=NOW), args.repeat, "mttr")
        by_service_s, _ = timed(lambda: mttr_report(store, period, by="service", now=NOW), args.repeat, "service")
        by_week_s, _ = timed(lambda: mttr_report(store, period, by="week", tz="Europe/Berlin", now=NOW),
                             args.repeat, "week")
        html_s, html = timed(lambda: weekly_report(store, period, now=NOW), args.repeat, "html")
        verify_s, broken = timed(store.verify_audit_chain, 1, "verify")
        assert broken is None, broken
        assert report.total.incidents == args.incidents
        # The figures must be those of the weekly page's path, which computes each episode's kind
        # and flags afresh from incidents, signals and labels (not from what migration 51 keeps).
        frame = incident_durations(store.incident_times(period.since_s, period.until_s))
        if not same(report_from_frame(frame, period, by=None, tz="UTC", now=NOW), report):
            raise SystemExit("the MTTR report's figures differ from those computed afresh")
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average {load} on {os.cpu_count()} cores")
        print(f"mttr report (all):      median {mttr_s:.3f}s wall, {CPU['mttr']:.3f}s CPU  "
              f"(wall {mttr_s / TARGET_S:.2f}x the {TARGET_S} s target)")
        print(f"mttr report by service: median {by_service_s:.3f}s wall, {CPU['service']:.3f}s CPU")
        print(f"mttr report by week:    median {by_week_s:.3f}s wall, {CPU['week']:.3f}s CPU")
        print(f"weekly html report:     median {html_s:.3f}s wall, {CPU['html']:.3f}s CPU  ({len(html) // 1024} KiB)")
        print(f"audit verify:           {verify_s:.3f}s wall, {CPU['verify']:.3f}s CPU  "
              f"({args.audit / CPU['verify']:,.0f} entries per CPU second)")
        print(f"MTTR mean {report.total.mttr.mean_s:.0f}s over {report.total.resolved} resolved, "
              f"{report.total.unresolved} unresolved")
        store.close()
    large_s = mttr_large(args.large, args.repeat)
    print(f"mttr report (all) over {args.large:,} episodes: median {large_s:.3f}s wall, {CPU['large']:.3f}s CPU  "
          f"({large_s / mttr_s:.1f}x the {args.incidents:,}-incident report for {args.large / args.incidents:.0f}x "
          f"the episodes)")
    print(json.dumps({"bench": "report", "incidents": args.incidents, "audit_entries": args.audit,
                      "mttr_report_s": round(mttr_s, 3), "html_report_s": round(html_s, 3),
                      "audit_verify_s": round(verify_s, 3), "mttr_report_1m_s": round(large_s, 3),
                      "incident_page_s": round(page_s, 3)}))


def same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative (sums over a different row order differ in the last bits)."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def mttr_large(episodes: int, repeat: int) -> float:
    """Median seconds of the MTTR report over a store of ``episodes`` one-outage incidents."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "aiops.db")
        started = time.perf_counter()
        build(store, episodes, 0)
        print(f"built store: {episodes:,} episodes in {time.perf_counter() - started:.1f}s")
        period = Period(since=NOW - timedelta(days=366), until=NOW)
        seconds, report = timed(lambda: mttr_report(store, period, now=NOW), repeat, "large")
        if report.total.episodes != episodes or report.total.incidents != episodes:
            raise SystemExit(f"the report counted {report.total.episodes} episodes, expected {episodes}")
        store.close()
    return seconds


if __name__ == "__main__":
    main()
