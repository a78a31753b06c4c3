"""Alertmanager floods a lone agent on its SQLite store (a real ``aiops run`` process, cycling
every second): one webhook of thousands of alerts opens at most ``max_new_per_cycle`` incidents
and one storm, says what Alertmanager truncated, and costs the agent neither its cycles nor its
role; a sustained stream of webhooks is answered without a 503 and without a change of role."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.store import STORE_FILE, Store
from tests.conftest import free_port
from tests.fixtures.fleet import JOB, AgentProcess, TextExporter, gauges_text

TOKEN = "tok-a63f0e5d9c1b4827"

pytestmark = pytest.mark.slow


def webhook(alerts: list[dict], *, truncated: int = 0, group: str = "g") -> bytes:
    return json.dumps({
        "version": "4", "groupKey": f"{{}}:{{group=\"{group}\"}}", "truncatedAlerts": truncated, "status": "firing",
        "receiver": "aiops", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": alerts}).encode()


def alert(n: int) -> dict:
    return {"status": "firing", "labels": {"alertname": "NodeDown", "instance": f"node{n:06d}:9100",
                                           "severity": "critical"},
            "annotations": {"summary": "node down"}, "startsAt": "2026-03-02T12:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "fingerprint": f"{n:016x}"}


@pytest.fixture
def lone(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[AgentProcess]:
    exporter = TextExporter()
    exporter.set(gauges_text("queue_depth", [{"service": "shop"}], [1.0]))
    port = free_port()
    config = (f"agent: {{interval: 1s, unhealthy_after: 100}}\n"
              f'http: {{port: {port}, token: "${{AIOPS_API_TOKEN}}"}}\n'
              f'sources: {{kind: scrape, scrape: {{self_metrics: false, targets: [{{name: {JOB}, url: "{exporter.url}"}}]}}}}\n')
    agent = AgentProcess(tmp_path / "agent", subprocess_env, config, shard="0/1", port=port, token=TOKEN)
    agent.wait_event("cycle.done", timeout_s=90)
    yield agent
    agent.kill()
    agent.stop()
    exporter.stop()


def no_change_of_role(agent: AgentProcess) -> None:
    for event in ("agent.standby", "lease.lost"):
        assert agent.events(event) == [], f"event={event} in the log:\n{agent.text()[-3000:]}"
    assert agent.get("/healthz").json()["role"] == "leader"


def test_one_webhook_of_thousands_of_alerts_opens_the_cycles_limit_and_one_storm(lone: AgentProcess):
    cycles_before = len(lone.events("cycle.done"))
    answers: list = []
    sender = threading.Thread(target=lambda: answers.append(
        lone.post_alerts(webhook([alert(n) for n in range(5000)], truncated=2000), timeout_s=300)))
    sender.start()
    healthz = []
    while sender.is_alive():  # /healthz answers while the body is read and placed
        healthz.append(lone.get("/healthz"))
        sender.join(0.2)
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["firing"], body["truncated"]) == (5000, 5000, 2000)
    assert len(body["opened"]) == 51 and body["storm"] == body["opened"][-1]
    assert healthz and all(h.status_code == 200 and h.json()["role"] == "leader" for h in healthz)

    store = Store(lone.home / "state" / STORE_FILE)
    try:
        assert len(store.list_incidents()) == 51
        storm = store.get_incident(body["storm"])
        assert storm.labels == {"aiops_storm": "true"} and len(storm.signals) == 4950
        (said,) = [e for e in store.incident_events(storm.id) if e.kind == "alerts_truncated"]
        assert said.message == ('Alertmanager left 2000 alerts of group {}:{group="g"} out of its webhook '
                                "(its max_alerts): they are not in this incident")
    finally:
        store.close()
    metrics = lone.get("/metrics").text
    assert "aiops_alerts_truncated_total 2000.0" in metrics
    assert len(lone.events("alerts.truncated")) == 1
    # The agent kept cycling, and leading, through it.
    lone.wait_event("cycle.done", times=cycles_before + 3, timeout_s=30)
    no_change_of_role(lone)


def test_a_stream_of_webhooks_is_answered_without_a_503_and_the_lone_agent_keeps_its_role(lone: AgentProcess):
    # Alertmanager in an outage: 10 groups resent over and over, each post bringing 10 alerts
    # never seen before (4,000 in all), from 4 senders at once, while the agent cycles.
    groups = [[alert(g * 10 + i) for i in range(10)] for g in range(10)]
    fresh = itertools.count(10_000)
    cycles_before = len(lone.events("cycle.done"))
    lock = threading.Lock()

    def post(n: int) -> int:
        with lock:
            alerts = groups[n % 10] + [alert(next(fresh)) for _ in range(10)]
        return lone.post_alerts(webhook(alerts, group=str(n % 10)), timeout_s=60).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(post, range(400)))
    assert statuses.count(200) == 400, ({s: statuses.count(s) for s in set(statuses)},
                                        lone.events("api.store_unavailable")[:3])
    assert len(lone.events("cycle.done")) >= cycles_before + 2  # cycles ran while it was flooded
    lone.wait_event("cycle.done", times=len(lone.events("cycle.done")) + 2, timeout_s=30)
    no_change_of_role(lone)
    assert lone.events("lease.renew_failed") == []
