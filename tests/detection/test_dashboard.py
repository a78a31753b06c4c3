"""The Grafana dashboard shipped in config/ against a real Prometheus scraping the agent (as the
docs say: ``honor_labels: true``) and a real application: every panel and annotation query parses
and returns data for the job and instance picked, every variable lists values, and the figures are
the ones the agent computed."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from agent.clock import ManualClock
from agent.daemon import HttpServer
from agent.flow.samples import Samples, SeriesInfo, series_id
from tests.conftest import free_port, wait_until
from tests.detection.conftest import T0, cycle_at, detect, minutes, samples, seasonal_values
from tests.detection.test_drift import NORMAL, SHIFTED, live_buckets, record, save
from tests.fixtures.prometheus import needs_prometheus

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
TOKEN = "dashboard-test-token"
METRIC = "exporter_temperature_celsius"  # a gauge the test application exports
# What Grafana puts in place of the dashboard's variables (job and instance: added in the test).
VARIABLES = {"$metric": METRIC, "$__rate_interval": "1m", "$job": "app"}


def config(port: int) -> str:
    return f"""
http:
  listen: 127.0.0.1
  port: {port}
  token: {TOKEN}
detectors:
  rules:
    - kind: forecast
  drift:
    - name: fraud
      features: [model_input_amount]
      predictions: [model_prediction_score]
      window: 30m
"""


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return ([target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
            + [annotation["expr"] for annotation in dashboard["annotations"]["list"]])


def variables() -> dict[str, str]:
    """Each query variable's ``label_values(selector, label)``, as (label, selector)."""
    found = {}
    for var in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if var["type"] == "query":
            selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"]).groups()
            found[label] = selector
    return found


def instant(prometheus, expr: str) -> dict:
    answer = requests.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    return answer.json()["data"]


def alert(status: str, starts: str, ends: str, name: str, **labels: str) -> dict:
    return {"version": "4", "status": status, "receiver": "aiops", "alerts": [
        {"status": status, "labels": {"alertname": name, "service": name, **labels}, "startsAt": starts,
         "endsAt": ends}]}


@needs_prometheus
@pytest.mark.slow
def test_every_dashboard_query_returns_the_agents_figures_from_a_real_prometheus(
        make_ctx, metrics_exporter, prometheus_factory):
    port = free_port()
    setup = make_ctx(config(port))  # stored histograms and a baseline, saved with the CLI
    record(setup.store, "model_input_amount", NORMAL, T0 - timedelta(hours=3), 120)
    record(setup.store, "model_prediction_score", NORMAL, T0 - timedelta(hours=3), 120)
    record(setup.store, "model_input_amount", SHIFTED, T0 - minutes(29), 29)
    record(setup.store, "model_prediction_score", NORMAL, T0 - minutes(29), 29)
    assert save(setup, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T11:00:00Z"
                ).exit_code == 0

    ctx = make_ctx(config(port))  # the daemon, started after the baseline was saved
    ctx.clock = ManualClock(T0)
    temperature = SeriesInfo(series_id=series_id(METRIC, {"instance": metrics_exporter.address, "job": "app"}),
                             metric=METRIC, labels={"instance": metrics_exporter.address, "job": "app"})
    values = samples([(temperature, seasonal_values(2 * 1440, seed=3, level=40.0, amplitude=0.5, noise=0.1))])
    buckets = dict([live_buckets("model_input_amount", SHIFTED, T0), live_buckets("model_prediction_score", NORMAL, T0)])
    detect(ctx, cycle_at(T0, Samples(values=values.values, series=values.series, buckets=buckets)))

    server = HttpServer(ctx, None)
    server.start()
    try:
        hook = f"http://127.0.0.1:{port}/api/v1/alerts"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # Incidents of the job picked (job is no correlation label: they stay two incidents).
        for body in (alert("firing", "2026-03-02T11:30:00Z", "0001-01-01T00:00:00Z", "Resolved", job="app"),
                     alert("resolved", "2026-03-02T11:30:00Z", "2026-03-02T11:50:00Z", "Resolved", job="app"),
                     alert("firing", "2026-03-02T11:40:00Z", "0001-01-01T00:00:00Z", "StillOpen", job="app")):
            assert requests.post(hook, json=body, headers=auth, timeout=10).status_code == 200

        prometheus = prometheus_factory([metrics_exporter.address, f"127.0.0.1:{port}"], honor_labels=True)
        picked = {**VARIABLES, "$instance": metrics_exporter.address}
        exprs = [re.sub(r"\$[a-z_]+", lambda m: picked[m.group(0)], expr) for expr in queries()]
        assert len(exprs) == 13

        def results() -> dict[str, list] | None:
            found = {expr: instant(prometheus, expr)["result"] for expr in exprs}
            return found if all(found.values()) else None

        found = wait_until(results, timeout_s=30, message="data for every dashboard query")
    finally:
        server.stop()

    def value(expr: str, **labels: str) -> float:
        [sample] = [r for r in found[expr] if labels.items() <= r["metric"].items()]
        return float(sample["value"][1])

    registry = ctx.metrics.registry
    mine = {"metric": METRIC, "detector": "forecast", "instance": metrics_exporter.address, "job": "app"}
    for name in ("aiops_anomaly_score", "aiops_expected_value", "aiops_expected_lower", "aiops_expected_upper"):
        expr = f'{name}{{metric="{METRIC}", job=~"app", instance=~"{metrics_exporter.address}"}}'
        assert value(expr, **mine) == pytest.approx(registry.get_sample_value(name, mine)), name
    where = f'job=~"app", instance=~"{metrics_exporter.address}"'
    actual = f'aiops_observed_value{{metric="{METRIC}", {where}}}'
    assert value(actual, **mine) == pytest.approx(registry.get_sample_value("aiops_observed_value", mine))
    assert value(actual, **mine) == pytest.approx(40, abs=1)  # what the application exports
    assert value("aiops_open_incidents") == 1
    # Annotations: the incidents of the job picked, on every instance's view.
    marked = 'job=~"app"'
    began = {r["metric"]["incident"]: float(r["value"][1]) / 1000
             for r in found[f"aiops_incident_started_timestamp_seconds{{{marked}}} * 1000"]}
    ended = {r["metric"]["incident"]: float(r["value"][1]) / 1000
             for r in found[f"aiops_incident_resolved_timestamp_seconds{{{marked}}} * 1000"]}
    assert began == {"1": (T0 - minutes(30)).timestamp(), "2": (T0 - minutes(20)).timestamp()}
    assert ended == {"1": T0.timestamp()}  # resolved when the agent took the resolution in (12:00)
    assert value("aiops_mttr_seconds") == 30 * 60  # from 11:30 to when the agent resolved it (12:00)
    assert value("aiops_model_drift_rate_ratio", model="fraud") == 0.5
    assert value("increase(aiops_score_series_dropped_total[1m])") == 0
    listed = {label: requests.get(f"{prometheus.url}/api/v1/label/{label}/values", timeout=10,
                                  params={"match[]": re.sub(r"\$[a-z_]+", lambda m: picked[m.group(0)], selector)}
                                  ).json()["data"] for label, selector in variables().items()}
    assert listed == {"metric": [METRIC], "job": ["app"], "instance": [metrics_exporter.address]}
