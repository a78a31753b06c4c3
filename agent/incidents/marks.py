"""Incidents at /metrics, for dashboard annotations: read from the store at each scrape.

- ``aiops_incident_started_timestamp_seconds``: when the current outage of an incident began
  (UTC epoch seconds), for every open incident and every one resolved in the last ``RECENT``;
- ``aiops_incident_resolved_timestamp_seconds``: when a recently resolved one was resolved.

Each sample carries ``incident`` (the id), ``severity`` and the incident's place labels (job,
instance, service, model, host, node), so a dashboard filtered by job and instance shows its own
incidents. Grafana draws one annotation per incident from either, with "use series value as
timestamp". At most ``LIMIT`` incidents, the newest: a storm does not flood the scrape.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import Metric

from agent.clock import to_epoch
from agent.detection.gauges import safe_labels
from agent.incidents.rootcause import WHERE_LABELS
from agent.log import kv
from agent.report.gauges import StoreCollector
from agent.store.base import psycopg_errors

if TYPE_CHECKING:
    from agent.flow.incidents import IncidentMark

log = logging.getLogger(__name__)

RECENT = timedelta(hours=24)
LIMIT = 500
STARTED = ("aiops_incident_started_timestamp_seconds",
           "When the current outage of an open or recently resolved incident began (UTC epoch seconds).")
RESOLVED = ("aiops_incident_resolved_timestamp_seconds",
            "When a recently resolved incident was resolved (UTC epoch seconds).")


class IncidentMarks(StoreCollector):
    """Open and recent incidents' start and resolution times."""

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, "gauge") for name, doc in (STARTED, RESOLVED)]

    def collect(self) -> Iterator[Metric]:
        started, resolved = self.describe()
        if self._store is not None and self._clock is not None and self._answering():
            try:
                marks = self._store.incident_marks(resolved_since=self._clock() - RECENT, limit=LIMIT)
            except (sqlite3.Error, *psycopg_errors()) as exc:  # the other metrics still answer
                log.warning(kv("metrics.incident_marks_failed", error=str(exc)))
                marks = []
            for mark in marks:
                labels = mark_labels(mark)
                started.add_sample(STARTED[0], labels, float(to_epoch(mark.started_at)))
                if mark.resolved_at is not None:
                    resolved.add_sample(RESOLVED[0], labels, float(to_epoch(mark.resolved_at)))
        yield started
        yield resolved


def mark_labels(mark: "IncidentMark") -> dict[str, str]:
    place = {k: v for k, v in mark.labels.items() if k in WHERE_LABELS}
    return {**safe_labels(place, ("incident", "severity")), "incident": str(mark.id), "severity": mark.severity.value}
