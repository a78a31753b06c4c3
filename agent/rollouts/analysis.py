"""Measuring a canary and judging it.

``PrometheusMeasure`` asks a Prometheus-compatible server's instant-query API, at the time the
cycle says, for each configured metric. ``judge`` turns a value into a ``Verdict`` (success
condition first, then failure, else inconclusive; no value is inconclusive), and ``decide``
reads the measurements so far into what the rollout does next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import numpy as np
import requests

from agent.config.models import Analysis, AnalysisMetric
from agent.errors import AiopsError
from agent.flow.rollouts import Measurement, Verdict
from detectors._distributions import psi, psi_null_mean


class MeasureError(AiopsError):
    """A metric could not be measured: the server failed or answered something unusable."""

    def __init__(self, metric: str, problem: str) -> None:
        self.metric = metric
        self.problem = problem
        super().__init__(f"analysis metric {metric}: {problem}")


class Measure(Protocol):
    def value(self, metric: AnalysisMetric, *, at: datetime, since: datetime,
              reference: Mapping[str, float] | None) -> float | None:
        """The metric's value at ``at`` (None: no data); ``since`` is when the rollout began."""

    def buckets(self, metric: AnalysisMetric, *, at: datetime, window_s: float) -> dict[str, float]:
        """A ``distribution`` metric's cumulative bucket counts (``le`` -> count) at ``at``."""

    def close(self) -> None:
        """Release connections."""


class PrometheusMeasure:
    """Instant queries against ``url``'s ``/api/v1/query``."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/") + "/api/v1/query"
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def close(self) -> None:
        self.session.close()

    def _query(self, metric: AnalysisMetric, expr: str, at: datetime) -> list[dict]:
        try:
            response = self.session.post(self.url, data={"query": expr, "time": f"{at.timestamp():.3f}"},
                                         timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise MeasureError(metric.name, f"the query failed: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            raise MeasureError(metric.name, f"expected JSON from {self.url}, found HTTP {response.status_code}") from None
        if response.status_code != 200 or body.get("status") != "success":
            raise MeasureError(metric.name, f"the server refused the query: {body.get('error', response.status_code)}")
        data = body.get("data") or {}
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data.get("result") or [])

    def value(self, metric: AnalysisMetric, *, at: datetime, since: datetime,
              reference: Mapping[str, float] | None) -> float | None:
        if metric.kind == "distribution":
            live = self.buckets(metric, at=at, window_s=max((at - since).total_seconds(), 1.0))
            return distribution_shift(reference or {}, live)
        result = self._query(metric, window(metric.query, max((at - since).total_seconds(), 1.0)), at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def buckets(self, metric: AnalysisMetric, *, at: datetime, window_s: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for series in self._query(metric, window(metric.query, window_s), at):
            le = series.get("metric", {}).get("le")
            value = float(series["value"][1])
            if le is not None and not math.isnan(value):
                out[le] = out.get(le, 0.0) + value
        return out


def window(query: str, seconds: float) -> str:
    """``{window}`` in a query -> a PromQL duration (whole seconds, at least 1 s)."""
    return query.replace("{window}", f"{max(1, int(seconds))}s")


def _proportions(cumulative: Mapping[str, float]) -> tuple[list[float], np.ndarray, float]:
    les = sorted(cumulative, key=lambda le: float(le))
    counts = np.maximum.accumulate(np.array([cumulative[le] for le in les], dtype=np.float64))
    cells = np.diff(np.concatenate([[0.0], counts]))
    total = float(counts[-1]) if len(counts) else 0.0
    return [float(le) for le in les], cells, total


def distribution_shift(reference: Mapping[str, float], live: Mapping[str, float]) -> float | None:
    """PSI of ``live`` bucket counts against ``reference`` (0 = same distribution, higher = more
    shift), less the PSI two samples of one distribution of these sizes show on average (the
    small-window bias), floored at 0. None when either side has no counts or the buckets differ."""
    if not reference or not live or set(reference) != set(live):
        return None
    _, base_cells, n_base = _proportions(reference)
    _, live_cells, n_live = _proportions(live)
    if n_base <= 0 or n_live <= 0:
        return None
    base, now = base_cells / n_base, live_cells / n_live
    return max(0.0, psi(base, now) - psi_null_mean(base, n_base, n_live))


def judge(metric: AnalysisMetric, value: float | None) -> tuple[Verdict, str]:
    if value is None:
        return Verdict.INCONCLUSIVE, "no data"
    if metric.success.holds(value):
        return Verdict.SUCCESSFUL, f"{value:.4g} {metric.success}"
    if metric.failure.holds(value):
        return Verdict.FAILED, f"{value:.4g} {metric.failure}"
    return Verdict.INCONCLUSIVE, f"{value:.4g}: neither {metric.success} nor {metric.failure}"


class Decision(StrEnum):
    CONTINUE = "continue"
    PAUSE = "pause"
    FAIL = "fail"
    PASS = "pass"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    decision: Decision
    reason: str


def decide(analysis: Analysis, measurements: Sequence[Measurement], *, started_at: datetime,
           now: datetime) -> Outcome:
    """What the measurements so far say: a metric with ``failure_limit`` failures fails the
    analysis; else a newest round with an inconclusive measurement and no failed one pauses it;
    else it passes once ``duration`` is covered by measurement rounds (``analysis.rounds``, one an
    interval: counted, not timed, so a slow playbook or a late cycle never passes a version on
    fewer measurements), and goes on before."""
    failures: dict[str, int] = {}
    for m in measurements:
        if m.verdict is Verdict.FAILED:
            failures[m.metric] = failures.get(m.metric, 0) + 1
    failed = sorted(name for name, n in failures.items() if n >= analysis.failure_limit)
    if failed:
        return Outcome(decision=Decision.FAIL, reason=", ".join(
            f"{name} failed {failures[name]} times (limit {analysis.failure_limit})" for name in failed))
    newest = max((m.at for m in measurements), default=None)
    latest = [m for m in measurements if m.at == newest]
    unsure = [m for m in latest if m.verdict is Verdict.INCONCLUSIVE]
    # A failure in the same round is stronger evidence than an unsure metric: the next round
    # decides, rather than a person being asked while a bad version keeps serving.
    if unsure and not any(m.verdict is Verdict.FAILED for m in latest):
        return Outcome(decision=Decision.PAUSE, reason="inconclusive: " + "; ".join(
            f"{m.metric} {m.reason}" for m in unsure))
    if len({m.at for m in measurements}) >= analysis.rounds:
        return Outcome(decision=Decision.PASS, reason=f"{len(measurements)} measurements over "
                                                      f"{analysis.duration:g}s, none failing the analysis")
    return Outcome(decision=Decision.CONTINUE, reason="")
