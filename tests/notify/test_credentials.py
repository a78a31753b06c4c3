"""Credentials never travel in links: a password in any URL of the config is refused with the key
to use instead, and a user name (which the config allows) is left out of every graph link, page
and notification."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.config import parse_config
from agent.context import Context
from agent.errors import ConfigError
from agent.incidents.catalog import catalog_of, link_template
from agent.incidents.pages import render_html
from agent.incidents.summary import build
from agent.metrics import Metrics
from agent.notify import notify_once
from agent.store import Store
from tests.notify.incident_data import T0, make_incident

QUERY = "    queries:\n      - name: up\n        expr: up\n"


@pytest.mark.parametrize("text, where, instead", [
    (f"sources:\n  kind: prometheus\n  prometheus:\n    url: http://reader:s3cret@prom:9090\n{QUERY}",
     "sources.prometheus.url", "give sources.prometheus.username, and password_file or password: ${ENV_VAR}"),
    ("sources:\n  scrape:\n    targets:\n      - name: node\n        url: http://scraper:s3cret@h:9100/metrics\n",
     "sources.scrape.targets[0].url", "give the target's username, and password_file or password: ${ENV_VAR}"),
    ("http:\n  public_url: https://viewer:s3cret@aiops.example\n", "http.public_url",
     "links are read by everyone who gets a message: give the URL people open"),
    ("notify:\n  prometheus_url: http://viewer:s3cret@prom:9090\n", "notify.prometheus_url",
     "graph links are read by everyone who gets a message: give the URL people open"),
    ("notify:\n  channels:\n    pd:\n      type: pagerduty\n      routing_key: k\n"
     "      url: https://u:s3cret@events.example/v2/enqueue\n", "notify.channels.pd.url",
     "PagerDuty authenticates the routing_key: give it as routing_key_file or routing_key: ${ENV_VAR}"),
], ids=["prometheus", "scrape-target", "public-url", "graph-links", "pagerduty"])
def test_a_password_in_a_url_is_refused_with_the_key_to_use(text, where, instead):
    with pytest.raises(ConfigError) as raised:
        parse_config(text, name="agent.yaml")
    [problem] = raised.value.problems
    assert str(problem) == f"agent.yaml: {where}: expected no password in the URL ({instead}), found one"
    assert "s3cret" not in str(raised.value)


def test_a_scrape_target_reads_its_credentials_from_their_own_keys(misbehaving_server, make_config, tmp_path):
    from agent.sources import Collector

    misbehaving_server.respond("# TYPE g gauge\ng 1\n")
    config = make_config("http:\n  enabled: false\nsources:\n  scrape:\n    self_metrics: false\n    targets:\n"
                         f"      - name: app\n        url: {misbehaving_server.url}/metrics\n"
                         "        username: scraper\n        password: s3cret-pass\n")
    ctx = Context.create(config, tmp_path / "state")
    collector = Collector(ctx)
    try:
        collector.collect(T0)
    finally:
        collector.close()
        ctx.store.close()
    assert misbehaving_server.last_headers["Authorization"] == "Basic c2NyYXBlcjpzM2NyZXQtcGFzcw=="


def test_links_in_pages_and_notifications_carry_no_user_name(make_config, tmp_path, webhook):
    config = make_config(
        "http:\n  public_url: http://viewer@aiops.example:9847\n"
        f"sources:\n  kind: prometheus\n  prometheus:\n    url: http://reader@prom.example:9090\n{QUERY}"
        f"notify:\n  channels:\n    hook:\n      type: webhook\n      webhook_url: {webhook.url()}\n"
        "  routes:\n    - channels: [hook]\n")
    store = Store(tmp_path / "state" / "aiops.db")
    try:
        ctx = Context(config=config, store=store, state_dir=tmp_path / "state", metrics=Metrics())
        incident = make_incident(store)
        assert link_template(config).startswith("http://prom.example:9090/graph?g0.expr={expr}")
        summary = build(store, incident.id, base_url=config.http.base_url, catalog=catalog_of(config))
        assert summary.url == f"http://aiops.example:9847/incidents/{incident.id}"
        assert summary.signals[0].graph_url.startswith("http://prom.example:9090/graph?g0.expr=")
        page = render_html(summary, store)
        assert notify_once(ctx, now=T0 + timedelta(minutes=13)).sent == 1
    finally:
        store.close()
    [request] = webhook.requests
    sent = request.body.decode()
    assert "http://prom.example:9090/graph?g0.expr=" in sent and "aiops.example:9847/incidents/" in sent
    for text in (sent, page):
        assert "reader@" not in text and "viewer@" not in text
