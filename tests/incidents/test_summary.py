"""The incident summary: what it says, in each format, and that hostile label values stay inert."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from markdown_it import MarkdownIt

from agent.flow.incidents import IncidentStatus
from agent.incidents.formats import render
from agent.incidents.summary import build, deviation
from agent.store.incidents import UnknownIncidentError
from tests.notify.incident_data import HOSTILE, T0, add_run, make_incident

BASE = "http://aiops.example:9847"
PROM = "http://prom.example:9090"


def test_title_says_what_where_and_how_far(store):
    incident = make_incident(store)
    summary = build(store, incident.id, base_url=BASE)
    assert summary.title == "http_request_duration_seconds 4.2x expected on service=api, instance=web-1 (+1 more signal)"
    assert summary.url == f"{BASE}/incidents/{incident.id}"


@pytest.mark.parametrize(("observed", "expected", "words"), [
    (0.84, 0.2, "4.2x expected"), (0.05, 0.04, "+25% vs expected"), (10.0, 40.0, "-75% vs expected"),
    (3.0, 0.0, "3 vs expected 0"), (None, 1.0, "anomalous")])
def test_deviation_in_words(observed, expected, words):
    assert deviation(observed, expected) == words


def test_text_summary_has_every_section_in_order(store):
    incident = make_incident(store)
    store.add_change(ts=T0 - timedelta(minutes=20), kind="deploy", labels={"service": "api", "version": "v12"},
                     description="api v12 rollout", actor="alice", now=T0)
    store.add_change(ts=T0 - timedelta(minutes=90), kind="config", labels={"service": "api"},
                     description="raise pool size", actor="bob", now=T0)
    store.add_change(ts=T0 - timedelta(minutes=5), kind="deploy", labels={"service": "billing"},
                     description="unrelated", actor="carol", now=T0)
    add_run(store, incident.id)
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="alice", reason="looking",
                              now=T0 + timedelta(minutes=15))
    text = render(store, incident.id, "text", base_url=BASE, prometheus_url=PROM)
    lines = text.splitlines()
    assert lines[0] == (f"#{incident.id} CRITICAL  http_request_duration_seconds 4.2x expected on service=api, "
                        "instance=web-1 since deploy v12 (+1 more signal)")
    assert lines[1] == ("Status:   acknowledged · began 2026-11-24 14:00:00 UTC, detected 14:12:00 (MTTD 12m 00s), "
                        "acknowledged 14:15:00 by alice (MTTA 3m 00s)")
    assert lines[2] == ("Done:     14:13:00 ran restart_service.yml (rule restart-api); verified")
    assert lines[3] == "Next:     none: the remediation worked; the incident resolves once its signals stay quiet"
    assert lines[4] == f"Page:     {BASE}/incidents/{incident.id}"
    # the cause and why: the deploy before the outage, and which signal moved first
    assert lines[6] == ("Root cause: deploy v12 by alice: it came 20m 00s before the outage began, on service=api; "
                        "http_errors_ratio moved first, at 14:00:00, 2m 00s before http_request_duration_seconds")
    # signals ranked by peak score: the figures in the metric's unit, how far from normal (the top
    # one's is in the title), hits
    latency = lines.index("  1. http_request_duration_seconds {instance=web-1, service=api} [stl]")
    assert lines[latency + 1] == "     840 ms vs expected 200 ms; 11 hits, the last at 14:11:00, began 14:02:00"
    assert lines[latency + 3] == "  2. http_errors_ratio {instance=web-1, service=api} [stl]"
    assert lines[latency + 4] == ("     5 % vs expected 4 % (+25% vs expected); 11 hits, the last at 14:09:00, "
                                  "began 14:00:00")
    # suspect changes share a label, nearest first, within 2 h
    changes = lines.index("Suspect changes (nearest first):")
    assert lines[changes + 1] == "  2026-11-24 13:40:00 UTC deploy {service=api, version=v12}: api v12 rollout (by alice)"
    assert lines[changes + 2] == "  2026-11-24 12:30:00 UTC config {service=api}: raise pool size (by bob)"
    assert "unrelated" not in text
    timeline = lines.index("Timeline:")
    assert lines[timeline + 1:timeline + 3] == ["  2026-11-24 14:00:00 UTC began", "  2026-11-24 14:12:00 UTC opened by agent"]
    assert lines[-1] == "  2026-11-24 14:15:00 UTC acknowledged by alice: open → acknowledged: looking"


def test_prometheus_link_per_signal_encodes_the_expression(store):
    incident = make_incident(store, labels={"service": 'a"p i', "instance": "web-1"})
    data = json.loads(render(store, incident.id, "json", prometheus_url=PROM + "/"))
    links = [s["graph_url"] for s in data["signals"]]
    assert len(links) == 2
    parts = urlsplit(links[0])
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "prom.example:9090", "/graph")
    assert " " not in links[0] and '"' not in links[0]
    query = parse_qs(parts.query)
    assert query["g0.expr"] == ['http_request_duration_seconds{instance="web-1",service="a\\"p i"}']
    assert query["g0.range_input"] == ["2h"]
    without = json.loads(render(store, incident.id, "json"))
    assert [s["graph_url"] for s in without["signals"]] == [None, None]


def test_graph_links_follow_the_configured_template_for_victoriametrics(store, make_config):
    from agent.errors import ConfigError
    from agent.incidents.catalog import link_template

    vm = make_config('notify:\n  prometheus_url: http://vm.example:8428/\n  graph_link: '
                     '"{url}/vmui/#/?g0.expr={expr}&g0.range_input={range}&g0.end_input={end}"\n')
    incident = make_incident(store, labels={"service": "{end}&x=1", "instance": "web-1"})
    link = json.loads(render(store, incident.id, "json", prometheus_url=link_template(vm)))["signals"][0]["graph_url"]
    parts = urlsplit(link)
    assert (parts.netloc, parts.path) == ("vm.example:8428", "/vmui/")
    query = parse_qs(parts.fragment[len("/?"):])
    assert query["g0.expr"] == ['http_request_duration_seconds{instance="web-1",service="{end}&x=1"}']
    assert query["g0.range_input"] == ["2h"] and "x" not in query  # a label value fills nothing in
    with pytest.raises(ConfigError) as err:
        make_config('notify:\n  graph_link: "{url}/graph?q={query}"\n')
    assert "notify.graph_link: expected a link with {expr} and only {url}, {expr}, {range} and {end}" in str(err.value)


def test_json_summary_carries_the_facts(store):
    incident = make_incident(store)
    add_run(store, incident.id, status="not_fixed", reason="signals not quiet for 300s by the deadline")
    data = json.loads(render(store, incident.id, "json", base_url=BASE))
    assert data["id"] == incident.id
    assert data["severity"] == "critical" and data["status"] == "open"
    assert data["started_at"] == "2026-11-24T14:00:00+00:00"
    assert [s["metric"] for s in data["signals"]] == ["http_request_duration_seconds", "http_errors_ratio"]
    assert data["signals"][0]["observed"] == 0.84 and data["signals"][0]["expected"] == 0.2
    assert data["root_cause"] == {
        "guess": "service=api", "reason": "earliest signal furthest upstream: service=api has no dependencies",
        "line": ("http_errors_ratio on service=api, instance=web-1: http_errors_ratio moved first, at 14:00:00, "
                 "2m 00s before http_request_duration_seconds")}
    assert [(r["rule"], r["status"], r["rc"], r["reason"]) for r in data["remediation"]] == [
        ("restart-api", "not_fixed", 0, "signals not quiet for 300s by the deadline")]
    assert data["timeline"][0]["kind"] == "opened"
    assert data["signals"][0]["unit"] == "s" and data["signals"][1]["unit"] == "%"


def test_html_summary_embeds_one_plot_per_top_signal(store):
    incident = make_incident(store)
    html = render(store, incident.id, "html", base_url=BASE, prometheus_url=PROM)
    plots = re.findall(r'<figure class="plot">\n(<svg .*?</svg>)', html, re.S)
    assert len(plots) == 2 and all('role="img"' in svg for svg in plots)
    assert "<b>Root cause:</b>" in html and "<h2>Timeline</h2>" in html
    assert f'href="{PROM}/graph?g0.expr=' in html


def test_unknown_incident_and_format_are_refused(store):
    with pytest.raises(UnknownIncidentError, match=r"^no incident #99$"):
        render(store, 99, "text")
    incident = make_incident(store, with_hits=False)
    with pytest.raises(ValueError, match=r"^expected a format among text, markdown, json, html, found 'pdf'$"):
        render(store, incident.id, "pdf")


# -- hostile label values ---------------------------------------------------------------------

@pytest.fixture
def hostile(store):
    incident = make_incident(store, labels=HOSTILE)
    store.add_change(ts=T0 - timedelta(minutes=3), kind="deploy<b>", labels={"service": HOSTILE["service"]},
                     description="[x](javascript:alert(3)) <iframe src=//evil>", actor="<svg onload=alert(4)>", now=T0)
    return incident


def test_hostile_labels_are_inert_in_text(store, hostile):
    text = render(store, hostile.id, "text", base_url=BASE)
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[31mred\\u202eevil" in text
    # one label value never starts a new line of its own
    assert all(not line.startswith("red") for line in text.splitlines())


def test_hostile_labels_are_inert_in_markdown(store, hostile):
    text = render(store, hostile.id, "markdown", base_url=BASE, prometheus_url=PROM)
    html = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").render(text)
    for bad in ("<script", "<img", "<iframe", "<svg", "<b>", "evil.example\"", "<strong>web-1"):
        assert bad not in html, bad
    # the only links are ours: the incident page and the Prometheus graphs
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith((BASE, PROM)) for h in hrefs), hrefs
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "**web-1**[click](http://evil.example)" in re.sub(r"<[^>]+>", "", html).replace("&amp;", "&")


def test_hostile_labels_are_inert_in_json(store, hostile):
    text = render(store, hostile.id, "json")
    assert "<" not in text and ">" not in text and "\x1b" not in text
    assert json.loads(text)["labels"] == HOSTILE


def test_hostile_labels_are_escaped_in_html(store, hostile):
    html = render(store, hostile.id, "html", base_url=BASE)
    for bad in ("<script", "<img src=x", "<iframe", "deploy<b>"):
        assert bad not in html, bad
    assert html.count("<svg ") == html.count('<figure class="plot">') == 2  # the plots, and nothing else
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


@pytest.mark.parametrize("fmt", ["text", "markdown", "json", "html"])
def test_times_an_older_agent_stored_out_of_range_still_render(store, fmt):
    # Before times were normalised on the way in, an alert could store year 1 and year 9999.
    incident = make_incident(store, with_hits=False)
    with store.transaction() as conn:
        conn.execute("UPDATE incidents SET started_at = ?, detected_at = ?, resolved_at = ?, status = 'resolved' "
                     "WHERE id = ?", (-62135596800.0, 253402300799.0, 253402300799.0, incident.id))
        conn.execute("UPDATE incident_episodes SET started_at = ?, detected_at = ?, resolved_at = ? "
                     "WHERE incident_id = ?", (-62135596800.0, 253402300799.0, 253402300799.0, incident.id))
        conn.execute("UPDATE incident_signals SET first_at = ?, last_at = ? WHERE incident_id = ?",
                     (-62135596800.0, 253402300799.0, incident.id))
    text = render(store, incident.id, fmt, base_url=BASE, prometheus_url=PROM)
    assert "1970-01-01" in text and "9000-01-01" in text  # clamped to the documented range
