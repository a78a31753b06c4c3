"""MTTD, MTTR and the remediation ledger at /metrics, for dashboards: computed from the store at
scrape time.

- ``aiops_mttr_seconds``: mean time from an incident's start to its resolution, over the outages
  (episodes) that started in the last ``WINDOW`` (the figures ``aiops report mttr --since 7d`` shows);
- ``aiops_mttd_seconds``: mean time from its start to its detection;
- ``aiops_remediation_ledger_runs{rule,playbook,outcome}``, ``aiops_remediation_ledger_verify_median_seconds``
  and ``aiops_remediation_rule_auto{rule}``: ``aiops remediation ledger --since 30d`` and how each
  rule runs now.

No sample while no incident of the window has the figure (a dashboard shows "no data", not 0).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric

from agent.errors import StoreError
from agent.log import kv
from agent.report.period import period_since
from agent.store.base import psycopg_errors
from remediations.ledger import build_ledger
from remediations.trust import mode_of

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
        self._answering: Callable[[], bool] = lambda: True

    def bind(self, store: "Store", clock: Callable[[], datetime],
             answering: Callable[[], bool] | None = None) -> None:
        """``answering``: False while the store is known not to answer (a hung server): the
        scrape then leaves these gauges out instead of waiting on it."""
        self._store, self._clock = store, clock
        self._answering = answering or (lambda: True)


class IncidentFigures(StoreCollector):
    """MTTR and MTTD of the last ``WINDOW``."""

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, "gauge") for name, doc, _ in GAUGES]

    def collect(self) -> Iterator[Metric]:
        store, clock = self._store, self._clock
        families = self.describe()
        if store is not None and clock is not None and self._answering():
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


LEDGER_WINDOW = "30d"
LEDGER_OUTCOMES = ("verified", "not_fixed", "failed", "rolled_back", "interrupted", "under_way")
LEDGER_MAX_AGE_S = 60.0  # a scrape reads a ledger at most this old: it scans the window's runs


class LedgerFigures(StoreCollector):
    """The remediation ledger of the last ``LEDGER_WINDOW`` at /metrics, per rule and playbook,
    and how each rule runs now (``aiops_remediation_rule_auto``: 1 alone, 0 waiting for a person).
    Built at most once a minute: a ledger reads every run of the window."""

    def __init__(self) -> None:
        super().__init__()
        self._config: Callable[[], Any] | None = None
        self._cached: tuple[float, list[Metric]] | None = None

    def bind(self, store: "Store", clock: Callable[[], datetime], config: Callable[[], Any] | None = None,
             answering: Callable[[], bool] | None = None) -> None:
        """``config``: the agent's config as it is now (a reload replaces it)."""
        super().bind(store, clock, answering)
        self._config, self._cached = config, None

    def describe(self) -> list[Metric]:
        return [Metric("aiops_remediation_ledger_runs", f"Real remediation runs started in the last {LEDGER_WINDOW}, "
                       "by rule, playbook and outcome (rolled_back overlaps not_fixed and failed).", "gauge"),
                Metric("aiops_remediation_ledger_verify_median_seconds", "Median time from a run's start to its "
                       f"verification over the last {LEDGER_WINDOW}, by rule and playbook.", "gauge"),
                Metric("aiops_remediation_rule_auto", "1 when the rule runs alone now, 0 when it waits for "
                       "approval (trust: earned moves it).", "gauge")]

    def collect(self) -> Iterator[Metric]:
        if self._store is None or self._clock is None or self._config is None or not self._answering():
            yield from self.describe()
            return
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > LEDGER_MAX_AGE_S:
            self._cached = (now, self._families())
        yield from self._cached[1]

    def _families(self) -> list[Metric]:
        assert self._store is not None and self._clock is not None and self._config is not None
        runs, median, auto = self.describe()
        now = self._clock()
        config = self._config().remediation
        try:
            period = period_since(LEDGER_WINDOW, now=now)
            ledger = build_ledger(self._store, period.since, period.until, now=now)
            trusts = self._store.trust.all()
        except (StoreError, sqlite3.Error, *psycopg_errors()) as exc:
            log.warning(kv("metrics.ledger_failed", error=str(exc)))
            return [runs, median, auto]
        for row in ledger.rules:
            for outcome in LEDGER_OUTCOMES:
                runs.add_sample(runs.name, {"rule": row.rule, "playbook": row.playbook, "outcome": outcome},
                                float(getattr(row, outcome)))
            if row.median_verify_s is not None:
                median.add_sample(median.name, {"rule": row.rule, "playbook": row.playbook}, row.median_verify_s)
        for rule in config.rules:
            if rule.mode != "suggest":
                auto.add_sample(auto.name, {"rule": rule.name}, 1.0 if mode_of(rule, trusts.get(rule.name)) == "auto"
                                else 0.0)
        return [runs, median, auto]
