"""What the agent adds around a trivial playbook: decision, ansible-runner start, recording.

Each round, in the same process: one ``remediate`` cycle that matches a fresh incident and runs
the playbook (auto mode, no check pass), and ``ansible-playbook`` by hand on the same playbook and
inventory. Prints medians, the ratio, and last one JSON line (agent_s, ansible_playbook_s,
overhead_ratio). Run: .venv/bin/python tests/bench/bench_remediation.py [ROUNDS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.clock import utcnow  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.context import Context  # noqa: E402
from agent.pipeline import Cycle  # noqa: E402
from remediations import remediate  # noqa: E402
from remediations.model import RunStatus  # noqa: E402
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
        runs = remediate(ctx, Cycle(started_at=now))
        elapsed = time.perf_counter() - started
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
    print(json.dumps({"bench": "remediation", "agent_s": round(agent, 3), "ansible_playbook_s": round(hand, 3),
                      "overhead_ratio": round(agent / hand, 3)}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
