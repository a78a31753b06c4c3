"""Shard agents as real processes on one PostgreSQL store act as one agent: a fault on series of
both shards opens one incident, runs its playbook once and notifies once."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunStatus
from agent.flow.samples import shard_of
from agent.store import Store
from tests.conftest import free_port, wait_until
from tests.fixtures.fleet import (
    JOB,
    AgentProcess,
    TextExporter,
    gauges_text,
    scrape_series_id,
)
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
          verify: {{period: 3s, deadline: 60s}}
          rules:
            - name: drain-queue
              match: {{labels: {{service: shop}}}}
              playbook: touch.yml
              mode: auto
              vars: {{runs_log: "{runs_log}", dest: "{runs_log.parent / 'fixed.txt'}", content: drained}}
        models: []
        """)


class Scenario:
    """Queues of service ``shop`` on hosts of both shards (at least two each), served by a local
    exporter; agents started with ``start`` share ``postgres_url``, the webhook and the playbook."""

    def __init__(self, root: Path, env: dict[str, str], store_url: str, webhook: RecordingServer) -> None:
        self.root, self.env, self.store_url, self.webhook = root, env, store_url, webhook
        self.exporter = TextExporter()
        self.labels: list[dict[str, str]] = []
        self.owners: list[int] = []
        while len(self.labels) < 4 or min(self.owners.count(0), self.owners.count(1)) < 2:
            lab = {"service": "shop", "host": f"h{len(self.labels)}"}
            self.labels.append(lab)
            self.owners.append(shard_of(scrape_series_id(METRIC, lab, self.exporter), 2))
        self.set(NORMAL)
        self.playbooks = root / "playbooks"
        self.playbooks.mkdir()
        (self.playbooks / "touch.yml").write_text(header() + TOUCH)
        self.runs_log = root / "work" / "runs.log"
        self.runs_log.parent.mkdir()
        self.agents: list[AgentProcess] = []

    def set(self, value: float) -> None:
        self.exporter.set(gauges_text(METRIC, self.labels, [value] * len(self.labels)))

    def start(self, shard: str, name: str) -> AgentProcess:
        port = free_port()
        text = fleet_config(port=port, store_url=self.store_url, exporter=self.exporter, webhook=self.webhook,
                            playbooks=self.playbooks, runs_log=self.runs_log)
        agent = AgentProcess(self.root / name, self.env, text, shard=shard, port=port, token=TOKEN)
        self.agents.append(agent)
        return agent

    def playbook_runs(self) -> list[str]:
        return self.runs_log.read_text().splitlines() if self.runs_log.exists() else []

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()
            agent.stop()
        self.exporter.stop()


@pytest.fixture
def scenario(tmp_path: Path, subprocess_env: dict[str, str], postgres_url: str,
             webhook: RecordingServer) -> Iterator[Scenario]:
    made = Scenario(tmp_path, subprocess_env, postgres_url, webhook)
    yield made
    made.close()  # before postgres_url empties the database


def fault(scenario: Scenario, agents: list[AgentProcess]) -> None:
    """The fault on every host; returns once each shard's agent has hits and the playbook started."""
    scenario.set(FAULT)
    for agent in agents:
        wait_until(lambda agent=agent: any(e["hits"] != "0" for e in agent.events("cycle.done")), 30,
                   message=f"hits on shard {agent.shard}")
    wait_until(scenario.playbook_runs, 90, message="the playbook run")


def more_cycles(agents: list[AgentProcess], n: int = 2) -> None:
    for agent in agents:
        agent.wait_event("cycle.done", times=len(agent.events("cycle.done")) + n)


def one_incident_one_run(scenario: Scenario) -> int:
    store = Store(scenario.store_url)
    try:
        incidents = store.list_incidents()
        assert len(incidents) == 1
        (incident,) = incidents
        signals = {s.series_id for s in store.get_incident(incident.id).signals}
        assert {shard_of(sid, 2) for sid in signals} == {0, 1}  # both shards' hits joined it
        assert len(signals) == len(scenario.labels)
        runs = store.list_runs(incident_id=incident.id)
        assert [(r.rule, r.mode.value) for r in runs] == [("drain-queue", "apply")]
    finally:
        store.dispose()
    assert len(scenario.playbook_runs()) == 1  # the playbook ran once
    return incident.id


def test_a_fault_across_two_shards_opens_one_incident_runs_once_and_notifies_once(scenario):
    agents = [scenario.start(f"{i}/2", f"shard{i}") for i in range(2)]
    for agent in agents:
        agent.wait_event("cycle.done", timeout_s=60)
        assert all(e["hits"] == "0" for e in agent.events("cycle.done"))
    # Each agent judged only its own shard's series.
    for i, agent in enumerate(agents):
        assert agent.events("cycle.done")[-1]["series"] == str(scenario.owners.count(i))

    fault(scenario, agents)
    wait_until(lambda: scenario.webhook.requests, 30, message="the notification")
    more_cycles(agents)  # nothing more may open, run or be sent
    incident = one_incident_one_run(scenario)
    assert [(r.path, r.json()["event"], r.json()["incident_id"]) for r in scenario.webhook.requests] == [
        ("/hook", "opened", incident)]
    # Each agent says which leases it holds: its shard's, and one of them the lead.
    roles = []
    for agent in agents:
        metrics = agent.get("/metrics")
        assert metrics.status_code == 200
        assert f'aiops_lease_held{{lease="shard:{agent.shard}"}} 1.0' in metrics.text
        roles.append(agent.get("/healthz").json()["role"])
    assert sorted(roles) == ["active", "leader"]

    # The fault ends: the leader verifies the run from both shards' word (the other agent's
    # signals through the store), and the incident resolves as fixed by the remediation.
    scenario.set(NORMAL)
    store = Store(scenario.store_url)
    try:
        wait_until(lambda: store.get_incident(incident).status is IncidentStatus.RESOLVED, 60,
                   message="the incident resolved")
        assert [r.status for r in store.list_runs(incident_id=incident)] == [RunStatus.VERIFIED]
        assert store.get_incident(incident).resolution == "remediation"
    finally:
        store.dispose()


def test_a_standby_takes_over_the_killed_leaders_shard_and_lead_without_running_the_playbook_again(scenario):
    agents = [scenario.start(f"{i}/2", f"shard{i}") for i in range(2)]
    for agent in agents:
        agent.wait_event("cycle.done", timeout_s=60)
    leader = next(a for a in agents if a.get("/healthz").json()["role"] == "leader")
    standby = scenario.start(leader.shard, "standby")
    standby.wait_event("agent.standby", timeout_s=60)
    fault(scenario, agents)

    leader.kill()  # the playbook under way, the message perhaps not yet sent
    standby.wait_event("agent.active", timeout_s=20)
    survivors = [a for a in agents if a is not leader] + [standby]
    wait_until(lambda: scenario.webhook.requests, 30, message="the notification")
    more_cycles(survivors, 3)  # the new leader recovered what the dead one left, and went on
    assert sorted(a.get("/healthz").json()["role"] for a in survivors) == ["active", "leader"]
    incident = one_incident_one_run(scenario)  # an interrupted run is not run again
    # Delivery is at least once: a leader killed between sending and recording it leaves the
    # message due for the next, under the same Idempotency-Key, so the receiver sees one message.
    sent = scenario.webhook.requests
    assert {(r.json()["event"], r.json()["incident_id"]) for r in sent} == {("opened", incident)}
    assert len({r.headers["idempotency-key"] for r in sent}) == 1
