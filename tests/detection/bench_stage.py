"""The detect stage at scale: fit every series on first sight, then score cycles of new points.

Run: .venv/bin/python tests/detection/bench_stage.py [SERIES] [HISTORY_MINUTES]
Prints the first cycle's CPU (all subjects fitted), the median CPU of a scoring cycle (15-point
frames, one new point per series, nothing due for refit) and peak RSS; last, one JSON line.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import parse_config  # noqa: E402
from agent.context import Context  # noqa: E402
from agent.flow.samples import Samples, SeriesInfo, series_id  # noqa: E402
from agent.pipeline import Pipeline  # noqa: E402
from agent.store import open_store  # noqa: E402

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
CYCLES = 5


def main(n: int, history: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    config = parse_config(f"agent:\n  state_dir: {state}\ndetectors:\n  refit: {{max_per_cycle: {n}}}\n"
                          "  rules:\n    - kind: seasonal\n      params: {periods: [86400]}\n")
    ctx = Context(config=config, store=open_store(state), state_dir=state)
    engine = Pipeline(ctx).engine
    infos = {}
    for i in range(n):
        sid = series_id("bench_value", {"series": str(i)})
        infos[sid] = SeriesInfo(series_id=sid, metric="bench_value", labels={"series": str(i)})
    rng = np.random.default_rng(0)
    minutes = np.arange(history + CYCLES)
    values = 50 + 10 * np.sin(2 * np.pi * minutes / 1440)[None, :] + rng.normal(0, 1, (n, history + CYCLES))

    def frame(end_row: int, rows: int, end: datetime) -> Samples:
        index = pd.date_range(end=end, periods=rows, freq="60s", tz="UTC", name="ts")
        return Samples(values=pd.DataFrame(values[:, end_row - rows:end_row].T, index=index, columns=list(infos)),
                       series=infos)

    started = time.process_time()
    first = frame(history, history, T0)
    engine.refit(now=T0, samples=first)  # the refit job: every subject fitted
    engine.detect(first, now=T0)
    fit_cpu = time.process_time() - started
    cycle_cpu, hits = [], []
    for k in range(1, CYCLES + 1):
        end = T0 + timedelta(minutes=k)
        window = frame(history + k, 15, end)
        started = time.process_time()
        hits.append(len(engine.detect(window, now=end).hits))
        cycle_cpu.append(time.process_time() - started)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"series: {n}, history: {history} one-minute points")
    print(f"first cycle (every subject fitted): {fit_cpu:.2f} s CPU")
    print(f"scoring cycle, median of {CYCLES}: {statistics.median(cycle_cpu):.3f} s CPU, hits per cycle {hits}")
    print(f"peak RSS: {rss_mb:.0f} MB")
    print(json.dumps({"bench": "detection_stage", "series": n, "first_fit_cpu_s": round(fit_cpu, 3),
                      "score_cycle_cpu_s": round(statistics.median(cycle_cpu), 4), "peak_rss_mb": round(rss_mb)}))
    ctx.store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 1440)
