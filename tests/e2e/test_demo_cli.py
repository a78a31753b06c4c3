"""``python -m demo up`` / ``inject KIND`` / ``down`` as a user runs them, each a process of its
own: the stack outlives the command that started it, a fault reaches it, and ``down`` stops
every process the stack recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from demo.stack import alive, running
from tests.conftest import REPO, wait_until


def demo(*args: str, env: dict[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demo", *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=timeout_s)


def test_usage_lines_name_the_program(subprocess_env):
    done = demo("--help", env=subprocess_env)
    assert done.returncode == 0 and done.stdout.startswith("Usage: python -m demo [OPTIONS] [COMMAND] [ARGS]...")
    assert [line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()] == [
        "down", "inject", "story", "up"]
    bad = demo("inject", "meteor", env=subprocess_env)
    assert bad.returncode == 2 and bad.stderr.startswith("Usage: python -m demo inject [OPTIONS]")


@pytest.mark.slow
def test_up_inject_and_down_leave_the_stack_running_between_commands(tmp_path, subprocess_env):
    root = tmp_path / "demo"
    env = {**subprocess_env, "PYTHONPATH": str(REPO)}
    up = demo("up", "--fast", "--root", str(root), env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        lines = up.stdout.splitlines()
        assert "the demo stack is up:" in lines and lines[-1] == "stop it:         python -m demo down"
        info = json.loads((root / "stack.json").read_text())
        expected = ["agent_pid", "prometheus_pid", "service"] + (["node_exporter_pid"] if info["node_exporter_pid"] else [])
        assert sorted(running(root)) == sorted(expected)
        again = demo("up", "--root", str(root), env=env)
        assert again.returncode == 1 and "a demo stack is up in" in again.stderr

        pid = int((root / "service.pid").read_text())
        crash = demo("inject", "crash", "--root", str(root), env=env)
        assert (crash.returncode, crash.stdout) == (0, f"the serving process (pid {pid}) was killed\n")
        wait_until(lambda: not alive(pid), 10, message="the service killed")
        assert alive(info["agent_pid"]) and alive(info["prometheus_pid"])
    finally:
        down = demo("down", "--root", str(root), env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[0].startswith(f"stopped: agent (pid {info['agent_pid']}), ")
    assert f"prometheus (pid {info['prometheus_pid']})" in down.stdout
    for name in ("agent_pid", "prometheus_pid", "node_exporter_pid"):
        assert info[name] is None or not alive(info[name]), name
    assert running(root) == [] and (root / "state" / "aiops.db").is_file()
    assert os.path.exists(root / "logs" / "agent.log")
