"""The sources config section: defaults, the example file, and messages for mistakes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.sources import scrape_targets
from tests.conftest import PYTHON, REPO, free_port

EXAMPLE = REPO / "config" / "agent.example.yaml"


def test_default_is_scrape_of_the_agent_itself_and_a_local_node_exporter():
    config = parse_config("http:\n  port: 9999\n")
    assert config.sources.kind == "scrape"
    assert config.sources.series_limit == 10_000
    assert config.sources.scrape.retention == 8 * 86400
    assert [(t.name, t.url, t.optional) for t in scrape_targets(config)] == [
        ("aiops", "http://127.0.0.1:9999/metrics", True), ("node", "http://127.0.0.1:9100/metrics", True)]


def test_the_example_lists_the_model_queries():
    config = load_config(EXAMPLE)
    queries = {q.name: q for q in config.sources.prometheus.queries}
    assert "histogram_quantile(0.95" in queries["model_latency_p95"].expr
    assert queries["model_prediction_distribution"].kind == "bucket"
    assert queries["model_feature_distribution"].kind == "bucket"
    assert "model_errors_total" in queries["model_error_rate"].expr


@pytest.mark.parametrize("text, message", [
    ("sources:\n  kind: prometheus\n",
     "<config>: sources: expected at least one query in sources.prometheus.queries when kind is prometheus, found none"),
    ("sources:\n  prometheus:\n    url: localhost:9090\n",
     "<config>: sources.prometheus.url: expected an http:// or https:// URL, found 'localhost:9090'"),
    ("sources:\n  scrape:\n    quantiles: [0.5, 1.5]\n",
     "<config>: sources.scrape.quantiles: expected quantiles between 0 and 1 (exclusive), found 1.5"),
    ("sources:\n  prometheus:\n    queries:\n      - {name: a, expr: up}\n      - {name: a, expr: up}\n",
     "<config>: sources.prometheus: expected unique query names, found a more than once"),
    ("sources:\n  scrape:\n    targets:\n      - {name: aiops, url: 'http://x:1/metrics'}\n",
     "<config>: sources.scrape: expected unique target names (aiops is taken by self_metrics), found aiops twice"),
    ("sources:\n  scrape:\n    deadline: 0s\n",
     "<config>: sources.scrape.deadline: expected a number > 0, found 0.0"),
    ("sources:\n  scrape:\n    max_body: lots\n",
     "<config>: sources.scrape.max_body: expected a size such as 512KiB, 16MiB or 10MB, found 'lots'"),
    ("sources:\n  scrape:\n    max_body: 10\n",
     "<config>: sources.scrape.max_body: expected a number >= 1024, found 10"),
])
def test_mistakes_are_named_by_key_path(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == message


def test_scrape_bounds_default_and_read_sizes():
    scrape = parse_config("sources:\n  scrape:\n    max_body: 2MiB\n").sources.scrape
    assert (scrape.timeout, scrape.deadline, scrape.max_body) == (5.0, 10.0, 2 * 2**20)
    assert parse_config("").sources.scrape.max_body == 16 * 2**20
    assert parse_config("sources:\n  scrape:\n    max_body: 10MB\n").sources.scrape.max_body == 10_000_000


def test_once_with_the_example_config_and_nothing_running_fails_naming_each_target(tmp_path: Path, subprocess_env):
    # The example as shipped, but on ports where surely nothing answers (a demo may hold 9100).
    text = EXAMPLE.read_text()
    assert "url: http://127.0.0.1:9100/metrics" in text and "  port: 9847\n" in text
    node, agent = free_port(), free_port()
    text = text.replace("http://127.0.0.1:9100/", f"http://127.0.0.1:{node}/")
    # Copied out of the checkout, its relative playbook_dir would name a directory that is not there.
    text = text.replace("playbook_dir: ../playbooks\n", f"playbook_dir: {REPO / 'playbooks'}\n")
    config = tmp_path / "agent.yaml"
    config.write_text(text.replace("  port: 9847\n", f"  port: {agent}\n"))
    done = subprocess.run(
        [PYTHON, "-m", "agent.cli", "once", "--json", "--config", str(config), "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, env=subprocess_env, cwd=REPO)
    assert done.returncode == 1, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["series"], outcome["failed_stages"]) == (0, [])
    assert outcome["sources_failed"] == [
        {"target": "aiops", "url": f"http://127.0.0.1:{agent}/metrics", "kind": "connection", "error": "connection refused"},
        {"target": "node", "url": f"http://127.0.0.1:{node}/metrics", "kind": "connection", "error": "connection refused"}]
    assert done.stderr.splitlines()[-3:] == [
        "every scrape target failed, nothing was read:",
        f"  aiops at http://127.0.0.1:{agent}/metrics: connection refused (connection)",
        f"  node at http://127.0.0.1:{node}/metrics: connection refused (connection)"]
    assert ("level=info logger=agent.sources.health event=source.down source=scrape target=node "
            f"url=http://127.0.0.1:{node}/metrics kind=connection") in done.stderr
