"""Benchmark: does a drift verdict depend on the live window's size?

For each shift (0, 0.1, 0.3 and 0.5 sd of the mean in 5 of 8 standard normal features) and each
live window size, ``--windows`` windows are scored against one 20,000-sample baseline by
``DriftDetector`` with its defaults, once with PSI as measured (``psi_correction=False``, the
verdict before the correction) and once corrected for its small-sample bias (the default). A
cell is the share of windows judged drifted (a hit: drift rate >= ``drift_share``) and the mean
drift rate. ``max_spread_points`` is, per verdict, the largest spread over window sizes of 200 and
up of the share judged drifted, in percentage points (the goal is at most 10). Sizes below
``min_samples`` (200) get no verdict; they show that unshifted data raise no hit there either.

Run: .venv/bin/python tests/bench/bench_drift.py [--windows 40] [--seed 0]
The last line printed is one JSON object with keys "bench", "table", "max_spread_points".
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import sys

import numpy as np
import pandas as pd

from detectors import DriftDetector

FEATURES = 8
SHIFTED = 5
BASELINE = 20_000
SHIFTS_SD = (0.0, 0.1, 0.3, 0.5)
SIZES = (30, 100, 200, 1_000, 5_000, 20_000)
JUDGED_FROM = 200  # DriftDetector's default min_samples
TS = pd.Timestamp("2026-01-01", tz="UTC")


def sample(rng: np.random.Generator, n: int, shift_sd: float) -> dict[str, np.ndarray]:
    return {f"f{i}": rng.normal(shift_sd if i < SHIFTED else 0.0, 1.0, n) for i in range(FEATURES)}


def table(windows: int, seed: int) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """verdict -> shift -> window size -> {"share_drifted", "mean_rate"}."""
    rng = np.random.default_rng(seed)
    baseline = sample(rng, BASELINE, 0.0)
    detectors = {
        "before": DriftDetector(psi_correction=False).fit(baseline, model="m"),
        "after": DriftDetector().fit(baseline, model="m"),
    }
    out: dict = {name: {} for name in detectors}
    for shift in SHIFTS_SD:
        for n in SIZES:
            hits = {name: 0 for name in detectors}
            rates: dict[str, list[float]] = {name: [] for name in detectors}
            for _ in range(windows):
                window = sample(rng, n, shift)  # both verdicts judge the same windows
                for name, detector in detectors.items():
                    scored = detector.score(window, ts=TS)
                    hits[name] += bool(scored.hits)
                    rate = scored.scores.attrs["drift_rate"]
                    if rate is not None:
                        rates[name].append(rate)
            for name in detectors:
                out[name].setdefault(f"{shift:g}", {})[str(n)] = {
                    "share_drifted": hits[name] / windows,
                    "mean_rate": float(np.mean(rates[name])) if rates[name] else None,
                }
    return out


def spread_points(cells: dict[str, dict[str, float]]) -> float:
    shares = [cell["share_drifted"] for n, cell in cells.items() if int(n) >= JUDGED_FROM]
    return round(100 * (max(shares) - min(shares)), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=40, help="windows per shift and size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = table(args.windows, args.seed)
    spreads = {}
    for name, shifts in result.items():
        print(f"{name} ({'PSI as measured' if name == 'before' else 'PSI corrected for sample size'}): "
              f"share judged drifted / mean drift rate, {args.windows} windows, baseline {BASELINE:,}")
        print("shift_sd  " + "".join(f"{n:>14,}" for n in SIZES) + "   spread (>=200)")
        spreads[name] = {}
        for shift, cells in shifts.items():
            row = "".join(
                f"{cell['share_drifted']:>7.0%} / {cell['mean_rate']:.2f}" if cell["mean_rate"] is not None
                else f"{cell['share_drifted']:>7.0%} /    -" for cell in cells.values()
            )
            spreads[name][shift] = spread_points(cells)
            print(f"{shift:>8}  {row}   {spreads[name][shift]:>5.1f} pts")
        print()
    shares = [c["share_drifted"] for shifts in result.values() for cells in shifts.values() for c in cells.values()]
    if any(not 0.0 <= s <= 1.0 for s in shares):
        raise SystemExit(f"impossible share of windows judged drifted: {shares}")
    print(json.dumps({
        "bench": "drift",
        "table": result,
        "max_spread_points": {name: max(by_shift.values()) for name, by_shift in spreads.items()},
        "spread_points": spreads,
        "windows": args.windows,
        "seed": args.seed,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
