"""Hostile exporters (issue 17, items 4 and 5): each is a real HTTP server on 127.0.0.1.

Whatever one target does, it costs that target its data for the cycle (a gap, counted by kind),
never the other targets theirs; labels and duplicates follow Prometheus' rules.
"""

from __future__ import annotations

import logging
import time

import pytest

from agent.context import Context
from tests.fixtures.prometheus import MisbehavingServer
from tests.sources.conftest import at, collect

BAD = "# TYPE bad_level gauge\nbad_level 7\n"


def two_targets(bad: MisbehavingServer, good: MisbehavingServer, **scrape: object) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in scrape.items())
    return ("http:\n  enabled: false\n"
            "sources:\n  scrape:\n    self_metrics: false\n    timeout: 1s\n    deadline: 2s\n"
            f"{extra}    targets:\n"
            f"      - name: bad\n        url: {bad.url}/metrics\n"
            f"      - name: good\n        url: {good.url}/metrics\n")


def metric(ctx: Context, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)


def good_id(server: MisbehavingServer) -> str:
    return f'good_temperature_celsius{{instance="127.0.0.1:{server.port}",job="good"}}'


def bad_id(server: MisbehavingServer) -> str:
    return f'bad_level{{instance="127.0.0.1:{server.port}",job="bad"}}'


@pytest.mark.parametrize("behave, kind, message", [
    (lambda s: s.redirect_loop(), "redirects", '"too many redirects (a redirect loop?)"'),
    (lambda s: s.trickle(BAD * 20, interval_s=0.2), "deadline", '"not done within the 2s deadline"'),
    (lambda s: s.trickle_headers(interval_s=0.2), "deadline", '"not done within the 2s deadline"'),
    (lambda s: s.huge(50 * 2**20), "too_large", '"a body past the 1048576 byte limit"'),
    (lambda s: s.bad_chunks(), "protocol", '"a broken HTTP answer (ProtocolError)"'),
    # The target's bytes (NUL, BEL, ESC) reach the log escaped, never raw.
    (lambda s: s.respond(b'bad_level{a="1"\x00\x07\x1b[2J} 1\n'), "parse",
     r'"not exposition format (Invalid labels: a=\"1\"\\x00\\x07\\x1b[2J)"'),
    (lambda s: s.respond(b"bad_level \xff\xfe 1\n"), "parse", '"not UTF-8 text (byte 0xff at offset 10)"'),
])
def test_a_hostile_target_is_its_own_gap_and_the_others_still_arrive(make_ctx, misbehaving_server, good_server,
                                                                     caplog, behave, kind, message):
    ctx = make_ctx(two_targets(misbehaving_server, good_server, max_body="1MiB"))
    misbehaving_server.respond(BAD)
    collect(ctx, at(0))
    behave(misbehaving_server)
    caplog.set_level(logging.INFO, logger="agent.sources")
    started = time.monotonic()
    samples = collect(ctx, at(1))
    elapsed = time.monotonic() - started

    # the deadline (2 s) bounds the whole scrape, whatever the target does (trickled headers take 12 s)
    assert elapsed < 2 + 6
    assert samples.gaps == frozenset({bad_id(misbehaving_server)})
    assert samples.values[good_id(good_server)].tolist() == [20.0, 20.0]
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind=kind) == 1.0
    assert metric(ctx, "aiops_source_up", source="scrape", target="bad") == 0.0
    assert metric(ctx, "aiops_source_up", source="scrape", target="good") == 1.0
    downs = [r.getMessage() for r in caplog.records if "event=source.down" in r.getMessage()]
    assert downs == [f"event=source.down source=scrape target=bad url={misbehaving_server.url}/metrics kind={kind} "
                     f"error={message}"]
    assert not any(c in "".join(r.getMessage() for r in caplog.records) for c in "\x00\x07\x1b")


def test_a_trickled_body_is_cut_at_the_deadline_not_read_to_its_end(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server))
    misbehaving_server.trickle(BAD * 100, interval_s=0.1)  # 3,500 bytes: 350 s at this pace
    started = time.monotonic()
    collect(ctx, at(0))
    assert 2.0 <= time.monotonic() - started < 10  # read to its end, the body would take 350 s
    assert 5 <= misbehaving_server.sent <= 25  # about 2 s worth of bytes, then the agent hung up
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind="deadline") == 1.0


def test_a_huge_body_is_refused_before_it_is_read_whole(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server, max_body="1MiB"))
    misbehaving_server.huge(50 * 2**20)
    collect(ctx, at(0))
    assert metric(ctx, "aiops_source_errors_total", source="scrape", kind="too_large") == 1.0
    # The server stops at the first write the closed socket refuses: a few MB of socket buffers
    # at most, never the 50 MB.
    assert misbehaving_server.sent < 16 * 2**20


def test_a_declared_length_past_the_cap_is_refused_without_reading(make_ctx, misbehaving_server, good_server, caplog):
    ctx = make_ctx(two_targets(misbehaving_server, good_server, max_body="1KiB"))
    misbehaving_server.respond(BAD * 100)  # 3,500 bytes with a Content-Length
    caplog.set_level(logging.INFO, logger="agent.sources")
    samples = collect(ctx, at(0))
    assert good_id(good_server) in samples.values
    downs = [r.getMessage() for r in caplog.records if "event=source.down" in r.getMessage()]
    assert downs == [f'event=source.down source=scrape target=bad url={misbehaving_server.url}/metrics kind=too_large '
                     'error="a body of 3500 bytes, past the 1024 byte limit"']


def test_a_duplicate_series_keeps_its_first_sample_and_the_rest_are_counted(make_ctx, misbehaving_server,
                                                                            good_server, caplog):
    ctx = make_ctx(two_targets(misbehaving_server, good_server))
    misbehaving_server.respond('dupg{a="1"} 1\ndupg{a="1"} 2\ndupg{a="1"} 300\ndupg{a="1"} 4\ndupg{a="2"} 5\n')
    caplog.set_level(logging.WARNING, logger="agent.sources")
    samples = collect(ctx, at(0))
    collect(ctx, at(1))
    one = f'dupg{{a="1",instance="127.0.0.1:{misbehaving_server.port}",job="bad"}}'
    two = f'dupg{{a="2",instance="127.0.0.1:{misbehaving_server.port}",job="bad"}}'
    assert samples.values[one].tolist() == [1.0]
    assert samples.values[two].tolist() == [5.0]
    assert metric(ctx, "aiops_samples_dropped_total", reason="duplicate") == 6.0  # 3 per scrape, two scrapes
    notes = [r.getMessage() for r in caplog.records if "source.duplicates" in r.getMessage()]
    assert notes == ['event=source.duplicates source=scrape target=bad '
                     'message="samples repeat a series already in this scrape; kept the first of each" dropped=3']


def test_scraped_labels_that_clash_with_the_target_labels_become_exported(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server))
    misbehaving_server.respond("# TYPE up_probe gauge\n"
                               + "".join(f'up_probe{{instance="host{i}",job="blackbox"}} {i}\n' for i in range(300)))
    samples = collect(ctx, at(0))
    here = f"127.0.0.1:{misbehaving_server.port}"
    probes = [c for c in samples.values.columns if c.startswith("up_probe")]
    assert len(probes) == 300  # none merged into another
    assert f'up_probe{{exported_instance="host7",exported_job="blackbox",instance="{here}",job="bad"}}' in probes
    assert samples.values[probes[0]].notna().all()
    assert metric(ctx, "aiops_samples_dropped_total", reason="duplicate") is None


def test_honor_labels_keeps_the_exporters_own_labels(make_ctx, misbehaving_server, good_server):
    text = two_targets(misbehaving_server, good_server).replace(
        "      - name: bad\n", "      - name: bad\n        honor_labels: true\n")
    ctx = make_ctx(text)
    misbehaving_server.respond('# TYPE up_probe gauge\nup_probe{instance="host1"} 1\n'
                               'up_probe{instance="host2",job="federated"} 2\nup_probe 3\n')
    samples = collect(ctx, at(0))
    here = f"127.0.0.1:{misbehaving_server.port}"
    honored = [f'up_probe{{instance="{here}",job="bad"}}', 'up_probe{instance="host1",job="bad"}',
               'up_probe{instance="host2",job="federated"}']
    assert sorted(c for c in samples.values.columns if c.startswith("up_probe")) == honored
    # When the target fails, every series it sent is a gap, the one with the exporter's own job too.
    misbehaving_server.respond("oops", status=500)
    assert collect(ctx, at(1)).gaps == frozenset(honored)


def test_a_megabyte_label_value_is_cut_marked_and_counted(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server))
    misbehaving_server.respond("# TYPE big gauge\n" + 'big{note="' + "x" * 1_000_000 + '"} 7\n')
    samples = collect(ctx, at(0))
    [column] = [c for c in samples.values.columns if c.startswith("big{")]
    note = samples.series[column].labels["note"]
    assert note == "x" * 1024 + "…[+998976 chars]"
    assert len(column) < 1200 and samples.values[column].tolist() == [7.0]
    assert metric(ctx, "aiops_label_values_cut_total") == 1.0


def test_names_of_100_kb_are_cut_marked_and_counted(make_ctx, misbehaving_server, good_server):
    ctx = make_ctx(two_targets(misbehaving_server, good_server))
    long_metric, long_label = "m" * 100_000, "l" * 100_000
    misbehaving_server.respond(f"# TYPE {long_metric} gauge\n{long_metric} 7\n"
                               f'short{{{long_label}="v",a="1"}} 8\n'
                               f"# TYPE {long_metric}_h histogram\n"
                               f'{long_metric}_h_bucket{{le="1"}} 1\n{long_metric}_h_bucket{{le="+Inf"}} 2\n'
                               f"{long_metric}_h_count 2\n{long_metric}_h_sum 1\n")
    samples = collect(ctx, at(0))
    port = misbehaving_server.port
    cut_metric = "m" * 256 + "…[+99744 chars]"
    assert samples.values[f'{cut_metric}{{instance="127.0.0.1:{port}",job="bad"}}'].tolist() == [7.0]
    [short] = [c for c in samples.values.columns if c.startswith("short{")]
    assert samples.series[short].labels == {"l" * 256 + "…[+99744 chars]": "v", "a": "1", "job": "bad",
                                            "instance": f"127.0.0.1:{port}"}
    assert max(len(c) for c in samples.series) < 1024
    stored = ctx.store.known_series(labels={"job": "bad"})
    assert {s.metric for s in stored} >= {cut_metric, "short"} and max(len(s.series_id) for s in stored) < 1024
    # the gauge, the label, the histogram's two buckets, its _count and _sum samples
    assert metric(ctx, "aiops_names_cut_total") == 6.0
