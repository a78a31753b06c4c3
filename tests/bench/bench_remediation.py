"""What the agent adds around a trivial playbook: decision, ansible-runner start, recording.

Each round, in the same process: one ``remediate`` cycle that matches a fresh incident and runs
the playbook (auto mode, no check pass), and ``ansible-playbook`` by hand on the same playbook and
inventory. Prints medians, the ratio, and last one JSON line (agent_s, ansible_playbook_s,
overhead_ratio, cycle_gap_ratio).

Then the cycle gap: the daemon itself (``agent.daemon.Daemon`` and its scheduler, a cycle every
``GAP_INTERVAL_S``) with one incident whose rule runs a real ``GAP_PLAYBOOK_S`` sleep playbook
against localhost; the largest gap between cycle starts, from the first cycle until two cycles
after the run ended, over the interval: ``cycle_gap_ratio`` with the playbook run beside the cycle
(``remediation.workers: 2``), ``cycle_gap_ratio_sequential`` with it inside the remediate stage
(``workers: 0``, how runs executed before the worker pool). Target <= 1.2. About 2.5 minutes.

Then the ledger (``aiops remediation ledger``) over 100,000 runs of 40 rules on 200 hosts, with
rollbacks and shadow runs among them, written straight into a SQLite store: the median of 5
builds (``ledger_100k_s``, target < 0.5 s; a 31-day window ending now, so it reads the store's
per-day summary for 30 whole days and the runs of the part-days at either end), and beside it a
plain ``GROUP BY rule, status`` count of the same rows (what reading the runs costs at least) for
the ratio, and the ledger computed from the runs alone (``ledger_from_rows``), which must agree.

Run: .venv/bin/python tests/bench/bench_remediation.py [ROUNDS]   (or ``ledger``: the ledger only)
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.clock import to_epoch, utcnow  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.context import Context  # noqa: E402
from agent.daemon import Daemon  # noqa: E402
from agent.flow.detection import Detection  # noqa: E402
from agent.flow.runs import RunMode, RunStatus  # noqa: E402
from agent.store import Store, open_store  # noqa: E402
from remediations import Remediation, latest  # noqa: E402
from remediations.ledger import build_ledger, ledger_from_rows  # noqa: E402
from remediations.runner import local_inventory  # noqa: E402

PLAYBOOK = """# fixes: nothing (benchmark)
# vars: dest
# idempotent: yes
# check_mode_safe: no
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy: {dest: "{{ dest }}", content: "ok"}
"""

SLEEP_PLAYBOOK = """# fixes: nothing (benchmark: a long playbook)
# vars: sleep_s
# idempotent: yes
# check_mode_safe: no
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command:
        argv: [sleep, "{{ sleep_s }}"]
"""
GAP_INTERVAL_S = 5
GAP_PLAYBOOK_S = 60


class TimedDaemon(Daemon):
    """The daemon as shipped, noting when each cycle starts (monotonic seconds)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.starts: list[float] = []

    def _cycle_job(self) -> None:
        self.starts.append(time.monotonic())
        super()._cycle_job()


def gap_config(work: Path, workers: int) -> Path:
    (work / "playbooks").mkdir()
    (work / "playbooks" / "sleep.yml").write_text(SLEEP_PLAYBOOK)
    path = work / "agent.yaml"
    path.write_text(f"""
agent: {{state_dir: {work / 'state'}, interval: {GAP_INTERVAL_S}s, stop_timeout: 30s}}
http: {{enabled: false}}
sources: {{kind: scrape, scrape: {{targets: []}}}}
remediation:
  playbook_dir: {work / 'playbooks'}
  workers: {workers}
  timeout: {GAP_PLAYBOOK_S * 3}s
  rules:
    - {{name: slow, match: {{labels: {{service: bench}}}}, playbook: sleep.yml, mode: auto,
       vars: {{sleep_s: {GAP_PLAYBOOK_S}}}}}
""")
    return path


def cycle_gap_ratio(workers: int) -> float:
    """The largest gap between cycle starts over the interval, while a long playbook runs."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-gap-{workers}-"))
    daemon = TimedDaemon(gap_config(work, workers), state_dir=work / "state")
    store = open_store(work / "state")
    store.open_incident(severity="warning", title="bench", labels={"service": "bench"}, started_at=utcnow(),
                        now=utcnow())
    ended: list[float] = []
    stopper = threading.Thread(target=_stop_after_run, args=(daemon, store, ended), daemon=True)
    stopper.start()
    daemon.run()  # in this (the main) thread: it installs its signal handlers
    stopper.join()
    (run,) = store.list_runs(mode=RunMode.APPLY)
    store.close()
    duration = (run.ended_at - run.started_at).total_seconds() if run.ended_at and run.started_at else 0.0
    if run.status is not RunStatus.VERIFYING or duration < GAP_PLAYBOOK_S:
        raise SystemExit(f"the {GAP_PLAYBOOK_S} s playbook did not run through ({run.status}, {duration:.1f} s): "
                         "no gap figure")
    starts = [t for t in daemon.starts if t <= ended[0] + 2.5 * GAP_INTERVAL_S]
    if len(starts) < 3:
        raise SystemExit(f"only {len(starts)} cycles started: no gap figure")
    gap = max(b - a for a, b in zip(starts, starts[1:]))
    print(f"workers={workers}: {len(starts)} cycles over {starts[-1] - starts[0]:.1f} s while a {duration:.1f} s "
          f"playbook ran; largest gap between cycle starts {gap:.2f} s, interval {GAP_INTERVAL_S} s")
    return gap / GAP_INTERVAL_S


def _stop_after_run(daemon: TimedDaemon, store: Store, ended: list[float]) -> None:
    """Stop the daemon two intervals after the run has left ``running`` (or after a deadline)."""
    deadline = time.monotonic() + GAP_PLAYBOOK_S * 4
    while time.monotonic() < deadline:
        runs = store.list_runs(mode=RunMode.APPLY)
        if runs and runs[0].status not in (RunStatus.PENDING, RunStatus.RUNNING):
            break
        time.sleep(0.2)
    ended.append(time.monotonic())
    deadline = time.monotonic() + 4 * GAP_INTERVAL_S
    while sum(t > ended[0] for t in daemon.starts) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # until two cycles have started after the run
    while daemon.ctx is None:
        time.sleep(0.1)
    daemon.stop("benchmark done")
    store.close()  # this thread's connection


LEDGER_RUNS = 100_000
LEDGER_ROUNDS = 5


def fill_runs(store: Store, count: int, *, end_s: float) -> None:
    """``count`` real runs over the 30 days before ``end_s`` (40 rules, 200 hosts, every outcome),
    a rollback for each run that did not fix, and a shadow run for every tenth, written as rows
    (the agent would take hours to make them one by one)."""
    rng = random.Random(7)
    statuses = ["verified"] * 14 + ["not_fixed", "failed", "timeout", "interrupted", "verifying"]
    rows, children = [], []
    for i in range(1, count + 1):
        started = end_s - 30 * 86400 + (i - 1) * (30 * 86400 / count)
        status = rng.choice(statuses)
        rule = f"rule-{i % 40:02d}"
        verification = json.dumps({"verified_at": started + rng.uniform(60, 900)}) if status == "verified" else "{}"
        rows.append((i, None, rule, f"{rule}.yml", "apply", status, json.dumps([f"host{rng.randrange(200):03d}"]),
                     started, started, started + 30, verification, f"run {i} {status}", "auto"))
        if status in ("not_fixed", "failed"):
            children.append((count + i, None, rule, f"{rule}-undo.yml", "rollback", "succeeded", "[]", started + 40,
                             started + 40, started + 50, "{}", f"rollback of run {i}", "auto", i))
        if i % 10 == 0:
            children.append((2 * count + i, None, rule, f"{rule}.yml", "shadow", "shadow", "[]", started, None, None,
                             json.dumps({"verdict": "fixed"}) if i % 20 == 0 else "{}", "shadow", "auto", None))
    columns = "id, incident_id, rule, playbook, mode, status, targets, requested_at, started_at, ended_at, " \
              "verification, reason, rule_mode"
    with store.transaction() as conn:
        conn.executemany(f"INSERT INTO remediation_runs ({columns}) VALUES ({', '.join('?' * 13)})", rows)
        conn.executemany(f"INSERT INTO remediation_runs ({columns}, parent_id) VALUES ({', '.join('?' * 14)})",
                         children)
    store.rebuild_ledger()  # rows written behind the store's back: its summary, as migration 90 fills it


def ledger_seconds() -> tuple[float, float]:
    """(median seconds to build the ledger of 100,000 runs, median seconds of a plain count)."""
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    store = Store(work / "aiops.db")
    now = utcnow()
    fill_runs(store, LEDGER_RUNS, end_s=float(to_epoch(now)))
    since = now - timedelta(days=31)
    built, counted = [], []
    for _ in range(LEDGER_ROUNDS):
        started = time.perf_counter()
        ledger = build_ledger(store, since, now, now=now)
        built.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.query("SELECT rule, status, count(*) FROM remediation_runs WHERE mode = 'apply' AND started_at >= ? "
                    "GROUP BY rule, status", (float(to_epoch(since)),))
        counted.append(time.perf_counter() - started)
    started = time.perf_counter()
    recomputed = ledger_from_rows(store, since, now, now=now)
    from_rows_s = time.perf_counter() - started
    store.close()
    if ledger.runs != LEDGER_RUNS or len(ledger.rules) != 40 or not ledger.targets:
        raise SystemExit(f"the ledger counted {ledger.runs} runs of {len(ledger.rules)} rules, expected "
                         f"{LEDGER_RUNS} of 40: no figure")
    if ledger != recomputed:
        raise SystemExit("the ledger read from the summary differs from the one computed from the runs: no figure")
    ledger_s, count_s = statistics.median(built), statistics.median(counted)
    print(f"ledger of {LEDGER_RUNS:,} runs ({len(ledger.rules)} rules, {len(ledger.targets)} rule-target rows), "
          f"median of {LEDGER_ROUNDS}: {ledger_s:.3f} s (target < 0.5 s); a plain GROUP BY count of them: "
          f"{count_s:.3f} s (ratio {ledger_s / count_s:.2f}); the same ledger from the runs alone, once: "
          f"{from_rows_s:.3f} s")
    return ledger_s, count_s


def main(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-remediation-"))
    (work / "playbooks").mkdir()
    (work / "playbooks" / "trivial.yml").write_text(PLAYBOOK)
    (work / "hosts").write_text(local_inventory())
    (work / "vars.yml").write_text(f"dest: {work / 'by-hand.txt'}\n")
    (work / "agent.yaml").write_text(f"""
agent: {{state_dir: {work / 'state'}}}
remediation:
  playbook_dir: {work / 'playbooks'}
  limits: {{max_runs_per_hour: 1000, max_runs_per_target_per_hour: 1000, cooldown: 0s}}
  rules:
    - {{name: bench, match: {{labels: {{service: bench}}}}, playbook: trivial.yml, mode: auto,
       vars: {{dest: {work / 'agent.txt'}}}}}
""")
    ctx = Context.create(load_config(work / "agent.yaml"), work / "state")
    stage = Remediation(ctx)
    binary = Path(sys.executable).parent / "ansible-playbook"
    # the same settings the agent gives ansible, so only the agent's own work differs
    by_hand_env = {**os.environ, "ANSIBLE_PIPELINING": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    agent_s: list[float] = []
    by_hand_s: list[float] = []
    now = utcnow()
    for i in range(rounds + 1):  # round 0 warms up imports and caches; not counted
        now += timedelta(minutes=1)
        ctx.store.open_incident(severity="warning", title=f"bench {i}", labels={"service": "bench"},
                                started_at=now, now=now)
        started = time.perf_counter()
        runs = stage.remediate(Detection(at=now))
        ctx.workers.join()  # the run executes beside the cycle: its end is part of the agent's work
        elapsed = time.perf_counter() - started
        runs = latest(ctx, [r for r in [*runs, *ctx.workers.finished()] if r.mode is RunMode.APPLY])
        assert [r.status for r in runs] == [RunStatus.VERIFYING], runs
        started = time.perf_counter()
        subprocess.run([str(binary), "-i", str(work / "hosts"), "-e", f"@{work / 'vars.yml'}",
                        str(work / "playbooks" / "trivial.yml")], check=True, capture_output=True, env=by_hand_env)
        by_hand = time.perf_counter() - started
        if i:
            agent_s.append(elapsed)
            by_hand_s.append(by_hand)
    ctx.store.close()
    agent, hand = statistics.median(agent_s), statistics.median(by_hand_s)
    print(f"rounds: {rounds}")
    print(f"agent (decide, ansible-runner, record), median: {agent:.3f} s  "
          f"(min {min(agent_s):.3f}, max {max(agent_s):.3f})")
    print(f"ansible-playbook by hand, median:             {hand:.3f} s  "
          f"(min {min(by_hand_s):.3f}, max {max(by_hand_s):.3f})")
    print(f"overhead ratio (agent / by hand): {agent / hand:.2f}  (target <= 1.2); "
          f"ratio of the fastest rounds, less sensitive to a busy machine: {min(agent_s) / min(by_hand_s):.2f}")
    sequential = cycle_gap_ratio(workers=0)
    beside = cycle_gap_ratio(workers=2)
    print(f"cycle gap ratio (largest gap between cycle starts / interval) with a {GAP_PLAYBOOK_S} s playbook: "
          f"{beside:.2f} beside the cycle (target <= 1.2), {sequential:.2f} inside the remediate stage (workers: 0)")
    ledger_s, count_s = ledger_seconds()
    print(json.dumps({"bench": "remediation", "agent_s": round(agent, 3), "ansible_playbook_s": round(hand, 3),
                      "overhead_ratio": round(agent / hand, 3), "cycle_gap_ratio": round(beside, 3),
                      "cycle_gap_ratio_sequential": round(sequential, 3), "cycle_interval_s": GAP_INTERVAL_S,
                      "playbook_s": GAP_PLAYBOOK_S, "ledger_100k_s": round(ledger_s, 3),
                      "ledger_count_ratio": round(ledger_s / count_s, 2)}))


if __name__ == "__main__":
    if sys.argv[1:] == ["ledger"]:
        seconds, plain = ledger_seconds()
        print(json.dumps({"bench": "remediation", "ledger_100k_s": round(seconds, 3),
                          "ledger_count_ratio": round(seconds / plain, 2)}))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
