"""What exporters send: gzip and identity bodies, OpenMetrics or the text format, and the
encodings a hostile or broken target can answer with. Each target is a real HTTP server on
127.0.0.1; the byte cap counts inflated bytes."""

from __future__ import annotations

import gzip
import logging
import tracemalloc

import pytest

from tests.sources.conftest import app_text, at, collect, scrape_yaml
from tests.sources.test_scrape_faults import BAD, bad_id, good_id, metric, two_targets

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def test_a_gzip_body_gives_the_samples_its_plain_text_gives(make_ctx, misbehaving_server):
    plain = make_ctx(scrape_yaml(misbehaving_server.url), state="plain")
    packed = make_ctx(scrape_yaml(misbehaving_server.url), state="packed")
    for minute, requests in ((0, 100), (1, 160)):
        text = app_text(requests, 2, 5, 10 + minute)
        misbehaving_server.respond(text)
        expected = collect(plain, at(minute))
        misbehaving_server.respond(gzip.compress(text.encode()), content_encoding="gzip")
        got = collect(packed, at(minute))
    assert misbehaving_server.last_headers["Accept-Encoding"] == "gzip"
    assert sorted(got.values.columns) == sorted(expected.values.columns)
    assert got.values.equals(expected.values[got.values.columns])
    assert got.values['app_requests_total{instance="127.0.0.1:%d",job="app",path="/"}' % misbehaving_server.port
                      ].iloc[-1] == 1.0  # 60 requests in 60 s
    assert metric(packed, "aiops_source_errors_total", source="scrape", kind="encoding") is None


def test_openmetrics_is_asked_for_first_and_read_when_answered(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    text = ("# TYPE om_requests counter\nom_requests_total 10\nom_requests_created 1.7e9\n"
            "# TYPE om_build info\nom_build_info{version=\"1.2\"} 1\n"
            "# TYPE om_state stateset\nom_state{om_state=\"ready\"} 1\n# EOF\n")
    misbehaving_server.respond(text, content_type=OPENMETRICS)
    collect(ctx, at(0))
    misbehaving_server.respond(text.replace("total 10", "total 70"), content_type=OPENMETRICS)
    samples = collect(ctx, at(1))
    assert misbehaving_server.last_headers["Accept"].startswith("application/openmetrics-text;version=1.0.0,")
    port = misbehaving_server.port
    ids = {c.split("{")[0]: c for c in samples.values.columns}
    assert sorted(ids) == ["om_build_info", "om_requests_total", "om_state"]
    assert samples.series[ids["om_requests_total"]].kind == "rate"
    assert samples.values[ids["om_requests_total"]].dropna().tolist() == [1.0]
    assert ids["om_build_info"] == f'om_build_info{{instance="127.0.0.1:{port}",job="app",version="1.2"}}'


def test_openmetrics_without_its_eof_line_is_a_parse_gap(make_ctx, misbehaving_server):
    ctx = make_ctx(scrape_yaml(misbehaving_server.url))
    misbehaving_server.respond("# TYPE om_level gauge\nom_level 3\n", content_type=OPENMETRICS)
    samples = collect(ctx, at(0))
    assert len(samples) == 0
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind="parse") == 1.0


TEN_GB = 10 * 2**30
CUT = gzip.compress(BAD.encode() * 200)


@pytest.mark.parametrize("behave, kind, message", [
    (lambda s: s.gzip_bomb(TEN_GB), "too_large", '"a body past the 1048576 byte limit once inflated"'),
    (lambda s: s.respond(CUT[:len(CUT) // 2], content_encoding="gzip"), "encoding",
     '"a gzip body cut short (it ends mid-stream)"'),
    (lambda s: s.respond(BAD, content_encoding="gzip"), "encoding",
     '"a body that claims gzip but does not inflate (incorrect header check)"'),
    (lambda s: s.respond(b"\x1b\x00\x00\x00", content_encoding="br"), "encoding",
     "\"a body in 'br' encoding, which was not asked for (only gzip)\""),
    (lambda s: s.respond(b"x\x9c\x03\x00\x00\x00\x00\x01", content_encoding="deflate"), "encoding",
     "\"a body in 'deflate' encoding, which was not asked for (only gzip)\""),
], ids=["gzip-bomb", "truncated-gzip", "false-gzip", "br", "deflate"])
def test_a_body_that_does_not_inflate_is_a_counted_gap_of_its_own(make_ctx, misbehaving_server, good_server, caplog,
                                                                  behave, kind, message):
    ctx = make_ctx(two_targets(misbehaving_server, good_server, max_body="1MiB"))
    misbehaving_server.respond(BAD)
    collect(ctx, at(0))
    behave(misbehaving_server)
    caplog.set_level(logging.INFO, logger="agent.sources")
    samples = collect(ctx, at(1))

    assert samples.gaps == frozenset({bad_id(misbehaving_server)})
    assert samples.values[good_id(good_server)].tolist() == [20.0, 20.0]
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind=kind) == 1.0
    assert metric(ctx, "aiops_source_up", source="scrape", target="bad") == 0.0
    downs = [r.getMessage() for r in caplog.records if "event=source.down" in r.getMessage()]
    assert downs == [f"event=source.down source=scrape target=bad url={misbehaving_server.url}/metrics "
                     f"kind={kind} error={message}"]
    # The next cycle finds the target well again: nothing of the bad answer stays behind.
    misbehaving_server.respond(gzip.compress(BAD.encode()), content_encoding="gzip")
    assert collect(ctx, at(2)).gaps == frozenset()


def test_a_gzip_bomb_costs_the_cap_not_its_size(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server, max_body="1MiB"))
    misbehaving_server.gzip_bomb(TEN_GB)
    tracemalloc.start()
    try:
        collect(ctx, at(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind="too_large") == 1.0
    # 10 GB inflated is 10 MB on the wire: the agent hung up after about 1 KB of it (and the
    # socket buffers), holding the 1 MiB cap and one read.
    assert misbehaving_server.sent < 4 * 2**20
    assert peak < 4 * 2**20
