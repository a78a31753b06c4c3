"""Graph links use the real PromQL of each signal: against a real Prometheus scraping a real
application, the PromQL of every series the Prometheus source read gives exactly that series, and
the link opens that PromQL. A query's name is no metric: ``latency_p95{…}`` alone gives nothing."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests

from agent.flow.incidents import Signal
from agent.incidents.catalog import catalog_of
from agent.metrics import Metrics
from agent.sources.health import TargetHealth
from agent.sources.prometheus import PrometheusSource
from tests.conftest import wait_until
from tests.fixtures.prometheus import needs_prometheus

pytestmark = [needs_prometheus, pytest.mark.slow]

QUERIES = """
sources:
  kind: prometheus
  prometheus:
    url: {url}
    step: 1s
    queries:
      - name: latency_p95
        expr: histogram_quantile(0.95, sum by (job, model, le) (rate(model_inference_latency_seconds_bucket[30s])))
        kind: quantile
      - name: request_rate
        expr: sum by (job, model) (rate(model_requests_total[30s]))
        kind: rate
      - name: odd
        expr: 'label_replace(model_requests_total, "odd", "a\\"b$$1 {{c}}", "", "")'
      - name: temperature
        expr: exporter_temperature_celsius
"""


def instant(prometheus, expr: str) -> list[dict]:
    answer = requests.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    return answer.json()["data"]["result"]


def signal_of(info) -> Signal:
    now = datetime.now(timezone.utc)
    return Signal(series_id=info.series_id, detector="seasonal", metric=info.metric, labels=dict(info.labels),
                  first_at=now, last_at=now)


def test_every_series_promql_gives_that_series_and_the_link_opens_it(prometheus, make_config):
    config = make_config(QUERIES.format(url=prometheus.url))
    metrics = Metrics()
    source = PrometheusSource(config.sources.prometheus, metrics=metrics, health=TargetHealth(metrics),
                              series_limit=1000)
    catalog = catalog_of(config)

    def read():
        end = pd.Timestamp.now(tz="UTC")
        samples = source.fetch(end - pd.Timedelta(seconds=20), end)
        return samples if len({i.series_id for i in samples.series.values()}) >= 4 else None

    samples = wait_until(read, timeout_s=60, message="every query's series")
    by_metric = {}
    for info in samples.series.values():
        by_metric.setdefault(info.metric, []).append(info)
    # label_replace keeps the metric's name: that series is model_requests_total with a label it has not got
    assert sorted(by_metric) == ["exporter_temperature_celsius", "latency_p95", "model_requests_total", "request_rate"]
    [odd] = by_metric["model_requests_total"]
    assert odd.labels["odd"] == 'a"b$1 {c}'  # a label value PromQL must quote and label_replace must not expand
    for infos in by_metric.values():
        for info in infos:
            expr = catalog.promql(signal_of(info))
            assert expr is not None
            [found] = instant(prometheus, expr)
            assert {k: v for k, v in found["metric"].items() if k != "__name__"} == info.labels, expr
            link = catalog.graph_url(signal_of(info))
            assert parse_qs(urlsplit(link).query)["g0.expr"] == [expr]
    # what the links used before: the query's name as a metric, which Prometheus has not got
    assert instant(prometheus, "latency_p95") == []


def test_a_scraped_series_promql_takes_rates_and_quantiles_as_the_scrape_source_did(prometheus):
    from agent.incidents.catalog import Catalog

    def series(expr: str) -> dict:
        found = wait_until(lambda: instant(prometheus, expr), timeout_s=30, message=expr)
        return found[0]["metric"]

    counter = series("model_requests_total")
    bucket = series('model_inference_latency_seconds_bucket{le="0.05"}')
    where = {k: v for k, v in bucket.items() if k not in ("__name__", "le")}
    signals = {
        "rate": Signal(series_id="requests", detector="seasonal", metric="model_requests_total",
                       labels={k: v for k, v in counter.items() if k != "__name__"},
                       first_at=datetime.now(timezone.utc), last_at=datetime.now(timezone.utc)),
        "quantile": Signal(series_id="p95", detector="seasonal", metric="model_inference_latency_seconds",
                           labels={**where, "quantile": "0.95"}, first_at=datetime.now(timezone.utc),
                           last_at=datetime.now(timezone.utc)),
    }
    catalog = Catalog(kinds={"requests": "rate", "p95": "quantile"})
    assert catalog.promql(signals["quantile"]).startswith("histogram_quantile(0.95, rate(")
    for kind, sig in signals.items():
        [found] = wait_until(lambda: instant(prometheus, catalog.promql(sig)), timeout_s=30, message=kind)
        assert 0 < float(found["value"][1]) < (10_000 if kind == "rate" else 1), kind
    assert catalog.unit(signals["rate"]).name == "/s" and catalog.unit(signals["quantile"]).name == "s"


def test_the_page_plots_the_hour_before_from_prometheus_when_the_store_kept_nothing(prometheus, make_config, store):
    """The Prometheus source keeps no samples: the plot asks Prometheus for the signal's PromQL."""
    from agent.flow.incidents import Severity
    from agent.incidents.history import history_of
    from agent.incidents.pages import render_html
    from agent.incidents.summary import build
    from detectors.base import Direction, Hit

    config = make_config(QUERIES.format(url=prometheus.url))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    wait_until(lambda: len((instant(prometheus, "exporter_temperature_celsius[1m]") or [{"values": []}])[0]["values"])
               >= 5, timeout_s=60, message="some history in Prometheus")
    incident = store.open_incident(severity=Severity.WARNING, title="t", labels={"job": "app"}, started_at=now,
                                   now=now)
    store.record_hits([Hit(series_id='exporter_temperature_celsius{job="app"}', detector="seasonal", ts=now,
                           value=41.0, score=9.0, direction=Direction.UP, expected=40.0, lower=39.0, upper=40.5,
                           metric="exporter_temperature_celsius", labels={"job": "app"})],
                      incident_id=incident.id, now=now)
    page = render_html(build(store, incident.id, catalog=catalog_of(config)), store, history=history_of(config, store))
    [line] = re.findall(r'<path class="line" d="([^"]+)" fill="none" stroke="#1f5fa8"', page)
    assert line.count("L") >= 3  # points from Prometheus before the anomalous one, not the hit alone
