"""Resamples of the NAB development files at other cadences, to check that the default detection
holds its score when the step changes (the held-out NAB files have both kinds):

- ``hourly``: hourly means, a tenth of the hours dropped at random (gaps);
- ``irregular``: points every 5 to 10 minutes (uniform), each the last native value at or before it.

Each labelled window keeps the resampled points inside it. Writes ``OUT/hourly/…``,
``OUT/irregular/…`` in NAB's layout and ``OUT/{hourly,irregular}_windows.json``; then

    aiops backtest OUT/hourly --labels OUT/hourly_windows.json --output /tmp/hourly

Run: .venv/bin/python tests/bench/nab_resample.py OUT [--seed 2026]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.backtest.corpus import find_inputs, read_series, read_windows  # noqa: E402

NAB = REPO.parent / "shared" / "data" / "nab"
MIN_POINTS = 50


def hourly(series: pd.Series, rng: np.random.Generator) -> pd.Series:
    means = series.resample("1h").mean().dropna()
    return means[rng.random(len(means)) >= 0.1]


def irregular(series: pd.Series, rng: np.random.Generator) -> pd.Series:
    first, last = series.index[0], series.index[-1]
    steps = rng.uniform(5, 10, int((last - first) / pd.Timedelta(minutes=5)) + 10)
    times = first + pd.to_timedelta(np.cumsum(np.r_[0, steps]), unit="min")
    times = times[times <= last].round("1s")
    at = series.index.searchsorted(times, side="right") - 1
    return pd.Series(series.to_numpy()[at], index=times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    windows = read_windows(NAB / "labels" / "combined_windows.json")
    rng = np.random.default_rng(args.seed)
    for kind, resample in (("hourly", hourly), ("irregular", irregular)):
        labels: dict[str, list[list[str]]] = {}
        for item in find_inputs([NAB / "data"]):
            series = read_series(item.path)
            series = series[~series.index.duplicated(keep="last")].sort_index()
            points = resample(series, rng)
            if len(points) < MIN_POINTS:
                continue
            kept = []
            for start, end in windows.get(item.key, []):
                inside = points.index[(points.index >= start) & (points.index <= end)]
                if len(inside):
                    kept.append([f"{inside[0].tz_localize(None)}.000000", f"{inside[-1].tz_localize(None)}.000000"])
            path = args.out / kind / item.key
            path.parent.mkdir(parents=True, exist_ok=True)
            stamps = points.index.tz_localize(None).strftime("%Y-%m-%d %H:%M:%S")
            pd.DataFrame({"timestamp": stamps, "value": points.to_numpy()}).to_csv(path, index=False)
            labels[item.key] = kept
        (args.out / f"{kind}_windows.json").write_text(json.dumps(labels, indent=1))
        print(f"{kind}: {len(labels)} files, {sum(len(w) for w in labels.values())} windows in {args.out / kind}")


if __name__ == "__main__":
    main()
