"""Exposition text → gauges, rates, quantiles and bucket increases (pure functions, no I/O)."""

from __future__ import annotations

import math

import pytest

from agent.sources.exposition import derive, parse_exposition, quantile_from_buckets
from agent.store.samples import CounterReading

INF = math.inf


@pytest.mark.parametrize("q, expected", [
    (0.5, 0.1),                    # rank 30 of 60: the top of the first bucket
    (0.25, 0.05),                  # rank 15: halfway into (0, 0.1]
    (0.95, 0.1 + 0.4 * 27 / 30),   # rank 57: inside (0.1, 0.5]
])
def test_quantiles_interpolate_inside_the_bucket_like_histogram_quantile(q, expected):
    assert quantile_from_buckets(q, [0.1, 0.5, INF], [30, 60, 60]) == pytest.approx(expected)


def test_quantile_edge_cases():
    assert quantile_from_buckets(0.99, [0.1, 0.5, INF], [10, 20, 100]) == 0.5  # in +Inf: highest finite bound
    assert math.isnan(quantile_from_buckets(0.5, [0.1, INF], [0, 0]))  # no observations: no quantile
    assert math.isnan(quantile_from_buckets(0.5, [0.1, 0.5], [1, 2]))  # no +Inf bucket: not a histogram
    assert quantile_from_buckets(0.5, [-1.0, INF], [4, 4]) == -1.0  # a first bound <= 0 is returned as is


def test_parse_splits_gauges_counters_histograms_and_skips_created():
    text = (
        "# TYPE up gauge\nup 1\n"
        "# TYPE jobs_total counter\njobs_total{q=\"a\"} 5\njobs_created{q=\"a\"} 1.7e9\n"
        "# TYPE lat histogram\nlat_bucket{le=\"1\"} 2\nlat_bucket{le=\"+Inf\"} 3\nlat_count 3\nlat_sum 2.5\n"
        "# TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.2\nrpc_count 7\nrpc_sum 1\n"
    )
    parsed = parse_exposition(text, extra_labels={"job": "app"})
    assert [(i.series_id, v) for i, v in parsed.gauges] == [('up{job="app"}', 1.0), ('rpc{job="app",quantile="0.5"}', 0.2)]
    assert [(i.series_id, v) for i, v in parsed.counters] == [
        ('jobs_total{job="app",q="a"}', 5.0), ('lat_count{job="app"}', 3.0), ('rpc_count{job="app"}', 7.0)]
    assert [(h.hid, h.buckets) for h in parsed.histograms] == [('lat{job="app"}', ((1.0, "1", 2.0), (INF, "+Inf", 3.0)))]


def test_parse_refuses_an_html_page():
    with pytest.raises(ValueError):
        parse_exposition("<html><body>Sign in</body></html>", extra_labels={})


def test_derive_rates_need_a_previous_reading_and_handle_resets():
    parsed = parse_exposition("# TYPE c_total counter\nc_total 10\n", extra_labels={})
    first = derive(parsed, 100.0, {}, [0.5])
    assert first.values == [] and first.readings == [CounterReading(key="c_total", ts=100.0, value=10.0)]
    assert derive(parsed, 110.0, {"c_total": CounterReading(key="c_total", ts=100.0, value=4.0)}, [0.5]).values == [
        ("c_total", 0.6)]
    reset = derive(parsed, 110.0, {"c_total": CounterReading(key="c_total", ts=100.0, value=50.0)}, [0.5])
    assert reset.values == [("c_total", 1.0)] and reset.resets == 1
