"""MTTD and MTTR at /metrics, for dashboards: computed from the store at each scrape, over the
outages (episodes) that started in the last ``WINDOW`` (the figures ``aiops report mttr --since 7d`` shows).

- ``aiops_mttr_seconds``: mean time from an incident's start to its resolution;
- ``aiops_mttd_seconds``: mean time from its start to its detection.

No sample while no incident of the window has the figure (a dashboard shows "no data", not 0).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from agent.log import kv

if TYPE_CHECKING:
    from agent.store import Store

log = logging.getLogger(__name__)

WINDOW = "7d"
GAUGES = (
    ("aiops_mttr_seconds", f"Mean time to resolve of the outages (episodes) started in the last {WINDOW}.", "mttr"),
    ("aiops_mttd_seconds", f"Mean time to detect of the outages (episodes) started in the last {WINDOW}.", "mttd"),
)


class StoreCollector:
    """A prometheus-client collector reading the store it is bound to, at its clock's time."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self._clock: Callable[[], datetime] | None = None

    def bind(self, store: "Store", clock: Callable[[], datetime]) -> None:
        self._store, self._clock = store, clock


class IncidentFigures(StoreCollector):
    """MTTR and MTTD of the last ``WINDOW``."""

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, "gauge") for name, doc, _ in GAUGES]

    def collect(self) -> Iterator[Metric]:
        store, clock = self._store, self._clock
        families = self.describe()
        if store is not None and clock is not None:
            from agent.errors import StoreError
            from agent.report.mttr import mttr_report
            from agent.report.period import period_since
            from agent.store.base import psycopg_errors

            now = clock()
            try:
                total = mttr_report(store, period_since(WINDOW, now=now), now=now).total
            # On either backend, a scrape must still answer with the other metrics.
            except (StoreError, sqlite3.Error, *psycopg_errors()) as exc:
                log.warning(kv("metrics.mttr_failed", error=str(exc)))
            else:
                for family, (name, _, field) in zip(families, GAUGES):
                    mean = getattr(total, field).mean_s
                    if mean is not None:
                        family.add_sample(name, {}, float(mean))
        yield from families
