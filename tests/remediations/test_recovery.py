"""A daemon killed with SIGKILL mid-run: on restart the run is interrupted, its leftovers killed
(never the service it restarted), the incident paged, and nothing runs a second time. A SIGTERM
mid-run kills the run the same way."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from agent.clock import utcnow
from agent.flow.runs import RunMode, RunStatus
from agent.store import Store
from remediations import processes
from tests.conftest import PYTHON, REPO, wait_until
from tests.remediations.conftest import header, lines, run_pids


@pytest.mark.slow
def test_a_daemon_killed_mid_run_marks_it_interrupted_on_restart_and_does_not_rerun(tmp_path, pbdir, work,
                                                                                   subprocess_env):
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
agent: {{state_dir: {state}, interval: 1s, stop_timeout: 20s}}
http: {{enabled: false}}
remediation:
  playbook_dir: {pbdir}
  limits: {{cooldown: 0s}}
  rules:
    - name: slow-fix
      match: {{labels: {{service: api}}}}
      playbook: hold.yml
      mode: auto
      timeout: 5m
      vars: {{runs_log: {work / 'runs.log'}, release: {work / 'release'}}}
""")
    state.mkdir()
    store = Store(state / "aiops.db")
    first = store.open_incident(severity="critical", title="api down", labels={"service": "api"},
                                started_at=utcnow(), now=utcnow())

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([PYTHON, "-m", "agent.cli", "run", "--config", str(config)], env=subprocess_env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "ab"))

    daemon = start()
    try:
        wait_until(lambda: lines(work / "runs.log"), 60, message="the first run to start holding")
        (run,) = store.list_runs(incident_id=first.id, mode=RunMode.APPLY)
        assert run.status is RunStatus.RUNNING
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
        assert run_pids(store, run)  # the orphaned playbook still holds

        daemon = start()
        wait_until(lambda: store.get_run(run.id).status is RunStatus.INTERRUPTED, 60, message="the interrupted run")
        assert run_pids(store, run) == []  # killed by the restart, not released
        (work / "release").touch()
        # A second incident after the restart: once its run has written, the first incident has
        # been planned again (oldest first) and must not have run again.
        second = store.open_incident(severity="critical", title="api down again",
                                     labels={"service": "api"}, started_at=utcnow(), now=utcnow())
        wait_until(lambda: len(lines(work / "runs.log")) == 2, 60, message="the second incident's run")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)

    (other,) = store.list_runs(incident_id=second.id, mode=RunMode.APPLY)
    assert lines(work / "runs.log") == [str(run.id), str(other.id)]
    assert [r.id for r in store.list_runs(incident_id=first.id, mode=RunMode.APPLY)] == [run.id]
    interrupted = store.get_run(run.id)
    # whatever the orphaned playbook left running is killed by the restart ("; killed N leftover processes")
    assert interrupted.reason.startswith(f"the agent running it ({run.owner}) stopped mid-run; not re-run")
    assert run_pids(store, run) == []
    page = [e for e in store.incident_events(first.id) if e.kind == "escalated"][-1]
    assert page.message == ("run 1 (hold.yml) was interrupted: the agent stopped mid-run; "
                            "it was not re-run (policy: page)")
    assert store.get_incident(first.id).status == "open"
    store.close()
    assert "Traceback" not in Path(tmp_path / "daemon.log").read_text()


@pytest.mark.slow
def test_sigterm_mid_run_kills_the_run_and_records_it_interrupted(tmp_path, pbdir, work, subprocess_env):
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
agent: {{state_dir: {state}, interval: 1s, stop_timeout: 20s}}
http: {{enabled: false}}
remediation:
  playbook_dir: {pbdir}
  rules:
    - {{name: slow-fix, match: {{labels: {{service: api}}}}, playbook: hold.yml, mode: auto,
       vars: {{runs_log: {work / 'runs.log'}, release: {work / 'release'}}}}}
""")
    state.mkdir()
    store = Store(state / "aiops.db")
    incident = store.open_incident(severity="critical", title="api down", labels={"service": "api"},
                                   started_at=utcnow(), now=utcnow())
    daemon = subprocess.Popen([PYTHON, "-m", "agent.cli", "run", "--config", str(config)], env=subprocess_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: lines(work / "runs.log"), 60, message="the run to start holding")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    (run,) = store.list_runs(incident_id=incident.id, mode=RunMode.APPLY)
    assert (run.status, run.reason) == (RunStatus.INTERRUPTED, "the agent was stopping; the run was killed")
    assert run_pids(store, run) == []
    assert [e.message for e in store.incident_events(incident.id) if e.kind == "escalated"] == \
        [f"run {run.id} was interrupted because the agent stopped"]
    store.close()


# The library's restart (tasks/restart_pidfile.yml, which starts the service through aiops_detach),
# then a process left behind without detaching it, then a long task: the run is mid-way when the
# agent is killed or stopped.
RESTART_THEN_HANG = """---
- hosts: all
  gather_facts: false
  tasks:
    - name: Restart the service from its pidfile
      ansible.builtin.include_tasks: tasks/restart_pidfile.yml
      vars:
        restart_pidfile: "{{ service_pidfile }}"
        restart_argv: [/bin/sh, -c, 'echo $$ > "$0"; exec sleep 622']
    - name: Leave a process behind without detaching it
      ansible.builtin.command:
        argv: [setsid, --fork, /bin/sh, -c, 'echo $$ > "$0"; exec sleep 622', "{{ leftover_pidfile }}"]
    - name: Take long
      ansible.builtin.command:
        argv: [sleep, "600"]
"""
SECRET = "tok-5be1f0c39a"


def _pid(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def _start_restart_agent(tmp_path: Path, pbdir: Path, work: Path, env: dict[str, str], tracking: str):
    if tracking == "cgroup" and processes.cgroups() is None:
        pytest.skip("no writable cgroup v2 on this machine")
    (pbdir / "tasks").mkdir()
    shutil.copy(REPO / "playbooks" / "tasks" / "restart_pidfile.yml", pbdir / "tasks")
    (pbdir / "restart_then_hang.yml").write_text(header() + RESTART_THEN_HANG)
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
agent: {{state_dir: {state}, interval: 1s, stop_timeout: 20s}}
http: {{enabled: false, token: "${{AIOPS_API_TOKEN:-}}"}}
remediation:
  playbook_dir: {pbdir}
  process_tracking: {tracking}
  rules:
    - name: restart-api
      match: {{labels: {{service: api}}}}
      playbook: restart_then_hang.yml
      mode: auto
      timeout: 5m
      env: {{SERVICE_MODE: repair}}
      vars: {{service_pidfile: {work / 'service.pid'}, leftover_pidfile: {work / 'leftover.pid'}}}
""")
    state.mkdir()
    store = Store(state / "aiops.db")
    incident = store.open_incident(severity="critical", title="api down", labels={"service": "api"},
                                   started_at=utcnow(), now=utcnow())
    env = {**env, "AIOPS_API_TOKEN": SECRET}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([PYTHON, "-m", "agent.cli", "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "ab"))

    return store, incident, start


def _assert_service_kept_and_clean(service: int) -> None:
    assert processes.proc(service) is not None
    environ = Path(f"/proc/{service}/environ").read_bytes().split(b"\0")
    assert [item for item in environ if SECRET.encode() in item or item.startswith(b"AIOPS_API_TOKEN=")] == []
    assert b"SERVICE_MODE=repair" in environ


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["cgroup", "subreaper"])
def test_after_a_sigkill_the_new_agent_kills_the_runs_leftovers_but_not_the_service_it_restarted(
        tmp_path, pbdir, work, subprocess_env, tracking):
    store, incident, start = _start_restart_agent(tmp_path, pbdir, work, subprocess_env, tracking)
    service = leftover = None
    daemon = start()
    try:
        wait_until(lambda: _pid(work / "leftover.pid"), 60, message="the run to restart the service and hang")
        service, leftover = _pid(work / "service.pid"), _pid(work / "leftover.pid")
        (run,) = store.list_runs(incident_id=incident.id, mode=RunMode.APPLY)
        assert run.status is RunStatus.RUNNING
        # subreaper tracking records what it adopted every 0.1 s (a process orphaned just before a
        # SIGKILL is its documented gap); a cgroup holds the leftover from its fork on
        wait_until(lambda: leftover in run_pids(store, run), 10, message="the run's tracking to hold the leftover")
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
        assert processes.proc(service) is not None and processes.proc(leftover) is not None
        assert leftover in run_pids(store, run) and service not in run_pids(store, run)

        daemon = start()
        wait_until(lambda: store.get_run(run.id).status is RunStatus.INTERRUPTED, 60, message="the interrupted run")
        _assert_service_kept_and_clean(service)
        assert processes.proc(leftover) is None
        assert run_pids(store, run) == []
        reason = store.get_run(run.id).reason
        assert re.fullmatch(rf"the agent running it \({run.owner}\) stopped mid-run; not re-run; "
                            r"killed \d+ leftover processes", reason), reason
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        store.close()
        for pid in (service, leftover):
            if pid is not None and processes.proc(pid) is not None:
                os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["cgroup", "subreaper"])
def test_sigterm_mid_run_kills_the_run_but_not_the_service_it_restarted(tmp_path, pbdir, work, subprocess_env,
                                                                       tracking):
    store, incident, start = _start_restart_agent(tmp_path, pbdir, work, subprocess_env, tracking)
    service = leftover = None
    daemon = start()
    try:
        wait_until(lambda: _pid(work / "leftover.pid"), 60, message="the run to restart the service and hang")
        service, leftover = _pid(work / "service.pid"), _pid(work / "leftover.pid")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        (run,) = store.list_runs(incident_id=incident.id, mode=RunMode.APPLY)
        assert (run.status, run.reason) == (RunStatus.INTERRUPTED, "the agent was stopping; the run was killed")
        _assert_service_kept_and_clean(service)
        assert processes.proc(leftover) is None
        assert run_pids(store, run) == []
    finally:
        if daemon.poll() is None:
            daemon.kill()
        store.close()
        for pid in (service, leftover):
            if pid is not None and processes.proc(pid) is not None:
                os.kill(pid, signal.SIGKILL)
