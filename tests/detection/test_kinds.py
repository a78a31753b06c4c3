"""Each kind of detector through the stage: isolation forest per entity, SLOs as N of M."""

from __future__ import annotations

import numpy as np

from agent.flow.samples import SeriesInfo, series_id
from tests.detection.conftest import T0, cycle_at, detect, info, minutes, samples

IFOREST = """
detectors:
  rules:
    - kind: iforest
      entity_label: instance
      match: [{metric: "app_.*"}]
      params: {time_features: false, seed: 1}
"""


def test_an_entity_with_an_unusual_row_gives_one_hit_that_names_the_feature(make_ctx):
    ctx = make_ctx(IFOREST)
    requests = info("app_requests_per_second", instance="web-1", job="app")
    cpu = info("app_cpu_ratio", instance="web-1", job="app")
    memory = info("app_memory_bytes", instance="web-1", job="app")
    other = info("node_load1", instance="web-1", job="node")  # not matched: not a feature
    rng = np.random.default_rng(0)
    load = rng.uniform(10, 90, 2000)
    r = np.append(load, 50.0)
    c = np.append(load / 100 + rng.normal(0, 0.02, 2000), 0.5)
    m = np.append(rng.normal(1e9, 1e7, 2000), 3e9)  # memory far beyond anything seen
    hits = detect(ctx, cycle_at(T0, samples([(requests, r), (cpu, c), (memory, m), (other, np.ones(2001))])))

    assert [(h.series_id, h.entity, dict(h.labels), h.metric, h.detector, h.ts) for h in hits] == [
        ('iforest{instance="web-1"}', "web-1", {"instance": "web-1"}, "iforest", "iforest", T0)]
    assert 'most unusual app_memory_bytes{job="app"} 3e+09' in hits[0].explanation
    (state,) = ctx.store.load_fitted_states()
    assert (state.subject, sorted(state.params["columns"])) == (
        "web-1", sorted([requests.series_id, cpu.series_id, memory.series_id]))


SLO = """
detectors:
  rules: []
  slos:
    - name: inference_latency_p95
      match: [{metric: inference_latency_seconds, labels: {quantile: "0.95"}, kinds: [quantile]}]
      objective: 0.5
      points: 3
      window: 5
"""


def p95(model: str) -> SeriesInfo:
    labels = {"model": model, "quantile": "0.95"}
    return SeriesInfo(series_id=series_id("inference_latency_seconds", labels), metric="inference_latency_seconds",
                      labels=labels, kind="quantile")


def test_an_slo_breached_for_3_of_5_points_hits_once_its_past_counts(make_ctx):
    ctx = make_ctx(SLO)
    fraud, churn = p95("fraud"), p95("churn")
    latency = [0.2, 0.6, 0.3, 0.7, 0.4]
    first = detect(ctx, cycle_at(T0, samples([(fraud, latency), (churn, [0.1] * 5)])))
    assert first == []  # 2 of the last 5 above the objective

    second = detect(ctx, cycle_at(T0 + minutes(1), samples(
        [(fraud, latency + [0.9]), (churn, [0.1] * 6)], end=T0 + minutes(1))))

    assert [(h.series_id, h.detector, h.ts, h.value, h.explanation) for h in second] == [
        (fraud.series_id, "inference_latency_p95", T0 + minutes(1), 0.9,
         "value 0.9 above the upper bound 0.5 in 3 of the last 5 points")]
    assert ctx.metrics.registry.get_sample_value("aiops_hits_total", {"detector": "inference_latency_p95"}) == 1


def test_a_fit_the_detector_refuses_is_counted_and_retried_later_while_other_detectors_fit(make_ctx):
    ctx = make_ctx("""
detectors:
  refit: {min_history: 0s, min_points: 30}
  rules:
    - kind: iforest
      params: {time_features: false}
    - kind: seasonal
""")
    a, b = info("app_a", instance="web-1"), info("app_b", instance="web-1")
    rng = np.random.default_rng(2)
    frame = samples([(a, rng.normal(10, 1, 41)), (b, rng.normal(5, 1, 41))])  # 40 rows: the forest wants 50

    detect(ctx, cycle_at(T0, frame))
    detect(ctx, cycle_at(T0 + minutes(1), samples(
        [(a, rng.normal(10, 1, 42)), (b, rng.normal(5, 1, 42))], end=T0 + minutes(1))))

    registry = ctx.metrics.registry
    assert registry.get_sample_value("aiops_detector_failures_total", {"detector": "iforest", "phase": "fit"}) == 1
    assert sorted({s.detector for s in ctx.store.load_fitted_states()}) == ["seasonal"]
