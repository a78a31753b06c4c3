"""The per-series gauges (aiops_anomaly_score, aiops_expected_value/lower/upper) the detect stage
publishes at /metrics: values agree with the hits, the cap keeps the most anomalous, and no
label can break the exposition."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.detection.gauges import ScoreGauges, SeriesScore
from agent.flow.samples import SeriesInfo
from tests.detection.conftest import T0, cycle_at, detect, info, samples, seasonal_values

DAY = 1440
NAMES = ("aiops_anomaly_score", "aiops_expected_value", "aiops_expected_lower", "aiops_expected_upper")


def exposed(ctx) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the four gauges, parsed back from the exposition text."""
    text = generate_latest(ctx.metrics.registry).decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name in NAMES}


def labels(series: SeriesInfo, detector: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**series.labels, "metric": series.metric, "detector": detector}.items()))


WEB = info("app_latency_seconds", instance="web-1", job="app")
NODE = info("node_load1", instance="web-1", job="node")


def test_seasonal_gauges_are_the_spike_hits_score_expectation_and_band(make_ctx):
    ctx = make_ctx("detectors:\n  rules:\n    - kind: seasonal\n      params: {periods: [86400], threshold: 4.0}\n")
    web, node = seasonal_values(2 * DAY, seed=1), seasonal_values(2 * DAY, seed=2)
    web[-1] += 40

    [hit] = detect(ctx, cycle_at(T0, samples([(WEB, web), (NODE, node)])))

    got = exposed(ctx)
    mine = labels(WEB, "seasonal")
    assert got[("aiops_anomaly_score", mine)] == pytest.approx(hit.score / 4.0)
    assert got[("aiops_anomaly_score", mine)] > 1
    assert (got[("aiops_expected_value", mine)], got[("aiops_expected_lower", mine)],
            got[("aiops_expected_upper", mine)]) == pytest.approx((hit.expected, hit.lower, hit.upper))
    quiet = labels(NODE, "seasonal")
    assert 0 <= got[("aiops_anomaly_score", quiet)] < 1
    assert got[("aiops_expected_lower", quiet)] < got[("aiops_expected_value", quiet)] < got[("aiops_expected_upper", quiet)]
    assert len(got) == 8


def test_forecast_gauges_give_the_previous_value_and_the_largest_remembered_step(make_ctx):
    ctx = make_ctx("detectors:\n  rules:\n    - kind: forecast\n")
    web = seasonal_values(2 * DAY, seed=1)
    web[-1] += 40

    detect(ctx, cycle_at(T0, samples([(WEB, web)])))

    got = exposed(ctx)
    mine = labels(WEB, "forecast")
    # log(chance) / log(alarm chance): the jump is rarer than any point before it, but two days of
    # points cannot show a chance below one in 2,880, about the lone series' alarm chance yet
    assert 0.9 < got[("aiops_anomaly_score", mine)] < 1.0
    assert got[("aiops_expected_value", mine)] == pytest.approx(web[-2])
    # 2,880 points seen: the comparison window is 400 steps (0.15 x 2,880 is under 800)
    step = np.abs(np.diff(web[:-1]))[-400:].max()
    assert got[("aiops_expected_lower", mine)] == pytest.approx(web[-2] - step)
    assert got[("aiops_expected_upper", mine)] == pytest.approx(web[-2] + step)


def test_the_cap_keeps_the_most_anomalous_series_and_counts_the_rest(make_ctx, caplog):
    ctx = make_ctx("detectors:\n  rules:\n    - kind: seasonal\n      params: {periods: [86400]}\n"
                   "  gauges:\n    max_series: 1\n")
    web, node = seasonal_values(2 * DAY, seed=1), seasonal_values(2 * DAY, seed=2)
    node[-1] += 40

    with caplog.at_level(logging.INFO, logger="agent.detection.engine"):
        detect(ctx, cycle_at(T0, samples([(WEB, web), (NODE, node)])))

    assert {key[1] for key in exposed(ctx)} == {labels(NODE, "seasonal")}
    assert ctx.metrics.registry.get_sample_value("aiops_score_series_dropped_total") == 1
    assert [r.getMessage() for r in caplog.records if "gauges_capped" in r.getMessage()] == [
        "event=detect.gauges_capped scored=2 dropped=1 max_series=1"]


def test_hostile_labels_are_renamed_cut_and_escaped_and_never_repeat_a_sample():
    gauges = ScoreGauges()
    long = "x" * 2000
    scores = [
        SeriesScore(series_id="a", detector="forecast", metric="m", score=2.0, expected=1.0,
                    labels={"metric": "own", "bad-name": 'a"b\nc\\', "__meta": "v", "9lives": long, "-": "gone",
                            "odd": "\udcff"}),
        SeriesScore(series_id="b", detector="forecast", metric="m", score=1.5, labels={"bad_name": "same"}),
        SeriesScore(series_id="c", detector="forecast", metric="m", score=0.5, labels={"bad-name": "same"}),
        SeriesScore(series_id="d", detector="forecast", metric="m", score=math.nan, labels={}),
    ]
    assert gauges.publish(scores, max_series=10) == 1  # c repeats b's label set once renamed
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(gauges)
    text = generate_latest(registry).decode("utf-8")
    samples_ = [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]
    assert samples_ == [
        ("aiops_anomaly_score", {"_9lives": "x" * 1024 + "…[truncated: 2000 characters]", "bad_name": 'a"b\nc\\',
                                 "detector": "forecast", "exported_metric": "own", "meta": "v", "metric": "m",
                                 "odd": "?"}, 2.0),
        ("aiops_anomaly_score", {"bad_name": "same", "detector": "forecast", "metric": "m"}, 1.5),
        ("aiops_expected_value", {"_9lives": "x" * 1024 + "…[truncated: 2000 characters]", "bad_name": 'a"b\nc\\',
                                  "detector": "forecast", "exported_metric": "own", "meta": "v", "metric": "m",
                                  "odd": "?"}, 1.0),
    ]
