"""Shard agents as real processes on one PostgreSQL store act as one agent: a fault on series of
both shards opens one incident, runs its playbook once and notifies once."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.flow.samples import shard_of
from agent.store import Store
from tests.conftest import free_port, wait_until
from tests.fixtures.fleet import JOB, AgentProcess, TextExporter, gauges_text, scrape_series_id
from tests.fixtures.servers import RecordingServer
from tests.remediations.conftest import TOUCH, header

TOKEN = "tok-5b1e0c2f9a7d4e83"
METRIC = "shop_queue_depth"
NORMAL, FAULT, UPPER = 10.0, 500.0, 100.0

pytestmark = pytest.mark.slow


def fleet_config(*, port: int, store_url: str, exporter: TextExporter, webhook: RecordingServer,
                 playbooks: Path, runs_log: Path) -> str:
    """Every agent's config but its HTTP port: one store, one exporter, a threshold detector that
    judges from the first scrape, one rule and one webhook route."""
    return textwrap.dedent(f"""\
        agent: {{interval: 1s, unhealthy_after: 100}}
        http: {{port: {port}, token: "${{AIOPS_API_TOKEN}}"}}
        store: {{url: "{store_url}"}}
        sources:
          kind: scrape
          window: 1m
          scrape: {{self_metrics: false, targets: [{{name: {JOB}, url: "{exporter.url}"}}]}}
        detectors:
          rules:
            - kind: threshold
              name: depth_limit
              match: [{{metric: {METRIC}}}]
              min_history: 0s
              params: {{upper: {UPPER}, for_points: 1, of_points: 1}}
          slos: []
          drift: []
        incidents:
          correlation_labels: [service]
          corroboration: []
          persistence: []
          topology: {{depends_on: {{}}, hosts: {{}}}}
        notify:
          retry_initial: 1s
          channels: {{hook: {{type: webhook, webhook_url: "{webhook.url('/hook')}"}}}}
          routes: [{{channels: [hook], min_severity: info, events: [opened]}}]
        remediation:
          playbook_dir: {playbooks}
          limits: {{cooldown: 0s}}
          rules:
            - name: drain-queue
              match: {{labels: {{service: shop}}}}
              playbook: touch.yml
              mode: auto
              vars: {{runs_log: "{runs_log}", dest: "{runs_log.parent / 'fixed.txt'}", content: drained}}
        models: []
        """)


@pytest.fixture
def fleet(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(shard: str, config: Callable[[int], str], name: str) -> AgentProcess:
        port = free_port()
        agent = AgentProcess(tmp_path / name, subprocess_env, config(port), shard=shard, port=port, token=TOKEN)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()
        agent.stop()


def test_a_fault_across_two_shards_opens_one_incident_runs_once_and_notifies_once(
        postgres_url, fleet, tmp_path, webhook):
    exporter = TextExporter()
    try:
        # Queues on four hosts of one service, and more until each shard owns at least two.
        labels: list[dict[str, str]] = []
        owners: list[int] = []
        while len(labels) < 4 or min(owners.count(0), owners.count(1)) < 2:
            lab = {"service": "shop", "host": f"h{len(labels)}"}
            labels.append(lab)
            owners.append(shard_of(scrape_series_id(METRIC, lab, exporter), 2))
        exporter.set(gauges_text(METRIC, labels, [NORMAL] * len(labels)))
        playbooks = tmp_path / "playbooks"
        playbooks.mkdir()
        (playbooks / "touch.yml").write_text(header() + TOUCH)
        runs_log = tmp_path / "work" / "runs.log"
        runs_log.parent.mkdir()

        def config(port: int) -> str:
            return fleet_config(port=port, store_url=postgres_url, exporter=exporter, webhook=webhook,
                                playbooks=playbooks, runs_log=runs_log)

        agents = [fleet(f"{i}/2", config, f"shard{i}") for i in range(2)]
        for agent in agents:
            agent.wait_event("cycle.done", timeout_s=60)
            assert all(e["hits"] == "0" for e in agent.events("cycle.done"))
        # Each agent judged only its own shard's series.
        for i, agent in enumerate(agents):
            assert agent.events("cycle.done")[-1]["series"] == str(owners.count(i))

        exporter.set(gauges_text(METRIC, labels, [FAULT] * len(labels)))  # the fault hits every host
        for agent in agents:
            wait_until(lambda: any(e["hits"] != "0" for e in agent.events("cycle.done")), 30,
                       message=f"hits on shard {agent.shard}")
        wait_until(lambda: runs_log.exists() and runs_log.read_text().strip(), 90, message="the playbook run")
        wait_until(lambda: webhook.requests, 30, message="the notification")
        # Let every agent run two more cycles on the fault: nothing more may open, run or be sent.
        for agent in agents:
            agent.wait_event("cycle.done", times=len(agent.events("cycle.done")) + 2)

        store = Store(postgres_url)
        try:
            incidents = store.list_incidents()
            assert len(incidents) == 1
            (incident,) = incidents
            signals = {s.series_id for s in store.get_incident(incident.id).signals}
            assert {shard_of(sid, 2) for sid in signals} == {0, 1}  # both shards' hits joined it
            assert len(signals) == len(labels)
            runs = store.list_runs(incident_id=incident.id)
            assert [(r.rule, r.mode.value) for r in runs] == [("drain-queue", "apply")]
        finally:
            store.dispose()
        assert len(runs_log.read_text().splitlines()) == 1  # the playbook ran once
        # Each agent says which leases it holds: its shard's, and one of them the lead.
        roles = []
        for agent in agents:
            metrics = agent.get("/metrics")
            assert metrics.status_code == 200
            assert f'aiops_lease_held{{lease="shard:{agent.shard}"}} 1.0' in metrics.text
            roles.append(agent.get("/healthz").json()["role"])
        assert sorted(roles) == ["active", "leader"]
        assert [(r.path, r.json()["event"]) for r in webhook.requests] == [("/hook", "opened")]
        assert webhook.requests[0].json()["incident_id"] == incident.id
    finally:
        exporter.stop()
