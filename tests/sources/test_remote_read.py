"""Remote read: the selector parser, the wire decoding, the grid placement, and against a real
Prometheus the same frame as query_range's for the same matchers and range."""

from __future__ import annotations

import logging
import math
import time

import cramjam
import numpy as np
import pandas as pd
import pytest
import requests

from agent.config.sources import PrometheusSourceConfig, QueryConfig
from agent.metrics import Metrics
from agent.sources.base import FailureKind, FetchError
from agent.sources.health import TargetHealth
from agent.sources.prometheus import PrometheusSource
from agent.sources.remote_read import (
    _MESSAGES,
    STALE_NAN_BITS,
    MatchType,
    TimeSeries,
    decode_response,
    on_grid,
    selector,
)
from tests.conftest import wait_until
from tests.fixtures.prometheus import Family, needs_prometheus, openmetrics
from tests.sources.conftest import T0
from tests.sources.test_prometheus import OK

OK_AT = T0.timestamp()  # OK's one point

EQ, NEQ, RE, NRE = MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE


@pytest.mark.parametrize("expr, expected", [
    ("up", [("__name__", EQ, "up")]),
    (' node_load1 { job = "node" , instance=~"a.*", mode!="idle", cpu!~\'1|2\',} ',
     [("__name__", EQ, "node_load1"), ("job", EQ, "node"), ("instance", RE, "a.*"), ("mode", NEQ, "idle"),
      ("cpu", NRE, "1|2")]),
    ('{__name__=~"up|x", job="a\\"b\\\\"}', [("__name__", RE, "up|x"), ("job", EQ, 'a"b\\')]),
    ("up{path=`C:\\dir`}", [("__name__", EQ, "up"), ("path", EQ, "C:\\dir")]),
    ("rate(up[5m])", None),
    ("up offset 5m", None),
    ("up[5m]", None),
    ('up{job="a" mode="b"}', None),
    ('up{job="a\\n"}', None),  # escapes beyond \\ and \" stay with query_range's parser
    ('up{__name__="up"}', None),
    ('{job=~".*"}', None),  # every matcher matches the empty value: PromQL refuses it
    ("NaN", None),
    ("sum(up)", None),
    ("up{", None),
])
def test_only_plain_selectors_are_read_remotely(expr, expected):
    got = selector(expr)
    assert (None if got is None else [(m.name, m.type, m.value) for m in got]) == expected


def stale() -> float:
    return float(np.array([STALE_NAN_BITS], dtype="uint64").view("float64")[0])


def test_grid_points_take_the_last_sample_within_the_lookback_unless_it_is_stale():
    ts = np.array([1_000, 2_000, 10_000, 11_000, 20_000], dtype="int64")
    values = np.array([1.0, 2.0, 3.0, stale(), 5.0])
    grid = np.arange(0, 26_000, 1_000, dtype="int64")
    at, got = on_grid(ts, values, grid, lookback_ms=5_000)
    expected = {1_000: 1.0, 2_000: 2.0, 3_000: 2.0, 4_000: 2.0, 5_000: 2.0, 6_000: 2.0, 7_000: 2.0,  # 7 s: 5 s back, kept
                10_000: 3.0, 20_000: 5.0, 21_000: 5.0, 22_000: 5.0, 23_000: 5.0, 24_000: 5.0, 25_000: 5.0}
    assert dict(zip(at.tolist(), got.tolist())) == expected
    assert on_grid(ts[:0], values[:0], grid, 5_000)[0].tolist() == []


def response(*series: tuple[dict[str, str], list[tuple[int, float]]]) -> bytes:
    answer = _MESSAGES["ReadResponse"]()
    result = answer.results.add()
    for labels, samples in series:
        one = TimeSeries()
        for name, value in labels.items():
            one.labels.add(name=name, value=value)
        for t, v in samples:
            one.samples.add(timestamp=t, value=v)
        result.timeseries.append(one.SerializeToString())
    return bytes(cramjam.snappy.compress_raw(answer.SerializeToString()))


def test_samples_decode_the_same_off_the_wire_as_through_protobuf():
    t0 = 1_767_225_600_000
    regular = [(t0 + i * 15_000, 0.5 + i) for i in range(100)]
    with_zero = [(t0, 1.0), (t0 + 15_000, 0.0), (t0 + 30_000, -2.5)]  # 0.0 is left off the wire
    odd_times = [(5, 1.0), (t0, 2.0)]  # timestamps of two varint lengths
    got = decode_response(response(({"__name__": "a", "i": "0"}, regular), ({"__name__": "a", "i": "1"}, with_zero),
                                   ({"__name__": "a", "i": "2"}, odd_times), ({"__name__": "a", "i": "3"}, []),
                                   ({"__name__": "a", "i": "4"}, [(t0, stale())])))
    assert [labels for labels, _, _ in got] == [{"__name__": "a", "i": str(i)} for i in range(5)]
    for (_, ts, values), samples in zip(got, [regular, with_zero, odd_times, []]):
        assert ts.dtype == np.int64 and values.dtype == np.float64
        assert list(zip(ts.tolist(), values.tolist())) == samples
    assert got[4][2].view("uint64")[0] == STALE_NAN_BITS


def test_a_body_that_is_not_a_read_response_is_refused():
    from agent.sources.remote_read import DecodeError

    with pytest.raises(DecodeError, match="not snappy-compressed"):
        decode_response(b'{"status":"success"}')
    with pytest.raises(DecodeError, match="not a ReadResponse"):
        decode_response(bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff")))


# -- against a real Prometheus ------------------------------------------------------------------

def source(url: str, mode: str, *queries: QueryConfig, **settings: object) -> PrometheusSource:
    metrics = Metrics()
    config = PrometheusSourceConfig(url=url, remote_read=mode, queries=list(queries), **settings)
    return PrometheusSource(config, metrics=metrics, health=TargetHealth(metrics), series_limit=100)


def assert_same_samples(url: str, start: pd.Timestamp, stop: pd.Timestamp, *queries: QueryConfig) -> pd.DataFrame:
    remote, by_range = source(url, "on", *queries), source(url, "off", *queries)
    got, expected = remote.fetch(start, stop), by_range.fetch(start, stop)
    assert remote.stats.read_queries == len(queries) and by_range.stats.read_queries == 0
    assert not remote.failed and not by_range.failed
    pd.testing.assert_frame_equal(got.values, expected.values)
    assert got.series == expected.series
    assert got.buckets.keys() == expected.buckets.keys()
    for hid, frame in got.buckets.items():
        pd.testing.assert_frame_equal(frame, expected.buckets[hid])
    return got.values


@needs_prometheus
def test_backfilled_gaps_and_label_sets_give_query_ranges_frame(prometheus_factory):
    end = math.floor(time.time() / 60) * 60 - 3600
    ts = np.arange(end - 6 * 3600, end + 1, 15, dtype="int64") + 7  # samples off the step grid
    keep = ~(((ts > end - 5 * 3600) & (ts < end - 5 * 3600 + 240))  # a 4 min gap: the lookback bridges it
             | ((ts > end - 4 * 3600) & (ts < end - 4 * 3600 + 900)))  # 15 min: a gap in the frame too
    last = ts[keep][ts[keep] <= end - 3 * 3600]  # h3 stops: its last value lasts 5 minutes
    rng = np.random.default_rng(3)
    families = [
        Family(name="synthetic_load", series=[
            ({"host": "h1", "dc": "a"}, ts[keep], rng.normal(50, 5, keep.sum())),
            ({"host": "h2", "dc": "b"}, ts[keep], np.where(np.arange(keep.sum()) % 7 == 0, 0.0, 1.5)),
            ({"host": "h3", "dc": "a", "role": "db"}, last, rng.normal(10, 1, len(last)))]),
        Family(name="synthetic_latency_bucket", type="gauge", series=[
            ({"le": le}, ts, np.full(len(ts), float(i))) for i, le in enumerate(["0.1", "1", "+Inf"])]),
    ]
    server = prometheus_factory(backfill_text=openmetrics(families))
    start, stop = pd.Timestamp(end - 6 * 3600, unit="s", tz="UTC"), pd.Timestamp(end, unit="s", tz="UTC")
    values = assert_same_samples(
        server.url, start, stop,
        QueryConfig(name="load", expr="synthetic_load", step=60),
        QueryConfig(name="load_a", expr='synthetic_load{dc="a", host=~"h[13]"}', step=45),
        QueryConfig(name="latency", expr="synthetic_latency_bucket", step=60, kind="bucket"))
    h3 = values['synthetic_load{dc="a",host="h3",role="db"}']
    # the last grid point within the 5-minute lookback of h3's last sample still has its value
    assert h3.last_valid_index() == pd.Timestamp((last[-1] + 300) // 60 * 60, unit="s", tz="UTC")
    gap = values['synthetic_load{dc="b",host="h2"}'].loc[pd.Timestamp(end - 4 * 3600 + 420, unit="s", tz="UTC")]
    assert np.isnan(gap)
    # at a 1 s step a grid point falls exactly 5 minutes after h3's last sample: still found
    fine = assert_same_samples(server.url, start, stop, QueryConfig(name="db", expr='synthetic_load{role="db"}', step=1))
    assert fine.iloc[:, 0].last_valid_index() == pd.Timestamp(last[-1] + 300, unit="s", tz="UTC")
    # a longer range is read in chunks, and the same frame comes back
    assert_same_samples(server.url, start, stop, QueryConfig(name="load", expr="synthetic_load", step=10))


@needs_prometheus
@pytest.mark.slow
def test_staleness_markers_end_a_series_as_in_query_range(prometheus_factory, misbehaving_server):
    misbehaving_server.respond('flap{x="1"} 1\nflap{x="2"} 2\n')
    server = prometheus_factory(targets=[f"127.0.0.1:{misbehaving_server.port}"])
    started = time.time()

    def instant(expr: str) -> int:
        answer = requests.get(f"{server.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        return len(answer["data"]["result"])

    wait_until(lambda: instant('count_over_time(flap{x="2"}[1m]) >= 3'), 20, message="three scrapes of x=2")
    misbehaving_server.respond('flap{x="1"} 1.5\n')  # x=2 goes: Prometheus writes a staleness marker
    wait_until(lambda: instant('count_over_time(flap{x="1"}[1m]) >= 6') and not instant('flap{x="2"}'), 20,
               message="x=2 marked stale")
    misbehaving_server.respond('flap{x="1"} 1\nflap{x="2"} 0\n')
    wait_until(lambda: instant('count_over_time(flap{x="2"}[1m]) >= 5'), 20, message="x=2 back for two scrapes")
    stop = pd.Timestamp(time.time() - 0.5, unit="s", tz="UTC")
    values = assert_same_samples(server.url, pd.Timestamp(started - 2, unit="s", tz="UTC"), stop,
                                 QueryConfig(name="flap", expr="flap", step=0.5))
    x2 = values['flap{instance="127.0.0.1:%d",job="app",x="2"}' % misbehaving_server.port]
    # present, then a gap far shorter than the 5-minute lookback (the marker), then present again
    runs = (x2.notna() != x2.notna().shift()).cumsum()[x2.notna()].nunique()
    assert runs == 2, x2.to_string()


# -- choosing the path -------------------------------------------------------------------------

def test_auto_falls_back_to_query_range_for_good_and_says_so_once(misbehaving_server, caplog):
    misbehaving_server.respond(OK, content_type="application/json")  # a JSON answer to /api/v1/read too
    up = QueryConfig(name="up", expr="up")
    auto = source(misbehaving_server.url, "auto", up)
    caplog.set_level(logging.INFO, logger="agent.sources")
    at = pd.Timestamp(OK_AT, unit="s", tz="UTC")
    first = auto.fetch(at - pd.Timedelta("1min"), at)
    assert list(first.values.columns) == ['up{job="a"}'] and misbehaving_server.requests == 2
    auto.fetch(at - pd.Timedelta("1min"), at)
    assert misbehaving_server.requests == 3 and auto.remote_read is False
    offs = [r.getMessage() for r in caplog.records if "remote_read_off" in r.getMessage()]
    assert offs == [f"event=prometheus.remote_read_off url={misbehaving_server.url}/api/v1/read "
                    "reason=\"answered 'application/json', not protobuf\""]


def test_a_refusal_is_an_error_when_remote_read_is_on_and_a_fallback_when_auto(misbehaving_server):
    misbehaving_server.respond('{"status":"error","error":"remote read is disabled"}', status=400,
                               content_type="application/json")
    up = QueryConfig(name="up", expr="up")
    at = pd.Timestamp(OK_AT, unit="s", tz="UTC")
    with pytest.raises(FetchError) as raised:
        source(misbehaving_server.url, "on", up).fetch_query(up, at.timestamp() - 60, at.timestamp())
    assert raised.value.kind == FailureKind.API_ERROR
    assert raised.value.problem == 'remote read: HTTP 400: {"status":"error","error":"remote read is disabled"}'
    before = misbehaving_server.requests
    auto = source(misbehaving_server.url, "auto", up)
    with pytest.raises(FetchError) as raised:  # query_range is refused as well: its own error
        auto.fetch_query(up, at.timestamp() - 60, at.timestamp())
    assert raised.value.problem == "HTTP 400: remote read is disabled"
    assert misbehaving_server.requests - before == 2
    off = source(misbehaving_server.url, "off", up)
    misbehaving_server.respond(OK, content_type="application/json")
    off.fetch(at - pd.Timedelta("1min"), at)
    assert misbehaving_server.requests - before == 3 and off.stats.read_queries == 0


def test_refused_credentials_are_the_querys_error_and_keep_remote_read_on(misbehaving_server):
    misbehaving_server.respond("unauthorized", status=401)
    auto = source(misbehaving_server.url, "auto", QueryConfig(name="up", expr="up"))
    at = pd.Timestamp(OK_AT, unit="s", tz="UTC")
    samples = auto.fetch(at - pd.Timedelta("1min"), at)
    assert auto.failed == ["up"] and samples.values.empty
    assert misbehaving_server.requests == 1 and auto.remote_read is True
