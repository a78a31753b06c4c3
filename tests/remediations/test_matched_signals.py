"""A run's variables come from the signals that matched its rule: an alert correlated into the same
incident cannot choose what another alert's rule acts on. The alerts arrive as one real
Alertmanager webhook on the agent's own HTTP server; the playbook runs for real."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from agent.daemon import HttpServer
from agent.incidents.summary import build, render_text
from tests.remediations.conftest import T0, audit, run_cycle

INSTANCE = "web-1:9100"


def rule_yaml(work, match: str) -> str:
    return f"""
    limits: {{cooldown: 0s}}
    rules:
      - name: restart-api
        match: {match}
        playbook: touch_direct.yml
        mode: auto
        vars_from_labels: {{label_value: service}}
        vars: {{dest: {work / 'restarted.txt'}, runs_log: {work / 'runs.log'}}}
    """


def alert(name: str, service: str, minutes_before: float) -> dict[str, Any]:
    starts = (T0 - timedelta(minutes=minutes_before)).isoformat().replace("+00:00", "Z")
    return {"status": "firing", "labels": {"alertname": name, "service": service, "instance": INSTANCE},
            "annotations": {}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z"}


@pytest.fixture
def post_webhook() -> Iterator[Any]:
    servers: list[HttpServer] = []

    def post(ctx, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        if not servers:
            servers.append(HttpServer(ctx, None))
            servers[0].start()
        body = {"version": "4", "status": "firing", "receiver": "aiops", "groupKey": "{}:{}", "alerts": alerts}
        answer = requests.post(f"http://127.0.0.1:{servers[0].port}/api/v1/alerts", json=body, timeout=10,
                               headers={"Authorization": "Bearer s3cret-token"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    yield post
    for server in servers:
        server.stop()


def one_incident(ctx, posted: dict[str, Any]) -> Any:
    (incident_id,) = posted["incidents"]
    incident = ctx.store.get_incident(incident_id)
    assert sorted(s.labels["service"] for s in incident.signals) == ["api", "sshd"]
    return incident


def test_an_older_alert_on_the_same_instance_never_chooses_the_unit_restarted(make_ctx, work, post_webhook):
    ctx = make_ctx(rule_yaml(work, "{labels: {service: api}}"))
    incident = one_incident(ctx, post_webhook(ctx, [alert("ApiDown", "api", 1), alert("NoisyThing", "sshd", 10)]))
    assert incident.labels["service"] == "sshd"  # the incident took the older alert's labels

    (run,) = run_cycle(ctx, T0)

    assert run.extravars["label_value"] == "api"
    assert (work / "restarted.txt").read_text() == "api"


def test_a_rule_whose_matching_signals_disagree_on_a_variable_is_refused_and_the_summary_says_so(
        make_ctx, work, post_webhook):
    ctx = make_ctx(rule_yaml(work, f"{{labels: {{instance: '{INSTANCE}'}}}}"))
    incident = one_incident(ctx, post_webhook(ctx, [alert("ApiDown", "api", 1), alert("NoisyThing", "sshd", 10)]))

    assert run_cycle(ctx, T0) == []
    run_cycle(ctx, T0 + timedelta(minutes=1))  # refused again: said once

    reason = ("label service for variable label_value: expected one value among the signals matching the rule, "
              "found 2 ('sshd', 'api'); not choosing one")
    assert ctx.store.list_runs() == [] and not (work / "runs.log").exists()
    assert [e.details["reason"] for e in audit(ctx, "remediation.refused")] == [reason]
    text = render_text(build(ctx.store, incident.id))
    assert f"remediation by agent: rule restart-api matched but was not run: {reason}" in text
    assert f"Next:     rule restart-api was not run ({reason}); fix it by hand: look at the top signal" in text
