"""A signal's points over a span, for its plot: the samples the agent kept (the scrape source's
history, the drift rates it records), else the series from Prometheus by its PromQL (the
Prometheus source keeps nothing of its own). Prometheus is asked once, with a short timeout: a
page that cannot reach it still renders, with what the agent recorded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

import requests

from agent.config.sources import PrometheusSourceConfig
from agent.log import kv
from agent.sources.promjson import decode_matrix_items

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store

log = logging.getLogger(__name__)

POINTS = 400  # the step asked of Prometheus gives about this many points over the span
TIMEOUT_S = 5.0

Points = list[tuple[datetime, float | None]]


class History(Protocol):
    def points(self, series_id: str, promql: str | None, start: datetime, end: datetime) -> Points: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredHistory:
    """What the store kept; Prometheus (when the source is one) for a series it kept nothing of."""

    store: "Store"
    prometheus: PrometheusSourceConfig | None = None

    def points(self, series_id: str, promql: str | None, start: datetime, end: datetime) -> Points:
        kept = self.store.summary_samples(series_id, start=start, end=end)
        if kept or self.prometheus is None or promql is None:
            return kept
        return query_range(self.prometheus, promql, start, end)


def query_range(config: PrometheusSourceConfig, promql: str, start: datetime, end: datetime) -> Points:
    """The first series ``promql`` gives over ``[start, end]`` ([] when it gives none or Prometheus
    does not answer: logged, never raised)."""
    step = max(config.step, math.ceil((end - start).total_seconds() / POINTS))
    params = {"query": promql, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}", "step": f"{step:g}"}
    try:
        with requests.Session() as session:
            if config.bearer_token is not None:
                session.headers["Authorization"] = f"Bearer {config.bearer_token.get_secret_value()}"
            elif config.username:
                session.auth = (config.username, config.password.get_secret_value() if config.password else "")
            session.verify = str(config.ca_file) if config.ca_file and config.verify_tls else config.verify_tls
            answer = session.get(config.url.rstrip("/") + "/api/v1/query_range", params=params,
                                 timeout=min(TIMEOUT_S, config.timeout))
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        log.warning(kv("incident.plot_history_failed", error=type(exc).__name__))
        return []
    series: Sequence = decode_matrix_items(result)
    if not series:
        return []
    _, times, values = series[0]
    return [(datetime.fromtimestamp(float(t), tz=timezone.utc), None if math.isnan(v) else float(v))
            for t, v in zip(times, values)]


def history_of(config: "AgentConfig", store: "Store") -> StoredHistory:
    """Plots' points from ``store``, and from the Prometheus source when it is the one in use."""
    prometheus = config.sources.prometheus if config.sources.kind == "prometheus" else None
    return StoredHistory(store=store, prometheus=prometheus)
