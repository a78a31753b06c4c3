"""The plots an on-call engineer reads in seconds, laid out by headless Chromium and read back
from the DOM: the hour before the start with the expected band across it, the metric's unit,
clock times at any span, an SLO's objective, a drift's threshold and its features by name, and
no text on top of another."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from agent.clock import to_epoch
from agent.flow.samples import Samples
from agent.incidents.catalog import catalog_of
from agent.incidents.correlator import Correlator
from agent.incidents.onset import with_onsets
from agent.incidents.pages import render_html
from agent.incidents.summary import build
from detectors.base import Direction, Hit

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
JOB = {"job": "demo-model", "model": "fraud"}
CONFIG = """
sources:
  kind: prometheus
  prometheus:
    url: http://127.0.0.1:9
    queries:
      - name: latency_p95
        expr: histogram_quantile(0.95, sum by (job, model, le) (rate(demo_inference_latency_seconds_bucket[30s])))
        kind: quantile
      - name: memory
        expr: process_resident_memory_bytes{job="demo-model"}
detectors:
  slos:
    - name: latency_slo
      match: [{metric: latency_p95}]
      objective: 0.3
      points: 2
      window: 3
"""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def series(metric: str) -> str:
    return f'{metric}{{job="demo-model",model="fraud"}}'


def keep_samples(store, sid: str, values, *, step_s: int = 10, end: float = 0) -> None:
    start = end - step_s * (len(values) - 1)
    store.record_samples([], [(sid, to_epoch(at(start + k * step_s)), float(v)) for k, v in enumerate(values)],
                         now=to_epoch(at(end)))


def open_with(store, config, hits, *, at_s: float) -> int:
    correlator = Correlator(store, config.incidents, interval_s=10)
    return correlator.ingest(with_onsets(hits, Samples.empty(), interval_s=10), now=at(at_s)).opened[0]


def page_of(store, config, incident_id, tmp_path, name="page.html"):
    page = tmp_path / name
    page.write_text(render_html(build(store, incident_id, catalog=catalog_of(config)), store))
    return page


def clear_layout(plot) -> None:
    assert plot["overlaps"] == [] and plot["outside"] == [], (plot["overlaps"], plot["outside"])


def texts(plot, cls: str | None = None) -> list[str]:
    return [t["text"] for t in plot["texts"] if cls is None or cls in t["cls"].split()]


def test_a_latency_spike_shows_the_hour_before_with_its_band_in_seconds(store, make_config, tmp_path, laid_out):
    config = make_config(CONFIG)
    rng = np.random.default_rng(1)
    sid = series("latency_p95")
    keep_samples(store, sid, 0.095 + rng.normal(0, 0.004, 400), end=-10)  # 66 minutes of normal latency
    spike = [Hit(series_id=sid, detector="seasonal", ts=at(s), value=v, score=v * 600, direction=Direction.UP,
                 expected=0.096, lower=0.05, upper=0.142, metric="latency_p95", labels=JOB,
                 explanation=f"value {v} vs expected 0.096, robust z +552.0") for s, v in ((0, 0.81), (10, 0.86))]
    incident_id = open_with(store, config, spike[:1], at_s=0)
    Correlator(store, config.incidents, interval_s=10).ingest(spike[1:], now=at(10))
    page = page_of(store, config, incident_id, tmp_path)
    [plot] = laid_out(page)["plots"]
    clear_layout(plot)
    words = texts(plot)
    assert {"observed", "expected band", "expected", "anomalous", "began 02:59:55"} <= set(words)
    assert texts(plot, "date") == ["2026-11-24 UTC"]
    clocks = [w for w in texts(plot, "tick") if re.fullmatch(r"\d\d:\d\d", w)]
    assert clocks[0] <= "02:00" and clocks[-1] >= "03:00"  # the hour before, and after
    values = [w for w in texts(plot, "tick") if not re.fullmatch(r"\d\d:\d\d|.*UTC", w)]
    assert len(values) >= 3 and all(re.fullmatch(r"[0-9.]+ m?s", w) for w in values), values
    html = page.read_text()
    # the start's method on hover over the times, and in the timeline
    assert ('<span class="times" title="began: half a cycle before 03:00:00, its first anomalous point (no earlier '
            'point to compare it with)">open · began 2026-11-24 02:59:55 UTC, detected 03:00:00 (MTTD 5s)') in html
    assert "robust z" not in html and "+552" not in html
    assert "860 ms at 03:00:10 vs expected 96 ms" in html and "x the usual spread" in html


def test_an_slo_draws_its_objective_and_a_threshold_its_bound_in_bytes(store, make_config, tmp_path, laid_out):
    config = make_config(CONFIG)
    slo = Hit(series_id=series("latency_p95"), detector="latency_slo", ts=at(0), value=0.45, score=1.0,
              direction=Direction.UP, upper=0.3, metric="latency_p95", labels=JOB, began_at=at(-10),
              explanation="value 0.45 above the upper bound 0.3 in 2 of the last 3 points")
    memory = Hit(series_id=series("memory"), detector="memory", ts=at(5), value=3.4e8, score=1.0,
                 direction=Direction.UP, upper=3e8, metric="memory", labels=JOB,
                 explanation="value 3.4e+08 above the upper bound 3e+08 in 2 of the last 3 points")
    keep_samples(store, series("memory"), np.linspace(2.0e8, 3.4e8, 30), end=5)
    incident_id = open_with(store, config, [slo, memory], at_s=10)
    page = page_of(store, config, incident_id, tmp_path)
    plots = laid_out(page)["plots"]
    assert len(plots) == 2
    for plot in plots:
        clear_layout(plot)
    by_label = {p["label"].split(" ")[0]: p for p in plots}
    assert "objective 300 ms" in texts(by_label["latency_p95"])
    assert "upper bound 286 MiB" in texts(by_label["memory"])
    assert any(w.endswith("MiB") for w in texts(by_label["memory"], "tick"))
    assert "324 MiB at 03:00:05, above the upper bound 286 MiB" in page.read_text()


def test_a_drift_names_its_features_and_draws_the_threshold(store, make_config, tmp_path, laid_out):
    from tests.incidents.test_summary_text import DRIFT_WORDS

    config = make_config(CONFIG)
    words = DRIFT_WORDS.replace("amount", "<b>amount</b>").replace("demo_prediction_score PSI 0.25",
                                                                     "demo_prediction_score PSI 0.12")
    drift = Hit(series_id='model_drift{model="fraud"}', detector="drift", ts=at(20), value=1.0, score=1.0,
                direction=Direction.UP, expected=0.0, upper=0.5, entity="fraud", metric="model_drift",
                labels={"model": "fraud"}, explanation=words, began_at=at(5))
    for k, rate in enumerate([0.0, 0.0, 0.25, 0.5, 1.0]):
        store.record_derived('model_drift{model="fraud"}', to_epoch(at(k * 10 - 20)), rate)
    incident_id = open_with(store, config, [drift], at_s=20)
    page = page_of(store, config, incident_id, tmp_path)
    [plot] = laid_out(page)["plots"]
    clear_layout(plot)
    assert texts(plot, "name") == ["<b>amount</b>", "age", "tenure", "demo_prediction…"]
    assert {"PSI threshold 0.25", "drifted by test", "alert at 50 %", "began 03:00:05"} <= set(texts(plot))
    assert "<b>amount</b>" not in page.read_text()  # a feature name is text, never markup


@pytest.mark.parametrize("span", [timedelta(0), timedelta(hours=3), timedelta(days=3)])
def test_time_axes_read_at_any_span(store, make_config, tmp_path, laid_out, span):
    """One point of ``up`` (no samples kept), or two hits hours or days apart."""
    config = make_config(CONFIG)
    first = Hit(series_id='up{job="demo-model"}', detector="down", ts=at(0), value=0.0, score=1.0,
                direction=Direction.DOWN, lower=0.5, metric="up", labels={"job": "demo-model"}, explanation="up is 0")
    incident_id = open_with(store, config, [first], at_s=0)
    if span:
        later = at(span.total_seconds())
        Correlator(store, config.incidents, interval_s=10).ingest([replace(first, ts=later)], now=later)
    [plot] = laid_out(page_of(store, config, incident_id, tmp_path))["plots"]
    clear_layout(plot)
    times = [w for w in texts(plot, "tick") if re.fullmatch(r"\d\d:\d\d|[A-Z][a-z]{2} \d\d", w)]
    assert 3 <= len(times) <= 8, times
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d\d" if span >= timedelta(days=2) else r"\d\d:\d\d", w)
               for w in times), times
    assert not any(re.fullmatch(r"20\d\d", w) for w in texts(plot))  # never an axis of years
    assert "lower bound 0.5" in texts(plot)
