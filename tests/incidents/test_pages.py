"""The read-only incident pages, served by the HTTP app and looked at in headless Chromium."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from agent.api import create_app
from agent.context import Context
from agent.incidents.formats import render
from agent.metrics import Metrics
from tests.notify.incident_data import HOSTILE, make_incident


@pytest.fixture
def client(make_config, store, tmp_path):
    config = make_config("http:\n  public_url: http://aiops.example:9847\nnotify:\n  prometheus_url: http://prom:9090\n")
    ctx = Context(config=config, store=store, state_dir=tmp_path / "state", metrics=Metrics())
    with TestClient(create_app(ctx)) as client:
        yield client


def test_incident_list_links_each_incident(client, store):
    first = make_incident(store, with_hits=False)
    second = make_incident(store, labels={"service": "billing"}, with_hits=False)
    response = client.get("/incidents")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<p>2 open, newest first (showing at most 200).</p>" in response.text
    links = re.findall(r'<a href="(/incidents/\d+)">\d+</a>', response.text)
    assert links == [f"/incidents/{second.id}", f"/incidents/{first.id}"]  # same start: newest id first


def test_incident_page_shows_the_summary_with_plots(client, store):
    incident = make_incident(store)
    response = client.get(f"/incidents/{incident.id}")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    text = response.text
    assert len(re.findall(r'<figure class="plot">\n<svg xmlns="http://www.w3.org/2000/svg" ', text)) == 2
    assert 'href="http://prom:9090/graph?g0.expr=http_request_duration_seconds%7B' in text
    assert "<h1>#1 http_request_duration_seconds 4.2x expected on service=api, instance=web-1" in text


def test_unknown_incident_page_is_404(client):
    response = client.get("/incidents/42")
    assert response.status_code == 404
    assert response.json() == {"detail": "no incident #42"}


def test_pages_are_read_only(client, store):
    incident = make_incident(store, with_hits=False)
    assert client.post(f"/incidents/{incident.id}").status_code == 405
    assert client.delete(f"/incidents/{incident.id}").status_code == 405


def test_hostile_labels_are_escaped_on_the_list_page(client, store):
    make_incident(store, labels=HOSTILE, with_hits=False)
    text = client.get("/incidents").text
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.slow
def test_html_summary_reads_right_in_headless_chromium(store, tmp_path, screenshot, ocr):
    incident = make_incident(store)
    page = tmp_path / "incident.html"
    page.write_text(render(store, incident.id, "html", base_url="http://aiops.example:9847",
                           prometheus_url="http://prom:9090"))
    words = ocr(screenshot(page, width=1280, height=1600))
    for expected in ("#1 http_request_duration_seconds 4.2x expected on service=ap",
                     "began 2026-11-24 14:00:00 utc, detected 14:12:00 (mttd 12m 00s)",
                     "next: no playbook is set for this",
                     "root cause: http_errors_ratio on service=api, instance=web-1: http_errors_ratio moved first",
                     "signals", "suspect changes", "timeline", "observed", "expected band", "anomalous"):
        assert expected in words, (expected, words)


@pytest.mark.slow
def test_the_daemon_serves_the_page_and_its_plots_show_under_its_csp(make_config, store, tmp_path, screenshot, ocr):
    from agent.daemon import HttpServer
    from tests.conftest import free_port

    config = make_config(f"http:\n  port: {free_port()}\n")
    ctx = Context(config=config, store=store, state_dir=tmp_path / "state", metrics=Metrics())
    incident = make_incident(store, labels={"service": "api", "instance": "web-1"})
    server = HttpServer(ctx, None)
    server.start()
    try:
        words = ocr(screenshot(f"http://127.0.0.1:{server.port}/incidents/{incident.id}", name="live.png",
                               width=1280, height=1400))
    finally:
        server.stop()
    assert "#1 http_request_duration_seconds 4.2x expected" in words
    # the legend is drawn inside the SVG: the inline plots show despite default-src 'none'
    assert "expected band" in words and "anomalous" in words
