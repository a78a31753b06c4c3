"""The embedded default against real exporters started by the test on 127.0.0.1: Debian's
prometheus-node-exporter (the text format, gzip whenever asked) and a prometheus-client process
(OpenMetrics and gzip), read through the daemon's own path: one ``Pipeline`` cycle at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import requests
from prometheus_client.parser import text_string_to_metric_families

from agent.clock import ManualClock
from agent.context import Context
from agent.pipeline import Pipeline
from agent.sources.scrape import ACCEPT
from tests.conftest import wait_until
from tests.fixtures.prometheus import Exporter

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def embedded_yaml(exporter: Exporter, state_dir: object, **refit: object) -> str:
    """The default config (scrape source, default detectors), its one target the test's exporter."""
    tuning = "".join(f"    {k}: {v}\n" for k, v in refit.items())
    return (f"agent:\n  state_dir: {state_dir}\n  interval: 60s\nhttp:\n  enabled: false\n"
            f"sources:\n  scrape:\n    targets:\n      - name: node\n        url: {exporter.url}\n"
            + (f"detectors:\n  refit:\n{tuning}" if tuning else ""))


def exposed_series(exporter: Exporter) -> int:
    """The series the exporter's text holds, as the agent keeps them: every sample but a summary's
    or histogram's ``_sum`` and the ``_created`` times (node_exporter 1.5 has no histograms)."""
    text = requests.get(exporter.url, headers={"Accept-Encoding": "identity"}, timeout=10).text
    count = 0
    for family in text_string_to_metric_families(text):
        assert family.type != "histogram", "a histogram adds quantile series: count them too"
        count += sum(1 for s in family.samples if not s.name.endswith(("_sum", "_created")))
    return count


def test_the_embedded_default_reads_node_exporter_through_the_daemons_path(node_exporter, make_config, tmp_path):
    answer = requests.get(node_exporter.url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"}, stream=True,
                          timeout=10)
    assert answer.headers["Content-Encoding"] == "gzip"  # what the agent must inflate
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    answer.close()

    clock = ManualClock(T0)
    ctx = Context.create(make_config(embedded_yaml(node_exporter, tmp_path / "state")), clock=clock)
    pipeline = Pipeline(ctx)
    try:
        first = pipeline.run_cycle()
        clock.advance(60)
        second = pipeline.run_cycle()
        expected = exposed_series(node_exporter)
    finally:
        pipeline.close()
        ctx.store.close()

    assert first.ok and second.ok and not pipeline.collector.blind
    # Counters have a rate from the second scrape on: then every series has its point.
    last = second.samples.values.iloc[-1]
    assert 400 < expected < 700  # about 506 on this machine
    assert abs(int(last.notna().sum()) - expected) <= 2  # a series may come or go between two reads
    assert ctx.metrics.registry.get_sample_value("aiops_source_up", {"source": "scrape", "target": "node"}) == 1.0
    assert ctx.metrics.registry.get_sample_value("aiops_source_errors_total", {"source": "scrape",
                                                                               "kind": "parse"}) is None
    rate = second.samples.values.filter(like='node_cpu_seconds_total{cpu="0"').iloc[-1]
    assert len(rate) == 8 and (rate >= 0).all()  # per-second rates of each CPU mode's counter


def test_the_first_series_are_scored_one_cycle_after_min_history(node_exporter, make_config, tmp_path):
    """As the daemon does: a cycle, then the refit job, each interval. With min_history 10m and a
    60 s interval the detectors fit at 10 minutes and score from the next cycle (the 12th)."""
    clock = ManualClock(T0)
    ctx = Context.create(make_config(embedded_yaml(node_exporter, tmp_path / "state", min_history="10m",
                                                   min_points=5)), clock=clock)
    pipeline = Pipeline(ctx)
    scored_at = None
    try:
        for cycle in range(14):
            pipeline.run_cycle()
            pipeline.refit(now=clock())
            scored = ctx.metrics.registry.get_sample_value("aiops_series_scored_total")
            if scored and scored_at is None:
                scored_at = clock() - T0
            clock.advance(60)
    finally:
        pipeline.close()
        ctx.store.close()
    assert scored_at == timedelta(minutes=10) + timedelta(seconds=60)


def requests_served(exporter: Exporter) -> float:
    text = requests.get(exporter.url, timeout=10).text
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "model_requests_total")


def test_openmetrics_and_gzip_from_a_prometheus_client_exporter(metrics_exporter, make_config, tmp_path):
    answer = requests.get(metrics_exporter.url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"}, stream=True,
                          timeout=10)
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert answer.headers["Content-Encoding"] == "gzip"
    answer.close()

    clock = ManualClock(T0)
    ctx = Context.create(make_config(embedded_yaml(metrics_exporter, tmp_path / "state")), clock=clock)
    pipeline = Pipeline(ctx)
    try:
        pipeline.run_cycle()
        before = requests_served(metrics_exporter)
        wait_until(lambda: requests_served(metrics_exporter) > before, 10, message="more requests served")
        clock.advance(60)
        cycle = pipeline.run_cycle()
    finally:
        pipeline.close()
        ctx.store.close()
    assert cycle.ok
    instance = metrics_exporter.address
    last = cycle.samples.values.iloc[-1]
    requests_rate = last[f'model_requests_total{{instance="{instance}",job="node",model="fraud"}}']
    assert requests_rate > 0  # a counter read as a rate: OpenMetrics' _total sample
    assert last[f'model_inference_latency_seconds{{instance="{instance}",job="node",model="fraud",quantile="0.95"}}'] < 0.05
    assert not any("_created" in c for c in cycle.samples.values.columns)
