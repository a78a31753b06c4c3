"""The Prometheus source against a real Prometheus, and against servers that misbehave on purpose."""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np
import pandas as pd
import pytest

from agent.config.sources import PrometheusSourceConfig, QueryConfig
from agent.metrics import Metrics
from agent.sources.health import TargetHealth
from agent.sources.prometheus import PrometheusSource
from tests.conftest import wait_until
from tests.fixtures.prometheus import Family, needs_prometheus, openmetrics
from tests.sources.conftest import T0, at, collect, history

MODEL_QUERIES = """\
      - name: model_latency_p95
        expr: histogram_quantile(0.95, sum by (model, le) (rate(model_inference_latency_seconds_bucket[5s])))
        kind: quantile
      - name: model_error_rate
        expr: sum by (model) (rate(model_errors_total[10s])) / sum by (model) (rate(model_requests_total[10s]))
      - name: model_prediction_distribution
        expr: sum by (model, le) (increase(model_prediction_score_bucket[5s]))
        kind: bucket
      - name: temperature
        expr: exporter_temperature_celsius
"""


def prom_yaml(url: str, queries: str = MODEL_QUERIES, **settings: object) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in settings.items())
    return (f"http:\n  enabled: false\nsources:\n  kind: prometheus\n  window: 30s\n"
            f"  prometheus:\n    url: {url}\n    step: 1s\n{extra}    queries:\n{queries}")


def matrix(*series: tuple[dict, list], warnings: list[str] | None = None) -> str:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": values} for labels, values in series]}}
    if warnings:
        body["warnings"] = warnings
    return json.dumps(body)


def now_cycle():
    from agent.clock import utcnow

    return utcnow()


def metric(ctx, name: str, **labels: str):
    return ctx.metrics.registry.get_sample_value(name, labels)


# -- a real Prometheus scraping a real exporter --------------------------------------------------

@needs_prometheus
def test_model_metrics_from_a_real_prometheus(make_ctx, prometheus):
    ctx = make_ctx(prom_yaml(prometheus.url))

    def ready():
        s = collect(ctx, now_cycle())
        return s if s.values.get('model_latency_p95{model="fraud"}', pd.Series(dtype=float)).notna().any() else None

    samples = wait_until(ready, 20, 0.5, "a latency P95 from Prometheus")
    values = samples.values
    assert values.index.name == "ts" and str(values.index.tz) == "UTC"
    assert set(np.diff(values.index.asi8)) == {1_000_000_000}  # the 1 s step grid
    p95 = values['model_latency_p95{model="fraud"}'].dropna()
    assert ((p95 > 0.025) & (p95 <= 0.05)).all()  # latencies are 30-45 ms: the (25 ms, 50 ms] bucket
    temperature = values[f'exporter_temperature_celsius{{instance="{prometheus_target(prometheus)}",job="app"}}'].dropna()
    assert ((temperature >= 39.5) & (temperature <= 40.5)).all() and len(temperature) > 0
    assert samples.series['model_latency_p95{model="fraud"}'].kind == "quantile"
    assert samples.series['model_latency_p95{model="fraud"}'].labels == {"model": "fraud"}
    buckets = samples.buckets['model_prediction_distribution{model="fraud"}']
    assert list(buckets.columns) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, math.inf]
    last = buckets.dropna().iloc[-1]
    assert last.is_monotonic_increasing and last[math.inf] > 0
    assert not samples.gaps
    assert metric(ctx, "aiops_source_up", source="prometheus", target="model_latency_p95") == 1.0


def prometheus_target(server) -> str:
    answer = json.loads(__import__("requests").get(f"{server.url}/api/v1/targets", timeout=5).text)
    return answer["data"]["activeTargets"][0]["labels"]["instance"]


@needs_prometheus
def test_a_server_stopped_mid_run_leaves_gaps_logged_once(make_ctx, prometheus_factory, caplog):
    ts = np.arange(int(time.time()) - 600, int(time.time()) - 30, 10)
    server = prometheus_factory(backfill_text=openmetrics([Family(name="temperature", series=[({}, ts, ts * 0 + 40)])]))
    ctx = make_ctx(prom_yaml(server.url, "      - name: temperature\n        expr: temperature\n"))
    before = collect(ctx, now_cycle())
    assert len(before) == 1 and not before.gaps
    server.stop()
    caplog.set_level(logging.INFO, logger="agent.sources")
    after = [collect(ctx, now_cycle()), collect(ctx, now_cycle())]
    for samples in after:
        assert samples.gaps == frozenset(before.values.columns)
        assert samples.values.isna().all().all()
    downs = [r.getMessage() for r in caplog.records if "source.down" in r.getMessage()]
    assert downs == [f'event=source.down source=prometheus target=temperature url={server.url} kind=connection '
                     'error="connection refused"']
    assert metric(ctx, "aiops_source_errors_total", source="prometheus", kind="connection") == 2.0


# -- backfilled history --------------------------------------------------------------------------

@needs_prometheus
@pytest.mark.slow
def test_history_over_backfilled_days_is_exact_and_chunked(make_ctx, prometheus_factory):
    end = math.floor(time.time() / 60) * 60 - 3600
    ts = np.arange(end - 2 * 86400, end + 1, 60, dtype="int64")
    family = Family(name="synthetic_load", series=[({"host": f"h{i}"}, ts, i * 1000 + (ts - ts[0]) / 60) for i in range(3)])
    server = prometheus_factory(backfill_text=openmetrics([family]))
    queries = "      - name: load\n        expr: synthetic_load\n        step: 60s\n"
    ctx = make_ctx(prom_yaml(server.url, queries, max_points_per_request=500))
    start, stop = pd.Timestamp(ts[0], unit="s", tz="UTC"), pd.Timestamp(ts[-1], unit="s", tz="UTC")

    got = history(ctx, start, stop)
    assert got.values.shape == (len(ts), 3)
    assert got.values.index[0] == start and got.values.index[-1] == stop
    for i in range(3):
        column = got.values[f'synthetic_load{{host="h{i}"}}']
        assert column.tolist() == (i * 1000 + np.arange(len(ts))).astype(float).tolist()

    # query_range (the history above came by remote read) over the same range in one request gives
    # the same frame; the first fetch of a query probes the series count with a short chunk, later
    # ones size chunks from it
    metrics = Metrics()
    config = PrometheusSourceConfig(url=server.url, remote_read="off",
                                    queries=[QueryConfig(name="load", expr="synthetic_load", step=60)])
    whole = PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=10)
    pd.testing.assert_frame_equal(whole.fetch(start, stop).values, got.values)
    assert whole.stats.requests == 2
    pd.testing.assert_frame_equal(whole.fetch(start, stop).values, got.values)
    assert whole.stats.requests == 1
    chunked = PrometheusSource(config.model_copy(update={"max_points_per_request": 500}), metrics=metrics,
                               health=TargetHealth(metrics), series_limit=10)
    chunked.fetch(start, stop)
    chunked.fetch(start, stop)
    assert chunked.stats.requests == math.ceil(len(ts) / 500)
    assert chunked.stats.points == 3 * len(ts)

    hourly = history(ctx, start, stop, step_s=3600)
    assert hourly.values.shape == (49, 3)


def test_one_bad_query_is_a_gap_and_the_healthy_series_are_still_fitted(make_ctx, prometheus_factory, caplog):
    from agent.pipeline import Pipeline

    end = math.floor(time.time() / 60) * 60 - 600
    ts = np.arange(end - 86400, end + 1, 60, dtype="int64")
    family = Family(name="synthetic_load", series=[({"host": f"h{i}"}, ts, 50 + i + np.sin(ts / 3600.0)) for i in range(3)])
    server = prometheus_factory(backfill_text=openmetrics([family]))
    queries = ("      - name: load\n        expr: synthetic_load\n        step: 60s\n"
               "      - name: broken\n        expr: 'synthetic_load{'\n        step: 60s\n")
    ctx = make_ctx(prom_yaml(server.url, queries).replace("window: 30s", "window: 10m"))
    now = pd.Timestamp(end, unit="s", tz="UTC").to_pydatetime()
    pipeline = Pipeline(ctx)
    with caplog.at_level(logging.WARNING, logger="agent.sources"):
        cycle = pipeline.run_cycle(now=now)
        pipeline.refit(now=now)  # the daemon's refit job, after the cycle
    pipeline.close()
    assert cycle.failed_stages == []
    fitted = sorted(c for state in ctx.store.load_fitted_states() for c in state.params["columns"])
    assert fitted == [f'synthetic_load{{host="h{i}"}}' for i in range(3)]
    assert any("event=sources.history_partial failed=broken queries=2" in r.getMessage() for r in caplog.records)


# -- servers that misbehave ------------------------------------------------------------------------

OK = matrix(({"__name__": "up", "job": "a"}, [[T0.timestamp(), "1"]]))
ONE_QUERY = "      - name: up\n        expr: up\n"


def failing(make_ctx, server, **settings):
    ctx = make_ctx(prom_yaml(server.url, ONE_QUERY, retries=2, backoff="0s", timeout="1s", **settings))
    server.respond(OK, content_type="application/json")
    first = collect(ctx, at(0))
    assert list(first.values.columns) == ['up{job="a"}']
    return ctx


@pytest.mark.parametrize("behave, kind, message, attempts", [
    (lambda s: s.respond("boom", status=500), "http_status", 'error="HTTP 500"', 3),
    (lambda s: s.respond("slow down", status=429), "http_status", 'error="HTTP 429"', 3),
    (lambda s: s.respond("<!doctype html><html>proxy login</html>", content_type="text/html"), "html",
     'error="an HTML page instead of JSON"', 1),
    (lambda s: s.respond('{"status": "succ', content_type="application/json"), "invalid_json",
     'error="invalid JSON (HTTP 200)"', 1),
    (lambda s: s.respond('{"status":"error","errorType":"bad_data","error":"parse error at char 3"}', status=400,
                         content_type="application/json"), "api_error", 'error="HTTP 400: parse error at char 3"', 1),
    (lambda s: s.hang(), "timeout", 'error="no answer within 1s"', 1),
])
def test_faults_become_gaps_with_retries_only_where_they_help(make_ctx, misbehaving_server, caplog,
                                                             behave, kind, message, attempts):
    ctx = failing(make_ctx, misbehaving_server)
    behave(misbehaving_server)
    caplog.set_level(logging.INFO, logger="agent.sources")
    before = misbehaving_server.requests
    started = time.monotonic()
    samples = collect(ctx, at(1))
    assert time.monotonic() - started < 10  # bounded by the timeouts; the counts below say how
    assert misbehaving_server.requests - before == attempts
    assert samples.gaps == {'up{job="a"}'}
    assert samples.values['up{job="a"}'].isna().all()
    collect(ctx, at(2))
    downs = [r.getMessage() for r in caplog.records if "source.down" in r.getMessage()]
    assert downs == [f"event=source.down source=prometheus target=up url={misbehaving_server.url} kind={kind} {message}"]
    assert metric(ctx, "aiops_source_errors_total", source="prometheus", kind=kind) == 2.0


def test_non_finite_values_warnings_and_the_series_limit(make_ctx, misbehaving_server, caplog):
    ctx = make_ctx(prom_yaml(misbehaving_server.url, ONE_QUERY).replace("  window: 30s\n", "  window: 30s\n  series_limit: 2\n"))
    t = T0.timestamp()
    body = matrix(({"__name__": "up", "i": "0"}, [[t - 2, "NaN"], [t - 1, "+Inf"], [t, "1"]]),
                  ({"__name__": "up", "i": "1"}, [[t, "2"]]), ({"__name__": "up", "i": "2"}, [[t, "3"]]),
                  warnings=["partial response: store 2 unavailable"])
    misbehaving_server.respond(body, content_type="application/json")
    caplog.set_level(logging.WARNING, logger="agent.sources")
    samples = collect(ctx, at(0))
    collect(ctx, at(0))
    assert list(samples.values.columns) == ['up{i="0"}', 'up{i="1"}']
    assert samples.values['up{i="0"}'].iloc[-3:-1].isna().all()
    assert samples.values['up{i="0"}'].iloc[-1] == 1.0
    assert metric(ctx, "aiops_samples_dropped_total", reason="non_finite") == 4.0
    assert metric(ctx, "aiops_samples_dropped_total", reason="series_limit") == 2.0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        'event=source.warnings source=prometheus target=up message="partial response: store 2 unavailable" query=up',
        'event=source.truncated source=prometheus target=up message="more than 2 series; kept the first 2" query=up',
    ]


@pytest.mark.parametrize("settings, header", [
    ({"bearer_token": "s3cret-token"}, "Bearer s3cret-token"),
    ({"username": "ops", "password": "pa55word"}, "Basic b3BzOnBhNTV3b3Jk"),
])
def test_credentials_and_form_encoded_query(make_ctx, misbehaving_server, settings, header):
    ctx = make_ctx(prom_yaml(misbehaving_server.url, ONE_QUERY, **settings))
    misbehaving_server.respond(OK, content_type="application/json")
    collect(ctx, at(0))
    assert misbehaving_server.last_headers["Authorization"] == header
    assert misbehaving_server.last_headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_tls_settings_reach_the_session(tmp_path):
    metrics = Metrics()
    ca = tmp_path / "ca.pem"
    with_ca = PrometheusSourceConfig(url="https://prom.example:9090", ca_file=ca)
    assert PrometheusSource(with_ca, metrics=metrics, health=TargetHealth(metrics), series_limit=1).session.verify == str(ca)
    insecure = PrometheusSourceConfig(url="https://prom.example:9090", verify_tls=False)
    assert PrometheusSource(insecure, metrics=metrics, health=TargetHealth(metrics), series_limit=1).session.verify is False


@needs_prometheus
def test_an_answer_of_many_series_is_read_as_it_arrives_within_the_series_limit(prometheus_factory):
    import tracemalloc

    end = math.floor(time.time() / 60) * 60 - 3600
    ts = np.arange(end - 3600, end + 1, 60, dtype="int64")
    family = Family(name="many", series=[({"host": f"h{i:05d}", "job": "fleet"}, ts, np.full(len(ts), float(i)))
                                        for i in range(6000)])
    server = prometheus_factory(backfill_text=openmetrics([family]))
    metrics = Metrics()
    # "many * 1" is no plain selector: query_range, whose answer holds every one of the 6,000 series
    config = PrometheusSourceConfig(url=server.url, queries=[QueryConfig(name="many", expr="many * 1", step=60)])
    source = PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=100)
    start, stop = pd.Timestamp(ts[0], unit="s", tz="UTC"), pd.Timestamp(ts[-1], unit="s", tz="UTC")

    tracemalloc.start()
    try:
        got = source.fetch(start, stop)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert source.stats.read_queries == 0 and source.stats.bytes > 6 << 20
    assert got.values.shape == (len(ts), 100)
    assert got.values.iloc[-1].tolist() == [float(i) for i in range(100)]  # the first 100, as Prometheus sorts them
    assert metrics.registry.get_sample_value("aiops_samples_dropped_total", {"reason": "series_limit"}) == \
        (6000 - 100) * source.stats.requests
    # The whole answer once in memory (bytes, then text, then objects) is more than its size; read
    # as it arrives, a piece of it (1 MiB) and the 100 series kept.
    assert peak < source.stats.bytes / 2, (peak, source.stats.bytes)


@needs_prometheus
def test_a_remote_read_answer_past_its_bound_sends_the_query_to_query_range(prometheus_factory, caplog):
    end = math.floor(time.time() / 60) * 60 - 3600
    ts = np.arange(end - 3600, end + 1, 60, dtype="int64")
    family = Family(name="wide", series=[({"host": f"h{i:04d}"}, ts, np.full(len(ts), float(i))) for i in range(2000)])
    server = prometheus_factory(backfill_text=openmetrics([family]))
    metrics = Metrics()
    config = PrometheusSourceConfig(url=server.url, queries=[QueryConfig(name="wide", expr="wide", step=60)])
    source = PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=50)
    source.read_max_bytes = 64 << 10  # the 2,000 series' answer is larger: as 500,000 would be past the default
    start, stop = pd.Timestamp(ts[0], unit="s", tz="UTC"), pd.Timestamp(ts[-1], unit="s", tz="UTC")

    first = source.fetch(start, stop)
    again = source.fetch(start, stop)

    assert first.values.shape == again.values.shape == (len(ts), 50)
    assert first.values.iloc[-1].tolist() == [float(i) for i in range(50)]
    assert source.stats.read_queries == 0  # the second fetch went straight to query_range
    lines = [r.getMessage() for r in caplog.records if "prometheus.remote_read_too_large" in r.getMessage()]
    assert len(lines) == 1 and "instead=query_range" in lines[0]
