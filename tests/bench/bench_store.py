"""Benchmark: writing a cycle's hits to the store, the product's way against sqlite-utils'.

The product writes the hits of signals their incidents already hold with ``record_repeats``
(one ``executemany`` of the hits, one of the signal updates). The baseline writes the same hit
rows with sqlite-utils' ``Table.insert_all`` (the tool the project uses for schema inspection
and export) inside the same kind of transaction, and the same signal updates. Each round writes
N fresh hits of 200 open incidents to a store in a temporary directory.

sqlite-utils builds each row in Python (``jsonify_if_needed`` on every value) and is limited to
999 bound values a statement, so its bulk insert is not what the hot path uses; this benchmark
is the figure behind that choice.

Prints medians over the rounds, then one JSON line:
``{"hits": N, "record_repeats_ms": …, "sqlite_utils_ms": …, "sqlite_utils_ratio": …}``
(ratio > 1: sqlite-utils is slower).

Run: .venv/bin/python tests/bench/bench_store.py [--hits N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.clock import to_epoch  # noqa: E402
from agent.flow.incidents import Severity  # noqa: E402
from agent.store import Store  # noqa: E402
from agent.store.base import dumps  # noqa: E402
from agent.store.incidents import _REPEAT_SIGNAL, _began, signal_key  # noqa: E402
from detectors.base import Direction, Hit  # noqa: E402

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
INCIDENTS = 200
HIT_COLUMNS = ["ts", "series_id", "detector", "entity", "metric", "labels", "value", "expected", "lower", "upper",
               "score", "direction", "explanation", "incident_id", "recorded_at", "began_at"]


def hits(n: int, round_no: int) -> list[tuple[int, Hit]]:
    at = T0 + timedelta(minutes=round_no)
    return [(1 + i % INCIDENTS, Hit(series_id=f'latency{{instance="host-{i % INCIDENTS}",n="{i}"}}', detector="forecast",
                                    ts=at, value=1.5, score=0.8, direction=Direction.UP, expected=1.0, lower=0.5,
                                    upper=1.2, metric="latency", labels={"instance": f"host-{i % INCIDENTS}", "n": str(i)},
                                    explanation="above its forecast", began_at=at))
            for i in range(n)]


def with_sqlite_utils(store: Store, repeats: list[tuple[int, Hit]], now: datetime) -> None:
    recorded = to_epoch(now)
    rows, updates, last = [HIT_COLUMNS], [], {}
    for incident_id, h in repeats:
        ts, direction = to_epoch(h.ts), str(h.direction)
        rows.append([ts, h.series_id, h.detector, h.entity, h.metric, dumps(dict(h.labels)), h.value, h.expected,
                     h.lower, h.upper, h.score, direction, h.explanation, incident_id, recorded, _began(h)])
        updates.append((ts, ts, h.score, h.score, h.value, h.expected, direction, h.explanation, incident_id,
                        signal_key(h.series_id, h.detector)))
        last[incident_id] = max(last.get(incident_id, ts), ts)
    with store.transaction():  # as record_repeats, but the hits through sqlite-utils
        store.db["hits"].insert_all(rows)
        store.conn.executemany(_REPEAT_SIGNAL, updates)
        store.conn.executemany(
            "UPDATE incidents SET last_signal_at = max(coalesce(last_signal_at, 0), ?), updated_at = ?, "
            "quiet_cycles = 0 WHERE id = ?", [(ts, recorded, i) for i, ts in last.items()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "aiops.db")
        for i in range(INCIDENTS):
            store.open_incident(severity=Severity.WARNING, title=f"incident {i}", labels={"instance": f"host-{i}"},
                                started_at=T0, now=T0)
        times: dict[str, list[float]] = {"record_repeats": [], "sqlite_utils": []}
        for round_no in range(args.rounds):
            for name in ("record_repeats", "sqlite_utils") if round_no % 2 else ("sqlite_utils", "record_repeats"):
                batch, now = hits(args.hits, round_no), T0 + timedelta(minutes=round_no)
                before = store.table_counts()["hits"]
                started = time.perf_counter()
                if name == "record_repeats":
                    store.record_repeats(batch, now=now)
                else:
                    with_sqlite_utils(store, batch, now)
                times[name].append(time.perf_counter() - started)
                written = store.table_counts()["hits"] - before
                if written != args.hits:
                    raise SystemExit(f"{name} wrote {written} hits, expected {args.hits}")
        store.close()
    ours, theirs = (statistics.median(times[k]) * 1000 for k in ("record_repeats", "sqlite_utils"))
    if ours <= 0 or theirs <= 0:
        raise SystemExit(f"impossible timing: record_repeats {ours} ms, sqlite-utils {theirs} ms")
    print(f"{args.hits} hits, median of {args.rounds} rounds")
    print(f"  record_repeats (executemany):  {ours:8.2f} ms  {args.hits / ours * 1000:10.0f} hits/s")
    print(f"  sqlite-utils insert_all:       {theirs:8.2f} ms  {args.hits / theirs * 1000:10.0f} hits/s")
    print(f"  sqlite-utils / record_repeats: {theirs / ours:8.2f}x")
    print(json.dumps({"hits": args.hits, "record_repeats_ms": round(ours, 2), "sqlite_utils_ms": round(theirs, 2),
                      "sqlite_utils_ratio": round(theirs / ours, 2)}))


if __name__ == "__main__":
    main()
