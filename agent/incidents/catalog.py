"""What the configured sources say about a signal: the PromQL that gives its series in
Prometheus, its unit, and a graph link.

A series of the Prometheus source comes from a named query: its PromQL is the query's expression
narrowed to the series' labels (``(EXPR) and on(job, model) <a one-sample vector with those
labels>``), which Prometheus evaluates to exactly that series whatever the expression does. A
series the query left its metric name on, or one the scrape source read, is a selector of its
metric, counters as ``rate(…[5m])`` and histograms as ``histogram_quantile`` over their buckets.
A drift signal is the agent's own ``aiops_model_drift_rate_ratio``, an Alertmanager signal the
``ALERTS`` series Prometheus keeps for its alerts. An isolation forest judges an entity, not a
series: it has no PromQL and no link.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from agent.config.incidents import TopologyConfig
from agent.config.notify import GRAPH_LINK
from agent.flow.incidents import Signal
from agent.incidents.onset import DRIFT_DETECTOR
from agent.incidents.rootcause import ALERT_DETECTOR
from agent.incidents.topology import Topology
from agent.incidents.units import PLAIN, Unit, unit_of
from agent.sources import remote_read

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.store import Store

RATE_WINDOW = "5m"  # the range of rate() over a scraped counter
BEFORE = timedelta(hours=1)  # a graph shows at least this much before the anomaly began
AFTER = timedelta(minutes=30)
_PLACEHOLDER = re.compile(r"{(expr|range|end)}")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # no other name can be in Prometheus or in PromQL


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """A named query of the Prometheus source: its expression and the type of its series."""

    expr: str
    kind: str = "gauge"


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """``queries`` by name (the Prometheus source's), ``kinds`` of scraped series by id, the graph
    link template (``{expr}``, ``{range}``, ``{end}``; None: no links), the names of the SLO rules
    (their bound is an objective) and the configured topology."""

    queries: Mapping[str, Query] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)
    graph_link: str | None = None
    slos: frozenset[str] = frozenset()
    topology: Topology = field(default_factory=lambda: Topology(TopologyConfig()))

    def with_kinds(self, store: "Store", signals: tuple[Signal, ...]) -> "Catalog":
        """This catalog knowing the types the scrape source recorded for ``signals``' series."""
        wanted = [s.series_id for s in signals if s.metric not in self.queries]
        if not wanted:
            return self
        found = {info.series_id: info.kind for info in store.known_series(series_ids=wanted)}
        return replace(self, kinds={**self.kinds, **found})

    def promql(self, signal: Signal) -> str | None:
        if signal.detector == DRIFT_DETECTOR:
            return selector("aiops_model_drift_rate_ratio", {k: v for k, v in signal.labels.items() if k == "model"})
        if signal.detector == ALERT_DETECTOR:
            return selector("ALERTS", {**signal.labels, "alertstate": "firing"})
        if not signal.metric or signal.metric == signal.detector:  # an entity of an isolation forest
            return None
        query = self.queries.get(signal.metric)
        if query is not None:
            name = _selected_metric(query.expr)
            # A plain selector's series is that metric with the series' labels: said as such.
            return selector(name, signal.labels) if name else narrowed(query.expr, signal.labels)
        # A series that kept its metric name: a query's plain selector, or an expression that
        # keeps names (label_replace adds labels the metric has not got): narrow the queries
        # that name the metric, so the labels select the series whichever of them gave it.
        name = re.compile(rf"(?<![\w:]){re.escape(signal.metric)}(?![\w:])")
        users = [q.expr.strip() for q in self.queries.values() if name.search(q.expr)]
        if any(remote_read.selector(expr) is None for expr in users):
            return narrowed(" or ".join(f"({expr})" for expr in users) if len(users) > 1 else users[0], signal.labels)
        return scraped(signal.metric, signal.labels, self.kinds.get(signal.series_id, "gauge"))

    def unit(self, signal: Signal) -> Unit:
        if signal.detector in (DRIFT_DETECTOR, ALERT_DETECTOR):
            return PLAIN
        query = self.queries.get(signal.metric)
        if query is not None:
            return unit_of(signal.metric, kind=query.kind, expr=query.expr)
        return unit_of(signal.metric, kind=self.kinds.get(signal.series_id))

    def graph_url(self, signal: Signal, *, end: datetime | None = None) -> str | None:
        """A graph of the signal from an hour before it began to half an hour after its last hit
        (or ``end``); every value filled in is URL-encoded, and nothing from a label can add a
        placeholder."""
        expr = self.promql(signal) if self.graph_link else None
        if expr is None or self.graph_link is None:
            return None
        end = end or signal.last_at + AFTER
        hours = max(1, math.ceil((end - (signal.first_at - BEFORE)).total_seconds() / 3600))
        values = {"expr": quote(expr, safe=""), "range": f"{hours}h",
                  "end": quote(end.strftime("%Y-%m-%d %H:%M:%S"), safe="")}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.graph_link)


def catalog_of(config: "AgentConfig", *, graph_link: str | None = None) -> Catalog:
    """The catalog of ``config``'s sources, with its graph link (``graph_link`` when given)."""
    queries: dict[str, Query] = {}
    if config.sources.kind == "prometheus":
        queries = {q.name: Query(expr=q.expr, kind=q.kind) for q in config.sources.prometheus.queries}
    return Catalog(queries=queries, graph_link=graph_link if graph_link is not None else link_template(config),
                   slos=frozenset(slo.name for slo in config.detectors.slos),
                   topology=Topology(config.incidents.topology))


def link_template(config: "AgentConfig") -> str | None:
    """The graph link template of signals (``notify.graph_link`` with ``{url}`` filled in):
    ``notify.prometheus_url``, else the Prometheus source when it is the one in use, else none."""
    base = config.notify.prometheus_url
    if not base and config.sources.kind == "prometheus":
        base = config.sources.prometheus.url
    if not base:
        return None
    return config.notify.graph_link.replace("{url}", base.rstrip("/"))


def template_of(link: str | None) -> str | None:
    """A graph link template from a template or a bare Prometheus URL (its graph page)."""
    if not link:
        return None
    return link if "{expr}" in link else GRAPH_LINK.replace("{url}", link.rstrip("/"))


def quoted(value: str) -> str:
    """``value`` as a PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(metric: str, labels: Mapping[str, str]) -> str:
    """``metric{a="x",b="y"}`` with label values quoted as PromQL strings."""
    inner = ",".join(f"{k}={quoted(str(v))}" for k, v in sorted(labels.items())
                     if k != "__name__" and _LABEL_NAME.match(k))
    return f"{metric}{{{inner}}}" if inner else metric


def narrowed(expr: str, labels: Mapping[str, str]) -> str:
    """``expr`` restricted to the one series carrying ``labels``: ``(expr) and on(a, b)`` a
    one-sample vector with those labels, built from ``vector(1)`` with ``label_replace``
    (whose replacement expands ``$``: a literal one is written ``$$``)."""
    names = sorted(k for k in labels if k != "__name__" and _LABEL_NAME.match(k))
    if not names:
        return expr
    vector = "vector(1)"
    for name in names:
        vector = f'label_replace({vector}, "{name}", {quoted(str(labels[name]).replace("$", "$$"))}, "", "")'
    return f"({expr.strip()}) and on({', '.join(names)}) {vector}"


def scraped(metric: str, labels: Mapping[str, str], kind: str) -> str:
    """The PromQL of a series as the scrape source derives it from what it read."""
    if kind == "rate":
        return f"rate({selector(metric, labels)}[{RATE_WINDOW}])"
    if kind == "quantile" and _is_number(labels.get("quantile", "")):
        rest = {k: v for k, v in labels.items() if k != "quantile"}
        q = float(labels["quantile"])
        return f"histogram_quantile({q:g}, rate({selector(metric + '_bucket', rest)}[{RATE_WINDOW}]))"
    if kind == "bucket":
        return f"increase({selector(metric, labels)}[{RATE_WINDOW}])"
    return selector(metric, labels)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _selected_metric(expr: str) -> str | None:
    """The metric name of a plain selector with an exact name (``up{job="x"}``), else None."""
    matchers = remote_read.selector(expr.strip())
    names = [m.value for m in matchers or () if m.name == "__name__" and m.type is remote_read.MatchType.EQ]
    return names[0] if names else None
