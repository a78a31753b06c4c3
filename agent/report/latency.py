"""A model's inference latency P95 per UTC day, from where the agent reads its metrics.

With ``sources.kind: prometheus`` the samples live in Prometheus, not in the store: the
configured quantile queries about latency are asked again over the report's period (a coarse
step, at most ``MAX_POINTS`` a series) and the series labelled with the model averaged per day.
With the scrape source the store's sample history has them (``ReportStore.model_daily_health``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from agent.log import kv
from agent.metrics import Metrics
from agent.sources.health import TargetHealth
from agent.sources.prometheus import PrometheusSource

if TYPE_CHECKING:
    from agent.config import AgentConfig

log = logging.getLogger(__name__)

MAX_POINTS = 2000
LatencyByDay = Callable[[str, datetime, datetime], dict[str, float]]


def latency_reader(config: "AgentConfig") -> LatencyByDay | None:
    """Reads P95 per day from Prometheus when that is the source; None: the store has the samples."""
    if config.sources.kind != "prometheus":
        return None
    prometheus = config.sources.prometheus
    queries = [q for q in prometheus.queries if q.kind == "quantile" and "latency" in f"{q.name} {q.expr}"]

    def read(model: str, since: datetime, until: datetime) -> dict[str, float]:
        if not queries:
            return {}
        step = max((until - since).total_seconds() / MAX_POINTS, 60.0)
        metrics = Metrics()
        source = PrometheusSource(prometheus, metrics=metrics, health=TargetHealth(metrics),
                                  series_limit=config.sources.series_limit)
        try:
            samples = source.fetch(pd.Timestamp(since), pd.Timestamp(until),
                                   [q.model_copy(update={"step": max(step, q.step or 0)}) for q in queries])
        finally:
            source.close()
        if source.failed:  # logged and counted by the source; the report says "-" for those days
            log.warning(kv("report.latency_unavailable", model=model, queries=",".join(source.failed)))
        mine = [sid for sid, info in samples.series.items() if info.labels.get("model") == model
                and sid in samples.values.columns]
        if not mine:
            return {}
        values = samples.values[mine].mean(axis=1).dropna()
        values = values[values.index < pd.Timestamp(until)]
        by_day = values.groupby(values.index.strftime("%Y-%m-%d")).mean()
        return {str(day): float(p95) for day, p95 in by_day.items()}

    return read
