"""Benchmark: outgrowing one machine: 4 shard agents x 2,500 series on one PostgreSQL store,
against one agent with the same 10,000 series on SQLite (the embedded default), in the same run.

Every agent is a real ``aiops run`` process. One local exporter serves 10,000 gauges (queue
depths near 10); a threshold rule (upper 100, from the first cycle) watches them, so no history
is needed. Each phase:

- warm-up: the agents cycle on normal values (``--cycles`` cycles each);
- fault: 50 series spread over the 4 shards, all of service ``checkout``, jump to 500. Counted
  once every agent has run two more cycles after the playbook ran: the incidents opened (target
  1: the shards correlate through the shared store), the remediation runs of the playbook
  (target 1: only the leader remediates) and the notifications sent to a local webhook (target 1);
- cycle time: ``event=cycle.done duration_s`` of each agent's log, median per agent (the JSON
  figure is the slowest agent's median) against the configured interval;
- failover (fleet only): a standby for shard 0 is started, the shard's holder is SIGKILLed; from
  the kill to the standby's ``event=agent.active`` line (and the ``lease.taken`` audit entry);
  target at most 2 intervals;
- clock skew (fleet only): a standby for shard 1 whose wall clock runs 2 hours fast waits four of
  the holder's cycles; the ``lease.taken`` entries it wrote for the shard (target 0: leases are
  judged by the store's clock);
- stop: an agent whose collect stage is stuck in a call that ignores SIGTERM (a query to a
  server that stopped answering) gets SIGTERM; seconds until its process is gone, with the
  default ``agent.stop_timeout`` of 10 s (target at most 15);
- ingest: an Alertmanager-style sender posts webhook version 4 payloads (50 alerts each, 200
  alerts in 4 groups resent as Alertmanager repeats them) to ``POST /api/v1/alerts``, alternately
  to 2 agents of the fleet (to the one agent on SQLite), 2 posts in flight, for ``--ingest-s``
  seconds; accepted alerts per second.

Prints each figure and its ratio to the SQLite baseline; the last line is JSON with ``shards``,
``fault_incidents``, ``fault_runs``, ``cycle_s_p50``, ``cycle_interval_s``, ``failover_s``,
``clock_skew_takeovers``, ``stop_s``, ``ingest_alerts_per_s``. An impossible figure (no cycles, a negative time, nothing ingested, an
incident missing) fails loudly.

Run: .venv/bin/python tests/bench/bench_scale.py [--quick] [--series 10000] [--interval 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np
import psycopg
import requests

from agent.flow.samples import shard_of
from agent.store import Store
from tests.fixtures.fleet import (
    JOB,
    AgentProcess,
    TextExporter,
    gauges_text,
    scrape_series_id,
)
from tests.fixtures.postgres import HAVE_POSTGRES, start_postgres, stop_postgres
from tests.fixtures.servers import RecordingServer
from tests.remediations.conftest import TOUCH, header

METRIC = "bench_queue_depth"
NORMAL, FAULT, UPPER = 10.0, 500.0, 100.0
TOKEN = "bench-token-3c9e51"
DATABASE = "aiops"


def fail(message: str) -> None:
    sys.exit(f"impossible: {message}")


def agent_env() -> dict[str, str]:
    """The agents import this checkout, whatever is installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def config_text(*, port: int, store_url: str | None, exporter: TextExporter, hook: RecordingServer,
                playbooks: Path, runs_log: Path, interval_s: float) -> str:
    store = f'store: {{url: "{store_url}"}}\n' if store_url else ""
    return (
        f"agent: {{interval: {interval_s}s, unhealthy_after: 1000}}\n"
        f'http: {{port: {port}, token: "${{AIOPS_API_TOKEN}}"}}\n'
        f"{store}"
        "sources:\n"
        "  kind: scrape\n"
        "  window: 2m\n"
        f'  scrape: {{self_metrics: false, timeout: 10s, deadline: 20s, targets: [{{name: {JOB}, url: "{exporter.url}"}}]}}\n'
        "detectors:\n"
        "  refit: {max_per_cycle: 100000, slices: 1}\n"
        "  gauges: {max_series: 0}\n"
        f"  rules: [{{kind: threshold, name: depth_limit, match: [{{metric: {METRIC}}}], min_history: 0s,\n"
        f"           params: {{upper: {UPPER}, for_points: 1, of_points: 1}}}}]\n"
        "  slos: []\n"
        "  drift: []\n"
        "incidents: {correlation_labels: [service], corroboration: [], persistence: [],\n"
        "            topology: {depends_on: {}, hosts: {}}, max_new_per_cycle: 1000}\n"
        "notify:\n"
        "  retry_initial: 1s\n"
        f'  channels: {{hook: {{type: webhook, webhook_url: "{hook.url("/hook")}"}}}}\n'
        "  routes: [{channels: [hook], min_severity: info, events: [opened], labels: {service: checkout}}]\n"
        "remediation:\n"
        f"  playbook_dir: {playbooks}\n"
        "  limits: {cooldown: 0s}\n"
        "  rules:\n"
        "    - name: drain-queue\n"
        "      match: {labels: {service: checkout}}\n"
        "      playbook: touch.yml\n"
        "      mode: auto\n"
        f'      vars: {{runs_log: "{runs_log}", dest: "{runs_log.parent / "fixed.txt"}", content: drained}}\n'
        "models: []\n")


class Workload:
    """The exporter's series: ``series`` gauges of 50 services, and the fault's series, spread
    evenly over ``shards`` shards, all of service ``checkout``."""

    def __init__(self, exporter: TextExporter, series: int, faulted: int, shards: int) -> None:
        self.exporter = exporter
        rng = np.random.default_rng(3)
        self.labels = [{"service": f"svc{i % 50:02d}", "host": f"h{i:05d}"} for i in range(series)]
        self.values = NORMAL + rng.normal(0, 1, series).round(2)
        by_shard: dict[int, list[int]] = {s: [] for s in range(shards)}
        for i, lab in enumerate(self.labels):
            by_shard[shard_of(scrape_series_id(METRIC, {**lab, "service": "checkout"}, exporter), shards)].append(i)
        # Round-robin over the shards: the fault's series, as even as the hash allows.
        self.faulted = [i for i in itertools.chain.from_iterable(itertools.zip_longest(*by_shard.values()))
                        if i is not None][:faulted]
        for i in self.faulted:
            self.labels[i] = {**self.labels[i], "service": "checkout"}
        self.shards_hit = {shard_of(self.series_id(i), shards) for i in self.faulted}

    def series_id(self, i: int) -> str:
        return scrape_series_id(METRIC, self.labels[i], self.exporter)

    def normal(self) -> None:
        self.exporter.set(gauges_text(METRIC, self.labels, self.values.tolist()))

    def fault(self) -> None:
        values = self.values.copy()
        values[self.faulted] = FAULT
        self.exporter.set(gauges_text(METRIC, self.labels, values.tolist()))


def cycle_durations(agent: AgentProcess) -> list[float]:
    return [float(e["duration_s"]) for e in agent.events("cycle.done")]


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


def more_cycles(agents: Sequence[AgentProcess], n: int, timeout_s: float) -> None:
    for agent in agents:
        agent.wait_event("cycle.done", times=len(agent.events("cycle.done")) + n, timeout_s=timeout_s)


def fault_phase(agents: Sequence[AgentProcess], workload: Workload, store: Store, hook: RecordingServer,
                runs_log: Path, *, cycles: int, interval_s: float) -> dict[str, float]:
    """Warm-up cycles, then the fault: what it opened, ran and sent."""
    timeout = 60 + 20 * interval_s
    for agent in agents:
        agent.wait_event("cycle.done", times=cycles, timeout_s=timeout)
    if any(int(e["hits"]) for a in agents for e in a.events("cycle.done")):
        fail("hits before the fault: the normal values must be quiet")
    before = len(store.list_incidents())
    started = time.monotonic()
    workload.fault()
    wait_for(lambda: runs_log.exists() and runs_log.read_text().strip(), timeout, "the remediation run")
    wait_for(lambda: hook.requests, timeout, "the notification")
    to_act_s = time.monotonic() - started
    more_cycles(agents, 2, timeout)  # nothing more may open, run or be sent
    incidents = store.list_incidents()[: len(store.list_incidents()) - before]
    if not incidents:
        fail("the fault opened no incident, yet a playbook ran")
    signals = {s.series_id for inc in incidents for s in store.get_incident(inc.id).signals}
    runs = sum(len(store.list_runs(incident_id=inc.id)) for inc in incidents)
    return {"incidents": len(incidents), "runs": runs, "playbook_runs": len(runs_log.read_text().splitlines()),
            "notifications": len(hook.requests), "signals": len(signals),
            "signal_shards": len({shard_of(sid, len(agents)) for sid in signals}), "to_act_s": to_act_s}


def cycle_figures(agents: Sequence[AgentProcess]) -> list[float]:
    medians = []
    for agent in agents:
        durations = cycle_durations(agent)
        if not durations:
            fail(f"agent {agent.shard} finished no cycle")
        if min(durations) < 0:
            fail(f"agent {agent.shard} logged a negative cycle time")
        medians.append(statistics.median(durations))
    return medians


STAGE_LINE = re.compile(r'^aiops_stage_duration_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', re.MULTILINE)


def stage_means(agent: AgentProcess) -> str:
    """Mean seconds per stage from the agent's /metrics: where its cycle time goes."""
    answer = agent.get("/metrics")
    if answer.status_code != 200:
        fail(f"agent {agent.shard}: GET /metrics answered {answer.status_code}: {answer.text[:200]}")
    found: dict[str, dict[str, float]] = {}
    for kind, stage, value in STAGE_LINE.findall(answer.text):
        found.setdefault(stage, {})[kind] = float(value)
    return " ".join(f"{stage} {v['sum'] / v['count']:.3f}s" for stage, v in found.items() if v.get("count"))


def alert(group: int, n: int, starts_at: str) -> dict:
    return {"status": "firing", "labels": {"alertname": f"QueueBacklog{group}", "service": f"svc{group:02d}",
                                           "instance": f"h{n:03d}:9100", "severity": "warning"},
            "annotations": {"summary": "queue backlog"}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph", "fingerprint": f"{group:02d}{n:06x}"}


def payloads(groups: int = 4, per_group: int = 50) -> list[bytes]:
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    out = []
    for g in range(groups):
        alerts = [alert(g, n, starts) for n in range(per_group)]
        out.append(json.dumps({
            "version": "4", "groupKey": f'{{}}:{{service="svc{g:02d}"}}', "truncatedAlerts": 0, "status": "firing",
            "receiver": "aiops", "groupLabels": {"service": f"svc{g:02d}"},
            "commonLabels": {"service": f"svc{g:02d}"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093", "alerts": alerts}).encode())
    return out


def ingest(urls: Sequence[str], seconds: float, in_flight: int = 2) -> float:
    """Accepted alerts per second: ``in_flight`` posts at a time, to ``urls`` in turn. Prints the
    spread over whole seconds and the posts' latency (the agents keep cycling meanwhile)."""
    bodies = payloads()
    turn = itertools.count()
    posts: list[tuple[float, float, int]] = []  # (ended, latency_s, accepted)
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def sender() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            n = next(turn)
            sent = time.monotonic()
            answer = session.post(urls[n % len(urls)] + "/api/v1/alerts", data=bodies[n % len(bodies)],
                                  headers=headers, timeout=30)
            if answer.status_code != 200:
                fail(f"POST /api/v1/alerts answered {answer.status_code}: {answer.text[:300]}")
            ended = time.monotonic()
            with lock:
                posts.append((ended, ended - sent, answer.json()["accepted"]))

    with ThreadPoolExecutor(in_flight) as pool:
        for future in [pool.submit(sender) for _ in range(in_flight)]:
            future.result()
    elapsed = time.monotonic() - started
    accepted = sum(p[2] for p in posts)
    if accepted <= 0 or elapsed <= 0:
        fail(f"{accepted} alerts accepted in {elapsed:.1f}s")
    per_second = [0] * max(1, int(elapsed))
    for ended, _, n in posts:
        per_second[min(int(ended - started), len(per_second) - 1)] += n
    print(f"  ingest to {len(urls)} agent(s): {len(posts)} posts of 50 alerts, latency p50 "
          f"{statistics.median(p[1] for p in posts) * 1000:.0f} ms, max {max(p[1] for p in posts) * 1000:.0f} ms; "
          f"alerts per whole second: min {min(per_second)}, median {statistics.median(per_second):.0f}, "
          f"max {max(per_second)}")
    return accepted / elapsed


def failover(fleet: list[AgentProcess], start: Callable[[str, str], AgentProcess], store: Store,
             interval_s: float) -> float:
    """SIGKILL shard 0's holder with a standby waiting: seconds from the kill to the standby working."""
    standby = start("0/4", "standby0")
    standby.wait_event("agent.standby", timeout_s=60)
    holder = fleet[0]
    holder.wait_event("cycle.done", times=len(holder.events("cycle.done")) + 1, timeout_s=60)
    killed_at = time.time()
    holder.kill()
    active = standby.wait_event("agent.active", timeout_s=60 + 10 * interval_s)[0]
    active_at = datetime.fromisoformat(active["ts"]).timestamp()
    taken = [e for e in store.audit_entries() if e.action == "lease.taken" and e.subject == "shard:0/4"
             and e.ts.timestamp() >= killed_at - 1]
    if not taken:
        fail("no lease.taken audit entry for shard 0/4 after the kill")
    taken_s = taken[0].ts.timestamp() - killed_at
    seconds = active_at - killed_at
    if seconds < 0 or taken_s < -0.01:
        fail(f"the standby took over {seconds:.2f}s (lease {taken_s:.2f}s) after the kill: before it")
    print(f"failover: standby active {seconds:.2f}s after the SIGKILL (lease.taken audit entry after "
          f"{taken_s:.2f}s; interval {interval_s:g}s, limit 2 intervals)")
    standby.wait_event("cycle.done", timeout_s=30 + 4 * interval_s)
    fleet[0] = standby
    return seconds


def clock_skew(fleet: list[AgentProcess], start: Callable[..., AgentProcess], store: Store) -> int:
    """A standby of the second shard whose clock runs 2 h fast, for four of the holder's cycles:
    how many times it took the shard's lease."""
    skew = fleet[1].home.parent / "clock-2h-fast"
    skew.write_text("7200")
    shard = fleet[1].shard
    skewed = start(shard, "skewed1", faults={"FAULT_CLOCK_FILE": str(skew)})
    skewed.wait_event("agent.standby", timeout_s=120)
    holder = fleet[1]
    holder.wait_event("cycle.done", times=len(holder.events("cycle.done")) + 4, timeout_s=120)
    mine = skewed.events("agent.started")[0]["holder"]
    taken = [e for e in store.audit_entries() if e.action == "lease.taken" and e.actor == mine
             and e.subject == f"shard:{shard}"]
    active = skewed.events("agent.active")
    skewed.stop()
    print(f"clock skew: a standby 2 h fast took shard {shard} {len(taken)} times in four of the holder's cycles "
          f"({len(active)} agent.active lines; target 0)")
    return len(taken)


def stop_time(start: Callable[..., AgentProcess], root: Path) -> float:
    """Seconds from SIGTERM to exit of an agent whose collect stage is stuck in a call."""
    marker = root / "stuck-collect"
    agent = start("0/1", "stuck", faults={"FAULT_STUCK_COLLECT": str(marker)})
    wait_for(marker.exists, 120, "the stuck collect stage")
    started = time.monotonic()
    agent.proc.terminate()
    try:
        agent.proc.wait(timeout=120)
    except Exception:
        agent.kill()
        fail("the agent did not exit within 120 s of SIGTERM")
    seconds = time.monotonic() - started
    if seconds <= 0:
        fail(f"the agent exited {seconds:.2f}s after SIGTERM")
    print(f"stop: a busy agent (stage stuck in a call) exited {seconds:.1f}s after SIGTERM "
          f"(agent.stop_timeout 10 s; target <= 15 s)")
    return seconds


class Run:
    """One phase's exporter, webhook, playbook dir and agents, under ``root``."""

    def __init__(self, root: Path, workload_args: tuple[int, int, int], interval_s: float,
                 store_url: str | None) -> None:
        self.root = root
        self.interval_s = interval_s
        self.store_url = store_url
        self.exporter = TextExporter()
        self.workload = Workload(self.exporter, *workload_args)
        self.workload.normal()
        self.hook = RecordingServer().start()
        self.playbooks = root / "playbooks"
        self.playbooks.mkdir(parents=True)
        (self.playbooks / "touch.yml").write_text(header() + TOUCH)
        self.runs_log = root / "work" / "runs.log"
        self.runs_log.parent.mkdir()
        self.agents: list[AgentProcess] = []

    def start(self, shard: str, name: str, faults: dict[str, str] | None = None) -> AgentProcess:
        from tests.conftest import free_port

        port = free_port()
        text = config_text(port=port, store_url=self.store_url, exporter=self.exporter, hook=self.hook,
                           playbooks=self.playbooks, runs_log=self.runs_log, interval_s=self.interval_s)
        agent = AgentProcess(self.root / name, agent_env(), text, shard=shard, port=port, token=TOKEN,
                             faults=faults)
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        self.hook.stop()
        self.exporter.stop()


def report_fault(name: str, fault: dict[str, float]) -> None:
    print(f"{name}: fault on {fault['signals']:.0f} series of {fault['signal_shards']:.0f} shard(s) -> "
          f"{fault['incidents']:.0f} incident(s), {fault['runs']:.0f} run(s) recorded, "
          f"{fault['playbook_runs']:.0f} playbook execution(s), {fault['notifications']:.0f} notification(s); "
          f"playbook and notification {fault['to_act_s']:.1f}s after the fault")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 series, 20 faulted, shorter phases")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--faulted", type=int, default=50)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="agent.interval in seconds")
    parser.add_argument("--cycles", type=int, default=4, help="warm-up cycles of each agent")
    parser.add_argument("--ingest-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.quick:
        args.series, args.faulted, args.interval, args.cycles, args.ingest_s = 1000, 20, 2.0, 3, 4.0
    if not HAVE_POSTGRES:
        sys.exit("needs PostgreSQL 15 binaries (Debian package postgresql)")
    workload_args = (args.series, args.faulted, args.shards)
    root = Path(tempfile.mkdtemp(prefix="aiops-bench-scale-"))
    os.chmod(root, 0o755)
    print(f"{args.series} series, fault on {args.faulted}, interval {args.interval:g}s, "
          f"{args.cycles} warm-up cycles; work dir {root}")
    try:
        # -- baseline: one agent, SQLite --------------------------------------------------------
        base = Run(root / "sqlite", workload_args, args.interval, None)
        try:
            (alone,) = [base.start("0/1", "agent")]
            alone.wait_event("cycle.done", timeout_s=120)
            store = Store(alone.home / "state" / "aiops.db")
            base_fault = fault_phase([alone], base.workload, store, base.hook, base.runs_log,
                                     cycles=args.cycles, interval_s=args.interval)
            store.close()
            (base_cycle,) = cycle_figures([alone])
            base_stages = stage_means(alone)
            base_ingest = ingest([alone.url], args.ingest_s)
        finally:
            base.close()
        stuck_run = Run(root / "stop", workload_args, args.interval, None)
        try:
            stop_s = stop_time(stuck_run.start, root / "stop")
        finally:
            stuck_run.close()
        report_fault("sqlite, 1 agent", base_fault)
        print(f"sqlite, 1 agent: cycle p50 {base_cycle:.3f}s of {args.interval:g}s ({len(cycle_durations(alone))} cycles); "
              f"ingest {base_ingest:.0f} alerts/s")
        print(f"sqlite, 1 agent: mean per stage: {base_stages}")

        # -- the fleet: n shard agents on one PostgreSQL ---------------------------------------
        (root / "pg").mkdir(mode=0o755)
        server = start_postgres(root / "pg")
        try:
            with psycopg.connect(server.url(), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{DATABASE}"')
            url = server.url(DATABASE)
            Store(url).dispose()  # migrated once, before the agents race to it
            fleet_run = Run(root / "postgres", workload_args, args.interval, url)
            store = Store(url)
            try:
                fleet = [fleet_run.start(f"{i}/{args.shards}", f"shard{i}") for i in range(args.shards)]
                for agent in fleet:
                    agent.wait_event("cycle.done", timeout_s=120)
                fault = fault_phase(fleet, fleet_run.workload, store, fleet_run.hook, fleet_run.runs_log,
                                    cycles=args.cycles, interval_s=args.interval)
                medians = cycle_figures(fleet)
                stages = [stage_means(agent) for agent in fleet]
                rate = ingest([fleet[1].url, fleet[2 % args.shards].url], args.ingest_s)
                skew_takeovers = clock_skew(fleet, fleet_run.start, store)
                failover_s = failover(fleet, fleet_run.start, store, args.interval)
            finally:
                store.dispose()
                fleet_run.close()
        finally:
            stop_postgres(server)
        report_fault(f"postgresql, {args.shards} agents", fault)
        for agent, median, means in zip(fleet, medians, stages):
            print(f"postgresql, agent {agent.shard}: cycle p50 {median:.3f}s of {args.interval:g}s; "
                  f"mean per stage: {means}")
        slowest = max(medians)
        print(f"postgresql, {args.shards} agents: slowest cycle p50 {slowest:.3f}s "
              f"({slowest / base_cycle:.2f}x the one SQLite agent's {base_cycle:.3f}s on all the series)")
        print(f"ingest: {rate:.0f} alerts/s with 2 agents on PostgreSQL "
              f"({rate / base_ingest:.2f}x the one SQLite agent's {base_ingest:.0f} alerts/s)")
        if fault["signal_shards"] < len(fleet_run.workload.shards_hit):
            fail(f"the incident holds hits of {fault['signal_shards']:.0f} shards; the fault hit "
                 f"{len(fleet_run.workload.shards_hit)}")
        print(json.dumps({
            "shards": args.shards, "series": args.series, "faulted": args.faulted,
            "fault_incidents": fault["incidents"], "fault_runs": fault["runs"],
            "fault_playbook_runs": fault["playbook_runs"], "fault_notifications": fault["notifications"],
            "cycle_s_p50": round(slowest, 3), "cycle_interval_s": args.interval,
            "failover_s": round(failover_s, 2), "failover_intervals": round(failover_s / args.interval, 2),
            "clock_skew_takeovers": skew_takeovers, "stop_s": round(stop_s, 2), "ingest_alerts_per_s": round(rate, 1),
            "baseline_sqlite": {"fault_incidents": base_fault["incidents"], "fault_runs": base_fault["runs"],
                                "cycle_s_p50": round(base_cycle, 3), "ingest_alerts_per_s": round(base_ingest, 1)},
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
