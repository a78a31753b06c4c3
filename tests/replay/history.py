"""Synthetic history for replays: hosts whose metrics follow a daily cycle with noise, and a
fault (cpu and latency of one host far off their usual level) at a known time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.flow.samples import SeriesInfo, series_id
from tests.fixtures.prometheus import Family

METRICS = ("cpu", "latency", "memory", "requests")
STEP_S = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    series: list[SeriesInfo]
    ts: np.ndarray  # epoch s
    values: np.ndarray  # series x ts
    fault_at: pd.Timestamp | None
    fault_host: str

    def families(self) -> list[Family]:
        """The same history as OpenMetrics families, for promtool."""
        out = []
        for metric in METRICS:
            rows = [(s.labels, self.ts, self.values[i]) for i, s in enumerate(self.series) if s.metric == metric]
            out.append(Family(name=metric, series=rows))
        return out


def fleet(start: pd.Timestamp, *, days: int, hosts: int, fault_at: pd.Timestamp | None = None,
          fault_minutes: int = 20, seed: int = 7, metrics: tuple[str, ...] = METRICS) -> History:
    rng = np.random.default_rng(seed)
    n = days * 86400 // STEP_S
    ts = start.timestamp() + STEP_S * np.arange(n, dtype="float64")
    day = np.sin(2 * np.pi * np.arange(n) / (86400 / STEP_S))
    series, rows = [], []
    for h in range(hosts):
        host = f"web-{h + 1}"
        for k, metric in enumerate(metrics):
            labels = {"instance": host, "job": "node"}
            series.append(SeriesInfo(series_id=series_id(metric, labels), metric=metric, labels=labels))
            level = 50.0 + 10 * k
            rows.append(level + 10 * day + rng.normal(0, 1.0, n))
    values = np.vstack(rows)
    host = "web-1"
    if fault_at is not None:
        first = int((fault_at.timestamp() - ts[0]) // STEP_S)
        for i, s in enumerate(series):
            if s.labels["instance"] == host and s.metric in ("cpu", "latency"):
                values[i, first:first + fault_minutes] += 60.0
    return History(series=series, ts=ts, values=values, fault_at=fault_at, fault_host=host)
