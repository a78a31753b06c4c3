"""MTTD and MTTR at /metrics, for dashboards: computed from the store at each scrape, over the
outages (episodes) that started in the last ``WINDOW`` (the figures ``aiops report mttr --since 7d`` shows).

- ``aiops_mttr_seconds``: mean time from an incident's start to its resolution;
- ``aiops_mttd_seconds``: mean time from its start to its detection.

No sample while no incident of the window has the figure (a dashboard shows "no data", not 0).
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from agent.log import kv

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)

WINDOW = "7d"
GAUGES = (
    ("aiops_mttr_seconds", f"Mean time to resolve of the outages (episodes) started in the last {WINDOW}.", "mttr"),
    ("aiops_mttd_seconds", f"Mean time to detect of the outages (episodes) started in the last {WINDOW}.", "mttd"),
)


class IncidentFigures:
    """A prometheus-client collector reading the store of the Context it is bound to."""

    def __init__(self) -> None:
        self._ctx: weakref.ReferenceType[Context] | None = None

    def bind(self, ctx: "Context") -> None:
        # Weak: the Context owns the metrics; the metrics must not keep it alive.
        self._ctx = weakref.ref(ctx)

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, "gauge") for name, doc, _ in GAUGES]

    def collect(self) -> Iterator[Metric]:
        ctx = self._ctx() if self._ctx is not None else None
        families = self.describe()
        if ctx is not None:
            from agent.errors import StoreError
            from agent.report.mttr import mttr_report
            from agent.report.period import period_since

            now = ctx.clock()
            try:
                total = mttr_report(ctx.store, period_since(WINDOW, now=now), now=now).total
            except (StoreError, sqlite3.Error) as exc:  # a scrape must still answer with the other metrics
                log.warning(kv("metrics.mttr_failed", error=str(exc)))
            else:
                for family, (name, _, field) in zip(families, GAUGES):
                    mean = getattr(total, field).mean_s
                    if mean is not None:
                        family.add_sample(name, {}, float(mean))
        yield from families
