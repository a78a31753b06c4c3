"""The scrape source against real local HTTP servers and a real store."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import pytest

from agent.context import Context
from tests.sources.conftest import T0, app_text, at, collect, history, scrape_yaml

TEMP = 'app_temperature_celsius{instance="%s",job="app"}'
REQS = 'app_requests_total{instance="%s",job="app",path="/"}'
P = 'app_latency_seconds{instance="%s",job="app",quantile="%s"}'
HIST = 'app_latency_seconds{instance="%s",job="app"}'


def sid(template: str, server, *rest: str) -> str:
    return template % (f"127.0.0.1:{server.port}", *rest)


def metric(ctx: Context, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)


def test_gauges_rates_quantiles_and_buckets_over_two_scrapes(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    misbehaving_server.respond(app_text(100, 10, 30, 40))
    first = collect(ctx, at(0))
    assert first.values[sid(TEMP, misbehaving_server)].tolist() == [21.5]
    assert sid(REQS, misbehaving_server) not in first.values  # a rate needs two readings
    misbehaving_server.respond(app_text(160, 40, 90, 100))
    second = collect(ctx, at(1))

    values = second.values
    assert values.index.name == "ts" and str(values.index.tz) == "UTC"
    assert list(values.index) == [pd.Timestamp(T0), pd.Timestamp(T0) + pd.Timedelta(minutes=1)]
    assert all(values.dtypes == "float64")
    assert values[sid(REQS, misbehaving_server)].iloc[-1] == pytest.approx(1.0)  # 60 more in 60 s
    # bucket increases 30, 60, 60: the quantiles interpolate inside (0, 0.1] and (0.1, 0.5]
    assert values[sid(P, misbehaving_server, "0.5")].iloc[-1] == pytest.approx(0.1)
    assert values[sid(P, misbehaving_server, "0.95")].iloc[-1] == pytest.approx(0.1 + 0.4 * 27 / 30)
    assert values[sid(P, misbehaving_server, "0.99")].iloc[-1] == pytest.approx(0.1 + 0.4 * 29.4 / 30)
    assert second.series[sid(REQS, misbehaving_server)].kind == "rate"
    assert second.series[sid(P, misbehaving_server, "0.95")].kind == "quantile"
    buckets = second.buckets[sid(HIST, misbehaving_server)]
    assert list(buckets.columns) == [0.1, 0.5, math.inf]
    assert buckets.iloc[-1].tolist() == [30.0, 60.0, 60.0]
    assert not second.gaps
    assert metric(ctx, "aiops_source_up", source="scrape", target="app") == 1.0
    assert metric(ctx, "aiops_series_collected") == len(second)


def test_counter_reset_counts_the_new_value_as_the_increase(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    misbehaving_server.respond(app_text(1000, 10, 30, 40))
    collect(ctx, at(0))
    misbehaving_server.respond(app_text(30, 5, 5, 6))  # the application restarted
    samples = collect(ctx, at(1))
    assert samples.values[sid(REQS, misbehaving_server)].iloc[-1] == pytest.approx(0.5)
    assert samples.buckets[sid(HIST, misbehaving_server)].iloc[-1].tolist() == [5.0, 5.0, 6.0]


def test_rates_survive_a_restart_of_the_agent(make_ctx, misbehaving_server):
    text = scrape_yaml(misbehaving_server.url)
    misbehaving_server.respond(app_text(100, 10, 30, 40))
    collect(make_ctx(text), at(0))
    misbehaving_server.respond(app_text(220, 10, 30, 40))
    later = make_ctx(text)  # a new process (aiops once) over the same store
    samples = collect(later, at(2))
    assert samples.values[sid(REQS, misbehaving_server)].iloc[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("behave, kind, message", [
    (lambda s: s.respond("oops", status=500), "http_status", 'error="HTTP 500"'),
    (lambda s: s.respond("<html><body>Login</body></html>", content_type="text/html"), "html",
     'error="an HTML page instead of metrics"'),
    (lambda s: s.respond("this is not { metrics"), "parse", "error=\"not exposition format"),
    (lambda s: s.hang(), "timeout", 'error="no answer within 1s"'),
])
def test_a_failing_target_is_a_gap_logged_once_and_counted(make_ctx, misbehaving_server, caplog, behave, kind, message):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    misbehaving_server.respond(app_text(100, 10, 30, 40))
    collect(ctx, at(0))
    behave(misbehaving_server)
    caplog.set_level(logging.INFO, logger="agent.sources")
    started = time.monotonic()
    failed = [collect(ctx, at(1)), collect(ctx, at(2))]
    assert time.monotonic() - started < 12  # a hanging target costs its timeout (1 s a scrape), not forever
    for samples in failed:
        assert sid(TEMP, misbehaving_server) in samples.gaps
        assert sid(REQS, misbehaving_server) in samples.gaps
        assert np.isnan(samples.values[sid(TEMP, misbehaving_server)].iloc[-1])  # never a fake zero
    downs = [r for r in caplog.records if "event=source.down" in r.getMessage()]
    assert len(downs) == 1
    assert downs[0].levelno == logging.WARNING
    assert f"source=scrape target=app url={misbehaving_server.url}/metrics kind={kind} {message}" in downs[0].getMessage()
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind=kind) == 2.0
    assert metric(ctx, "aiops_source_up", source="scrape", target="app") == 0.0

    misbehaving_server.respond(app_text(100, 10, 30, 40))
    recovered = collect(ctx, at(3))
    assert not recovered.gaps
    ups = [r.getMessage() for r in caplog.records if "event=source.recovered" in r.getMessage()]
    assert ups == [f"event=source.recovered source=scrape target=app url={misbehaving_server.url}/metrics was={kind}"]


def test_non_finite_values_are_dropped_and_counted(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    misbehaving_server.respond("# TYPE a gauge\na NaN\n# TYPE b gauge\nb +Inf\n# TYPE c gauge\nc 3\n")
    samples = collect(ctx, at(0))
    assert samples.values.columns.tolist() == [f'c{{instance="127.0.0.1:{misbehaving_server.port}",job="app"}}']
    assert metric(ctx, "aiops_samples_dropped_total", reason="non_finite") == 2.0


def test_series_limit_truncates_with_one_warning(make_ctx, misbehaving_server, caplog):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url).replace("sources:\n", "sources:\n  series_limit: 3\n"))
    misbehaving_server.respond("# TYPE g gauge\n" + "".join(f'g{{i="{i}"}} {i}\n' for i in range(5)))
    caplog.set_level(logging.WARNING, logger="agent.sources")
    collect(ctx, at(0))
    samples = collect(ctx, at(1))
    assert len(samples) == 3
    assert metric(ctx, "aiops_samples_dropped_total", reason="series_limit") == 4.0
    warnings = [r.getMessage() for r in caplog.records if "source.truncated" in r.getMessage()]
    assert warnings == ['event=source.truncated source=scrape target=app message="kept 3 series, dropped 2 past the limit"']


def stored(ctx: Context) -> int:
    return len(ctx.store.sample_history(0, T0.timestamp() + 86400))


def test_history_is_pruned_past_retention_a_whole_hour_at_a_time_in_bounded_batches(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url, retention="2h", prune_batch=100))
    misbehaving_server.respond("# TYPE g gauge\n" + "".join(f'g{{i="{i}"}} {i}\n' for i in range(150)))
    for minute in (0, 1, 2, 60):  # the scrape at 13:00 packs 12:00-13:00 into 150 chunks of 3
        collect(ctx, at(minute))
    assert stored(ctx) == 600
    collect(ctx, at(179))  # the cut-off 12:59 is inside the hour: nothing goes
    assert stored(ctx) == 750
    collect(ctx, at(200))  # cut-off 13:20: the hour 12:00 goes, 33 chunks (99 samples) a cycle
    assert stored(ctx) == 900 - 99
    for minute in range(201, 205):
        collect(ctx, at(minute))
    assert stored(ctx) == 150 * 10 - 450
    whole = history(ctx, pd.Timestamp(T0), pd.Timestamp(T0) + pd.Timedelta(minutes=300))
    assert whole.values.index[0] == pd.Timestamp(T0) + pd.Timedelta(minutes=60)  # 12:00-12:02 are gone


def test_shards_split_the_series_without_overlap(make_ctx, misbehaving_server, tmp_path):
    misbehaving_server.respond("# TYPE g gauge\n" + "".join(f'g{{i="{i}"}} {i}\n' for i in range(40)))
    seen = []
    for shard in ("0/2", "1/2"):
        text = f"agent:\n  shard: {shard}\n" + scrape_yaml(misbehaving_server.url)
        ctx = make_ctx(text, state=f"state{shard[0]}")
        seen.append(set(collect(ctx, at(0)).values.columns))
    assert seen[0] and seen[1]
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 40


def test_history_returns_stored_samples_averaged_to_a_step(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    for minute, value in enumerate([1, 3, 5, 7]):
        misbehaving_server.respond(f"# TYPE g gauge\ng {value}\n")
        collect(ctx, at(minute))
    whole = history(ctx, pd.Timestamp(T0), pd.Timestamp(T0) + pd.Timedelta(minutes=10), step_s=120)
    column = f'g{{instance="127.0.0.1:{misbehaving_server.port}",job="app"}}'
    assert whole.values[column].tolist() == [2.0, 6.0]


def test_after_a_pause_a_cycle_reaches_back_to_the_previous_one(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))  # window 15m, catchup_max 6h
    misbehaving_server.respond("# TYPE g gauge\ng 1\n")
    collect(ctx, at(0))
    assert len(collect(ctx, at(60)).values) == 2  # minute 0 is older than the window, but unseen
    assert len(collect(ctx, at(120)).values) == 2  # minutes 60 and 120: nothing older is unseen


def test_a_new_process_reaches_back_to_where_the_last_one_stopped(make_ctx, misbehaving_server):
    # `aiops once` (and a restarted daemon) is a new process each time: the points between two
    # runs are judged, not only the last window.
    text = scrape_yaml(misbehaving_server.url)  # window 15m, catchup_max 6h
    misbehaving_server.respond("# TYPE g gauge\ng 1\n")
    collect(make_ctx(text), at(0))
    collect(make_ctx(text), at(30))
    assert len(collect(make_ctx(text), at(60)).values) == 2  # minutes 30 and 60, from a third process
    # a day later: no further back than catchup_max, so the points of minutes 0..60 stay out
    assert len(collect(make_ctx(text), at(60 * 24)).values) == 1


def test_history_of_bucket_series_returns_the_histogram(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    for minute, counts in enumerate([(10, 30, 40), (40, 90, 100), (50, 100, 120)]):
        misbehaving_server.respond(app_text(100, *counts))
        collect(ctx, at(minute))
    ids = [s.series_id for s in ctx.store.known_series() if s.kind == "bucket"]
    assert len(ids) == 3
    found = history(ctx, pd.Timestamp(T0), pd.Timestamp(T0) + pd.Timedelta(minutes=5), series_ids=ids, step_s=300)
    assert list(found.values.columns) == []
    assert found.buckets[sid(HIST, misbehaving_server)].iloc[0].tolist() == [40.0, 70.0, 80.0]  # summed increases
