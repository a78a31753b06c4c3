"""Benchmark of the seasonal detector at fleet scale, plus the NAB score of the backtest.

Synthetic data: N series (default 10,000) of 1-minute points over 7 days with a daily cycle, a
weekly swell, noise, and anomalies injected into the scored cycles. Measures, on one core
(BLAS threads pinned to 1 before numpy loads):

- refit_all_cpu_s: CPU seconds to fit every series (one SeasonalDetector over all columns);
- score_cycle_cpu_s: median CPU seconds to score one new cycle (one point per series);
- peak_rss_mb: peak resident memory of this process during the above;
- naive_ratio: CPU per cycle of the naive way (a full-resolution STL refit of every series at
  every cycle, measured on a sample of series and scaled to N) over score_cycle_cpu_s;
- nab_standard, nab_low_fp, nab_low_fn: ``agent.backtest.score_corpus`` over shared/data/nab.

Run: .venv/bin/python tests/bench/bench_detect.py [--series 10000] [--naive-sample 3] [--no-nab]
The last line printed is one JSON object with exactly those keys plus "bench".
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from statsmodels.tsa.seasonal import STL  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from detectors import SeasonalDetector  # noqa: E402

NAB = Path("/work/shared/data/nab")
START = pd.Timestamp("2026-03-02", tz="UTC")
DAY_MIN = 1440
BLOCK = 500


def series_shape(n_series: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "level": rng.uniform(50, 500, n_series),
        "daily": rng.uniform(0.1, 0.5, n_series),  # daily amplitude, share of the level
        "weekly": rng.uniform(0.0, 0.1, n_series),  # weekly swell, share of the level
        "noise": rng.uniform(0.01, 0.05, n_series),  # noise sd, share of the level
        "phase": rng.uniform(0, 2 * np.pi, n_series),
    }


def values_at(minutes: np.ndarray, shape: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Values (rows = minutes since START, columns = series), float64."""
    t = minutes[:, None].astype(np.float64)
    level = shape["level"]
    daily = np.sin(2 * np.pi * t / DAY_MIN + shape["phase"]) * shape["daily"]
    weekly = np.sin(2 * np.pi * t / (7 * DAY_MIN)) * shape["weekly"]
    noise = rng.standard_normal((len(minutes), len(level))) * shape["noise"]
    return level * (1.0 + daily + weekly + noise)


def history_frame(n_series: int, days: int, shape: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = days * DAY_MIN
    data = np.empty((rows, n_series))
    rng = np.random.default_rng(1)
    minutes = np.arange(rows)
    for start in range(0, n_series, BLOCK):
        part = {k: v[start:start + BLOCK] for k, v in shape.items()}
        data[:, start:start + BLOCK] = values_at(minutes, part, rng)
    # A few outages in the history, as real data has: short gaps and spikes.
    data[rows // 3: rows // 3 + 20, ::97] = np.nan
    data[rows // 2, ::89] *= 3.0
    index = pd.date_range(START, periods=rows, freq="1min")
    return pd.DataFrame(data, index=index, columns=[f"series_{i:05d}" for i in range(n_series)], copy=False)


def cpu() -> float:
    return time.process_time()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def score_cycles(detector: SeasonalDetector, shape, history_rows: int, cycles: int, columns) -> dict[str, float]:
    """Score ``cycles`` new minutes; every cycle, 1% of the series get a 40% spike."""
    rng = np.random.default_rng(2)
    timings, injected, caught, false_hits = [], 0, 0, 0
    for c in range(cycles):
        minute = history_rows + c
        row = values_at(np.array([minute]), shape, rng)
        spiked = rng.choice(len(columns), size=max(1, len(columns) // 100), replace=False)
        row[0, spiked] *= 1.4
        window = pd.DataFrame(row, index=[START + pd.Timedelta(minutes=minute)], columns=columns)
        t0 = cpu()
        result = detector.score(window)
        timings.append(cpu() - t0)
        hit_cols = {h.series_id for h in result.hits}
        spiked_names = {columns[i] for i in spiked}
        injected += len(spiked_names)
        caught += len(spiked_names & hit_cols)
        false_hits += len(hit_cols - spiked_names)
    return {
        "median_s": statistics.median(timings),
        "recall": caught / injected,
        "false_hits_per_cycle": false_hits / cycles,
    }


def naive_per_series_s(history: pd.DataFrame, sample: int) -> float:
    """CPU seconds of one full-resolution STL refit (period 1440, no jump options) per series."""
    timings = []
    for j in range(sample):
        column = history.iloc[:, j].interpolate(limit_direction="both").to_numpy()
        t0 = cpu()
        STL(column, period=DAY_MIN).fit()
        timings.append(cpu() - t0)
    return statistics.median(timings)


def nab_scores() -> dict[str, float | None]:
    empty = {"nab_standard": None, "nab_low_fp": None, "nab_low_fn": None}
    try:
        from agent.backtest import score_corpus
    except ImportError as exc:
        print(f"NAB: agent.backtest.score_corpus not available ({exc}); NAB keys are null")
        return empty
    t0 = time.perf_counter()
    scores = score_corpus(NAB / "data", NAB / "labels" / "combined_windows.json")
    print(f"NAB backtest of shared/data/nab ({time.perf_counter() - t0:.0f} s wall): {scores}")
    return {
        "nab_standard": round(scores["standard"], 2),
        "nab_low_fp": round(scores["reward_low_FP_rate"], 2),
        "nab_low_fn": round(scores["reward_low_FN_rate"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--naive-sample", type=int, default=3)
    parser.add_argument("--no-nab", action="store_true", help="skip the NAB backtest (keys print null)")
    args = parser.parse_args()

    shape = series_shape(args.series, seed=0)
    t0 = time.perf_counter()
    history = history_frame(args.series, args.days, shape)
    print(f"data: {args.series} series x {len(history)} points (1 min, {args.days} days), "
          f"{history.memory_usage(index=False).sum() / 2**20:.0f} MiB, built in {time.perf_counter() - t0:.1f} s")

    detector = SeasonalDetector()
    t0, w0 = cpu(), time.perf_counter()
    detector.fit(history)
    refit_s = cpu() - t0
    seasonal = sum(1 for p in detector.periods_.values() if p)
    print(f"refit all: {refit_s:.1f} CPU s ({time.perf_counter() - w0:.1f} s wall) for {args.series} series, "
          f"measured in full (not extrapolated); {seasonal} got a daily period, "
          f"buckets of {detector.width_s_:.0f} s")

    cycle = score_cycles(detector, shape, len(history), args.cycles, list(history.columns))
    print(f"score one cycle ({args.series} points): median {cycle['median_s'] * 1000:.1f} ms CPU over "
          f"{args.cycles} cycles; injected 40% spikes caught {cycle['recall']:.1%}, "
          f"{cycle['false_hits_per_cycle']:.2f} other series hit per cycle")
    rss = peak_rss_mb()
    print(f"peak RSS: {rss:.0f} MB")

    naive_one = naive_per_series_s(history, args.naive_sample)
    naive_cycle = naive_one * args.series
    ratio = naive_cycle / cycle["median_s"]
    print(f"naive baseline: full-resolution STL refit per series per cycle: {naive_one:.2f} CPU s per series "
          f"(median of {args.naive_sample} measured), scaled to {args.series} series = {naive_cycle:.0f} CPU s "
          f"per cycle (EXTRAPOLATED from the sample); ratio naive / ours = {ratio:,.0f}x")

    nab = {"nab_standard": None, "nab_low_fp": None, "nab_low_fn": None} if args.no_nab else nab_scores()
    print(json.dumps({
        "bench": "detect",
        "series": args.series,
        "score_cycle_cpu_s": round(cycle["median_s"], 4),
        "refit_all_cpu_s": round(refit_s, 1),
        "peak_rss_mb": round(rss, 1),
        "naive_ratio": round(ratio, 1),
        **nab,
    }))


if __name__ == "__main__":
    main()
