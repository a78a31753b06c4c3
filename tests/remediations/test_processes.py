"""A run's processes, with real ansible-runner against localhost: whatever a run leaves running is
killed (SIGTERM, then SIGKILL) at its timeout or end, even a child that cleared its environment
and left ansible's session; a service started through ``aiops_detach`` is kept; no agent secret
reaches a process a playbook starts. Each test runs under both trackings (cgroup, subreaper)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.flow.runs import RunnerStatus
from remediations import processes
from remediations.runner import Execution, execute
from tests.conftest import REPO, wait_until
from tests.remediations.conftest import header

SECRETS = {"AIOPS_API_TOKEN": "tok-3f9a1c77e2", "AIOPS_SMTP_PASSWORD": "smtp-pw-81d2"}

# Blocks the playbook until its timeout; beside it, two children leave ansible's session with an
# empty environment: one ignores SIGTERM, the other notes that SIGTERM came before it exits.
LAUNCH = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Start children that escape, then hang
      ansible.builtin.command:
        argv: [/bin/sh, "{{ scripts }}/launch.sh", "{{ scripts }}"]
"""
SCRIPTS = {
    "launch.sh": 'env -i setsid /bin/sh "$1/stubborn.sh" "$1/stubborn.pid" &\n'
                 'env -i setsid /bin/sh "$1/polite.sh" "$1/polite.pid" "$1/polite.signal" &\n'
                 "exec sleep 622\n",
    "stubborn.sh": "trap '' TERM\necho $$ > \"$1\"\nexec sleep 622\n",
    "polite.sh": "trap 'echo TERM > \"$2\"; exit 0' TERM\necho $$ > \"$1\"\nsleep 622 &\nwait\n",
}

# The library's restart (tasks/restart_pidfile.yml, through aiops_detach), then a background
# process that is not detached; both print their environment's names to the output.
RESTART = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Restart the service from its pidfile
      ansible.builtin.include_tasks: tasks/restart_pidfile.yml
      vars:
        restart_pidfile: "{{ service_pidfile }}"
        restart_argv: "{{ service_argv }}"
    - name: Leave a process behind without detaching it
      ansible.builtin.command:
        argv: [setsid, --fork, /bin/sh, -c, 'echo $$ > "$0"; exec sleep 622', "{{ leftover_pidfile }}"]
    - name: Wait for its pidfile
      ansible.builtin.wait_for:
        path: "{{ leftover_pidfile }}"
        search_regex: "^[0-9]+"
        timeout: 10
"""
SERVICE = ["/bin/sh", "-c", 'echo $$ > "$0"; exec sleep 622']


@pytest.fixture(params=["cgroup", "subreaper"])
def tracking(request: pytest.FixtureRequest) -> str:
    if request.param == "cgroup" and processes.cgroups() is None:
        pytest.skip("no writable cgroup v2 on this machine")
    return str(request.param)


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    d = tmp_path / "playbooks"
    (d / "tasks").mkdir(parents=True)
    shutil.copy(REPO / "playbooks" / "tasks" / "restart_pidfile.yml", d / "tasks")
    (d / "launch.yml").write_text(header() + LAUNCH)
    (d / "restart.yml").write_text(header() + RESTART)
    return d


@pytest.fixture
def started() -> Iterator[list[Path]]:
    """Pidfiles of processes a test's playbook started: whatever still runs is killed at the end."""
    pidfiles: list[Path] = []
    yield pidfiles
    for path in pidfiles:
        pid = _pid(path)
        if pid is not None and processes.proc(pid) is not None:
            os.kill(pid, signal.SIGKILL)


def _pid(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def _run(playbooks: Path, tmp_path: Path, playbook: str, tracking: str, *, timeout_s: float,
         **variables: object) -> Execution:
    return execute(playbook=playbooks / playbook, project_dir=playbooks, private_dir=tmp_path / "run",
                   targets=["localhost"], check=False, trusted_vars=variables, label_vars={}, timeout_s=timeout_s,
                   grace_s=1.0, run_key=f"test-{tmp_path.name}", tracking=tracking,
                   env={"SERVICE_MODE": "repair"}, pass_env=["API_DB_PASSWORD"])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


@pytest.mark.slow
def test_a_child_that_cleared_its_environment_and_left_the_session_is_killed_at_the_timeout(
        tmp_path, playbooks, tracking, started):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, text in SCRIPTS.items():
        (scripts / name).write_text(text)
    started += [scripts / "stubborn.pid", scripts / "polite.pid"]

    # long enough for ansible to start both scripts on a loaded machine; they never end by themselves
    result = _run(playbooks, tmp_path, "launch.yml", tracking, timeout_s=12, scripts=str(scripts))

    stubborn, polite = _pid(scripts / "stubborn.pid"), _pid(scripts / "polite.pid")
    assert (result.status, result.rc) == (RunnerStatus.TIMEOUT, 254)
    assert stubborn is not None and polite is not None
    assert processes.proc(stubborn) is None  # ignored SIGTERM: killed by SIGKILL
    assert processes.proc(polite) is None
    assert (scripts / "polite.signal").read_text() == "TERM\n"  # SIGTERM came first
    assert {stubborn, polite} <= set(result.killed)
    assert result.duration_s < 12 + 1.0 + 8  # not held up by the child that ignores SIGTERM


@pytest.mark.slow
def test_a_detached_service_outlives_the_run_and_its_leftover_does_not_and_no_secret_reaches_them(
        tmp_path, playbooks, tracking, started, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("API_DB_PASSWORD", "db-pw-passed-on-purpose")
    service_pidfile, leftover_pidfile = tmp_path / "service.pid", tmp_path / "leftover.pid"
    started += [service_pidfile, leftover_pidfile]

    result = _run(playbooks, tmp_path, "restart.yml", tracking, timeout_s=60, service_pidfile=str(service_pidfile),
                  service_argv=SERVICE, leftover_pidfile=str(leftover_pidfile))

    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    service, leftover = _pid(service_pidfile), _pid(leftover_pidfile)
    assert service is not None and leftover is not None
    assert processes.proc(service) is not None
    assert processes.proc(leftover) is None
    assert leftover in result.killed and service not in result.killed
    environ = _environ(service)
    assert [name for name in SECRETS if name in environ] == []
    assert not [value for value in SECRETS.values() if value in Path(f"/proc/{service}/environ").read_text()]
    assert (environ["SERVICE_MODE"], environ["API_DB_PASSWORD"]) == ("repair", "db-pw-passed-on-purpose")
    assert environ["PATH"].startswith(str(Path(os.sys.executable).parent) + ":")
    assert processes.DETACH_ENV not in environ
    if tracking == "cgroup":
        assert service in processes.cgroups().members(processes.cgroups().detached)
    # the run's record (subreaper) or cgroup names nothing left: a new agent would kill nothing
    assert [pid for t in processes.leftovers(key=f"test-{tmp_path.name}", run_dir=tmp_path / "run")
            for pid in t.pids()] == []
    os.kill(service, signal.SIGTERM)
    wait_until(lambda: processes.proc(service) is None, 10, message="the service to stop")


RACE = """
import importlib.metadata, sys, threading
inside, second_started, seen = threading.Event(), threading.Event(), []
entry_points = importlib.metadata.entry_points

def slow_entry_points(**kwargs):  # holds the first import where ansible-runner loads its plugins
    if kwargs.get("group") == "ansible_runner.plugins" and not inside.is_set():
        inside.set()
        second_started.wait(10)
        threading.Event().wait(0.2)  # the second thread, if it waits for the package, is now waiting
    return entry_points(**kwargs)

importlib.metadata.entry_points = slow_entry_points
from remediations import runner

def second():
    inside.wait(10)
    second_started.set()
    runner._ansible_runner_run()
    seen.append(type(sys.modules["ansible_runner"].plugins).__name__)  # what a run iterates next

thread = threading.Thread(target=second)
thread.start()
runner._ansible_runner_run()
thread.join(10)
print(seen)
"""


def test_two_runs_starting_together_in_a_fresh_process_both_see_ansible_runner_complete():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", RACE], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['dict']"
