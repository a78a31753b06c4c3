"""Two agents on one real PostgreSQL, and the faults of a shared store: a clock hours off, a
server restarted under a playbook, an agent frozen holding the leases' lock, a server down or
hung. Each agent is a real ``aiops run`` process; faults inside one come from
``tests/agent/fault_agent.py``, faults of the server from the test (pg_ctl, SIGSTOP)."""

from __future__ import annotations

import json
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunMode, RunStatus
from agent.store import Store
from tests.conftest import free_port, wait_until
from tests.fixtures.fleet import JOB, AgentProcess, TextExporter, gauges_text
from tests.fixtures.postgres import PostgresServer, signal_server, start_again, stop_postgres
from tests.remediations.conftest import HOLD, header

TOKEN = "tok-0c41d7e2b95a3f68"
METRIC = "shop_queue_depth"
NORMAL, FAULT = 10.0, 500.0

pytestmark = pytest.mark.slow


def config_text(*, port: int, store_url: str, exporter: TextExporter, work: Path, interval: str) -> str:
    """One shard, a threshold on the exporter's queue, a rule that runs a playbook held until the
    test releases it; short PostgreSQL timeouts, so a fault shows within a test."""
    return textwrap.dedent(f"""\
        agent: {{interval: {interval}, unhealthy_after: 100}}
        http: {{port: {port}, token: "${{AIOPS_API_TOKEN}}"}}
        store: {{url: "{store_url}", lock_timeout: 1s, statement_timeout: 30s, idle_in_transaction_timeout: 3s,
                 connect_timeout: 2s}}
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
              params: {{upper: 100, for_points: 1, of_points: 1}}
          slos: []
          drift: []
        incidents: {{correlation_labels: [service], corroboration: [], persistence: [],
                     topology: {{depends_on: {{}}, hosts: {{}}}}}}
        notify: {{channels: {{}}, routes: []}}
        remediation:
          playbook_dir: {work / 'playbooks'}
          limits: {{cooldown: 0s}}
          verify: {{period: 2s, deadline: 5m}}
          rules:
            - name: drain-queue
              match: {{labels: {{service: shop}}}}
              playbook: hold.yml
              mode: auto
              vars: {{runs_log: "{work / 'runs.log'}", release: "{work / 'release'}"}}
        models: []
        """)


class Pair:
    """Agents of shard 0/1 on ``server``'s database ``aiops``, fed by one exporter."""

    def __init__(self, root: Path, env: dict[str, str], server: PostgresServer, interval: str = "2s") -> None:
        self.root, self.env, self.server, self.interval = root, env, server, interval
        self.url = server.url("aiops")
        self.exporter = TextExporter()
        self.set(NORMAL)
        self.work = root / "work"
        (self.work / "playbooks").mkdir(parents=True)
        (self.work / "playbooks" / "hold.yml").write_text(header() + HOLD)
        self.agents: list[AgentProcess] = []

    def set(self, value: float) -> None:
        self.exporter.set(gauges_text(METRIC, [{"service": "shop", "host": "h1"}], [value]))

    def start(self, name: str, **faults: str) -> AgentProcess:
        port = free_port()
        text = config_text(port=port, store_url=self.url, exporter=self.exporter, work=self.work,
                           interval=self.interval)
        agent = AgentProcess(self.root / name, self.env, text, shard="0/1", port=port, token=TOKEN,
                             faults={k.upper(): v for k, v in faults.items()})
        self.agents.append(agent)
        return agent

    def store(self) -> Store:
        return Store(self.url)

    def close(self) -> None:
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGCONT)
            agent.kill()
            agent.stop()
        self.exporter.stop()


@pytest.fixture
def pair(tmp_path: Path, subprocess_env: dict[str, str], own_postgres: PostgresServer) -> Iterator[Pair]:
    made = Pair(tmp_path, subprocess_env, own_postgres)
    yield made
    made.close()


def role(agent: AgentProcess) -> str:
    return agent.get("/healthz").json()["role"]


def takeovers(store: Store) -> list[str]:
    """Who took the shard's lease, in order (the holder ids of ``lease.taken`` audit entries)."""
    return [e.actor for e in store.audit_entries() if e.action == "lease.taken" and e.subject == "shard:0/1"]


def holder_of(agent: AgentProcess) -> str:
    return agent.events("agent.started")[0]["holder"]


def test_a_standby_whose_clock_runs_two_hours_fast_neither_steals_the_lease_nor_strands_it(pair, tmp_path):
    fast = tmp_path / "fast-clock"
    fast.write_text("7200")
    healthy = pair.start("healthy")
    healthy.wait_event("cycle.done", timeout_s=90)
    skewed = pair.start("skewed", fault_clock_file=str(fast))
    skewed.wait_event("agent.standby", timeout_s=90)
    # Eight renewal rounds of both (two intervals): the healthy leader keeps its lease.
    healthy.wait_event("cycle.done", times=len(healthy.events("cycle.done")) + 8)
    assert (role(healthy), role(skewed)) == ("leader", "standby")
    assert skewed.events("agent.active") == []

    # The skewed agent takes over from a dead leader as any other would ...
    healthy.kill()
    skewed.wait_event("agent.active", timeout_s=30)
    # ... and when it dies in turn, its lease rows expire by the store's clock, not two hours on.
    third = pair.start("third")
    third.wait_event("agent.standby", timeout_s=90)
    skewed.kill()
    third.wait_event("agent.active", timeout_s=30)
    store = pair.store()
    try:
        assert takeovers(store) == [holder_of(healthy), holder_of(skewed), holder_of(third)]
    finally:
        store.dispose()


def test_a_server_restarted_during_a_playbook_keeps_the_runs_outcome(pair):
    leader = pair.start("leader")
    leader.wait_event("cycle.done", timeout_s=90)
    standby = pair.start("standby")
    standby.wait_event("agent.standby", timeout_s=90)
    pair.set(FAULT)
    wait_until(lambda: (pair.work / "runs.log").exists(), 60, message="the playbook to start holding")

    stop_postgres(pair.server, mode="fast")  # every session ends with AdminShutdown
    start_again(pair.server)
    (pair.work / "release").touch()  # rc 0, written to a store that just came back
    pair.set(NORMAL)

    store = pair.store()
    try:
        def outcome() -> tuple[list[RunStatus], list[IncidentStatus]]:
            try:
                return ([r.status for r in store.list_runs(mode=RunMode.APPLY)],
                        [i.status for i in store.list_incidents()])
            except Exception:  # the test's own session may meet the restart too
                store.dispose()
                return [], []

        wait_until(lambda: outcome() == ([RunStatus.VERIFIED], [IncidentStatus.RESOLVED]), 90,
                   message=f"the run verified (runs, incidents: {outcome()})\n{leader.text()[-3000:]}")
        (incident,) = store.list_incidents()
        assert incident.resolution == "remediation"
        (run,) = store.list_runs(mode=RunMode.APPLY)
        assert run.rc == 0
        statuses = [e.action for e in store.audit_entries() if e.subject == f"run:{run.id}"]
        assert "remediation.failed" not in statuses
    finally:
        store.dispose()


def test_an_agent_frozen_holding_the_leases_lock_does_not_block_failover(pair, tmp_path):
    trigger = tmp_path / "freeze-now"
    frozen = pair.start("frozen", fault_freeze_file=str(trigger))
    frozen.wait_event("cycle.done", timeout_s=90)
    standby = pair.start("standby")
    standby.wait_event("agent.standby", timeout_s=90)
    trigger.touch()  # the next renewal stops the process inside the leases' transaction
    wait_until(lambda: (tmp_path / "freeze-now.frozen").exists(), 30, message="the agent to freeze")
    assert frozen.events("lease.renew_failed") == []  # frozen, not failing
    # The server ends the frozen session (idle in transaction past 3 s), freeing the lock; the
    # lease then expires by the store's clock and the standby takes it.
    standby.wait_event("agent.active", timeout_s=60)
    wait_until(lambda: role(standby) == "leader", 30, message="the standby to lead")


def alerts_body(n: int = 1) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "aiops",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
        "alerts": [{"status": "firing", "labels": {"alertname": "Down", "instance": f"h{i}"},
                    "startsAt": "2026-03-02T12:00:00Z"} for i in range(n)]}).encode()


def test_with_the_server_down_or_hung_webhooks_get_503_and_healthz_answers(pair):
    leader = pair.start("leader")
    leader.wait_event("cycle.done", timeout_s=90)
    standby = pair.start("standby")
    standby.wait_event("agent.standby", timeout_s=90)
    assert leader.post_alerts(alerts_body()).status_code == 200

    stop_postgres(pair.server, mode="fast")
    answer = leader.post_alerts(alerts_body())
    assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "5"), answer.text
    assert answer.json() == {"detail": "the store cannot be reached now; try again"}
    assert leader.get("/healthz").status_code in (200, 503)
    start_again(pair.server)
    wait_until(lambda: leader.post_alerts(alerts_body()).status_code == 200, 30, message="webhooks accepted again")

    # Hung: every server process stopped, sessions open, nothing answers.
    blocked = len(leader.events("lease.round_blocked"))
    signal_server(pair.server, signal.SIGSTOP)
    try:
        leader.wait_event("lease.round_blocked", times=blocked + 1, timeout_s=30)
        for agent in (leader, standby):
            health = agent.get("/healthz")  # answers (within requests' 5 s), from memory
            assert health.status_code in (200, 503) and health.json()["holder"]
        answer = leader.post_alerts(alerts_body(), timeout_s=5)
        assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "5"), answer.text
        metrics = leader.get("/metrics").text  # the gauges read from the store are left out, not waited for
        blocked_total = [line for line in metrics.splitlines() if line.startswith("aiops_lease_rounds_blocked_total ")]
        assert blocked_total and float(blocked_total[0].split()[1]) >= 1
        leader.wait_event("lease.round_blocked", times=blocked + 3, timeout_s=30)  # counted while it lasts
    finally:
        signal_server(pair.server, signal.SIGCONT)
    wait_until(lambda: _accepted(leader), 60, message="webhooks accepted once the server answers")


def _accepted(agent: AgentProcess) -> bool:
    try:
        return agent.post_alerts(alerts_body(), timeout_s=10).status_code == 200
    except requests.RequestException:
        return False
