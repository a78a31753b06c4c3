"""Each playbook of the library against localhost (connection local) in a throw-away directory,
the header convention, ``aiops playbook lint`` and ``aiops playbook test``."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.flow.runs import RunnerStatus
from agent.incidents.summary import playbook_report
from remediations.playbooks import PlaybookError, lint, playbooks, read_header
from remediations.runner import Execution, execute
from tests.conftest import REPO, wait_until

LIBRARY = REPO / "playbooks"
# A stand-in for a service or model worker: writes its pid to the pidfile given last, then runs
# until a signal ends it.
SERVICE_ARGV = [sys.executable, "-c",
                "import os, signal, sys; open(sys.argv[1], 'w').write(str(os.getpid())); signal.pause()"]


def run(playbook: str, tmp_path: Path, *, check: bool = False, **variables: Any) -> Execution:
    return execute(playbook=LIBRARY / playbook, project_dir=LIBRARY, private_dir=tmp_path / f"run-{time.monotonic_ns()}",
                   targets=["localhost"], check=check, trusted_vars=variables, label_vars={}, timeout_s=120,
                   run_key=f"test-{tmp_path.name}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Processes a test started through a playbook, killed at the end."""
    started: list[int] = []
    yield started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_service(pidfile: Path, pids: list[int]) -> int:
    import subprocess

    proc = subprocess.Popen([*SERVICE_ARGV, str(pidfile)], start_new_session=True)
    pids.append(proc.pid)
    wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10, message="the service's pidfile")
    return proc.pid


def test_restart_service_without_systemd_restarts_the_process_from_its_pidfile(tmp_path, pids):
    pidfile = tmp_path / "api.pid"
    old = start_service(pidfile, pids)

    result = run("restart_service.yml", tmp_path, service_name="api", service_pidfile=str(pidfile),
                 service_start_argv=SERVICE_ARGV)

    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    new = int(pidfile.read_text())
    pids.append(new)
    assert new != old and alive(new)
    wait_until(lambda: not alive(old), 10, message="the old process to exit")
    assert result.host_summary["localhost"].changed >= 2


def test_free_disk_check_mode_changes_nothing_then_compresses_only_old_files(tmp_path):
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    old, recent, other = logs / "app.log", logs / "sub" / "app.log.1", logs / "keep.txt"
    for path in (old, recent, other):
        path.write_text("x" * 1000)
    ten_days_ago = time.time() - 10 * 86400
    for path in (old, other):
        os.utime(path, (ten_days_ago, ten_days_ago))

    checked = run("free_disk.yml", tmp_path, check=True, cleanup_path=str(logs))
    assert checked.status is RunnerStatus.SUCCESSFUL and old.exists()

    result = run("free_disk.yml", tmp_path, cleanup_path=str(logs))
    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    assert sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*") if p.is_file()) == \
        ["app.log.gz", "keep.txt", "sub/app.log.1"]
    assert f'"msg": "1 old files under {logs} (compress)"' in result.output


def test_free_disk_refuses_the_root_directory(tmp_path):
    result = run("free_disk.yml", tmp_path, cleanup_path="/", cleanup_action="delete")
    assert result.status == "failed"
    assert "cleanup_path must be an absolute directory other than /" in result.output


def three_versions(tmp_path: Path) -> Path:
    """A models dir serving v3, with v1 and v2 before it in its history."""
    models = tmp_path / "models"
    for version in ("v1", "v2", "v3"):
        (models / "versions" / version).mkdir(parents=True)
    (models / "current").symlink_to("versions/v3")
    (models / "history").write_text("v1\nv2\nv3\n")
    return models


def test_rollback_model_points_current_at_the_previous_version(tmp_path):
    models = three_versions(tmp_path)

    result = run("rollback_model.yml", tmp_path, models_dir=str(models), model_name="fraud")

    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    assert os.readlink(models / "current") == "versions/v2"
    assert (models / "history").read_text() == "v1\nv2\n"
    # the incident summary quotes the Report task's message, read from ansible's own output
    assert playbook_report(result.output) == "rolled back fraud v3 → v2"


def test_rollback_model_named_from_a_version_steps_back_once_however_often_it_runs(tmp_path):
    models = three_versions(tmp_path)

    def rollback() -> Execution:  # the version comes as the rollout engine sends it: untrusted text
        return execute(playbook=LIBRARY / "rollback_model.yml", project_dir=LIBRARY,
                       private_dir=tmp_path / f"run-{time.monotonic_ns()}", targets=["localhost"], check=False,
                       trusted_vars={"models_dir": str(models), "model_name": "fraud"},
                       label_vars={"model_version": "v3"}, timeout_s=120, run_key=f"test-{tmp_path.name}")

    first, again = rollback(), rollback()

    assert (first.status, again.status) == (RunnerStatus.SUCCESSFUL, RunnerStatus.SUCCESSFUL), again.output
    assert os.readlink(models / "current") == "versions/v2"
    assert (models / "history").read_text() == "v1\nv2\n"
    assert playbook_report(again.output) == "fraud v3 is not the newest version (v2): nothing to roll back"


def test_restart_model_worker_restarts_wanted_workers_and_stops_the_rest(tmp_path, pids):
    workers = tmp_path / "workers"
    workers.mkdir()
    first = start_service(workers / "worker-0.pid", pids)
    extra = start_service(workers / "worker-1.pid", pids)

    result = run("restart_model_worker.yml", tmp_path, worker_dir=str(workers), worker_start_argv=SERVICE_ARGV,
                 worker_count=1)

    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    new = int((workers / "worker-0.pid").read_text())
    pids.append(new)
    assert new != first and alive(new)
    assert not (workers / "worker-1.pid").exists()
    wait_until(lambda: not alive(first) and not alive(extra), 10, message="the old workers to exit")


def test_collect_diagnostics_gathers_processes_disk_and_logs(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    artifact = tmp_path / "artifacts"
    artifact.mkdir()

    result = run("collect_diagnostics.yml", tmp_path, log_paths=[str(log)], log_lines=3,
                 aiops_artifact_dir=str(artifact))

    assert result.status is RunnerStatus.SUCCESSFUL, result.output
    report = (artifact / "diagnostics-localhost.txt").read_text()
    assert "== localhost: top processes" in report and "PID" in report
    assert f"== {log}\nline 97\nline 98\nline 99" in report
    assert "== disk" in report and "== localhost: top processes" in result.output


def test_every_library_playbook_has_its_header_and_passes_lint():
    assert [p.name for p in playbooks(LIBRARY)] == ["collect_diagnostics.yml", "free_disk.yml", "promote_model.yml",
                                                   "restart_model_worker.yml", "restart_service.yml",
                                                   "retrain_model.yml", "rollback_model.yml", "rollout_model.yml"]
    assert read_header(LIBRARY / "rollback_model.yml").idempotent is False
    # training runs a command, which check mode skips: the only one a check pass cannot preview
    assert [p.name for p in playbooks(LIBRARY) if not read_header(p).check_mode_safe] == ["retrain_model.yml"]
    assert lint(LIBRARY) == []


def test_lint_refuses_a_playbook_without_its_header(tmp_path):
    config = _config(tmp_path)
    tmp_path = tmp_path / "playbooks"
    tmp_path.mkdir()
    (tmp_path / "good.yml").write_text((LIBRARY / "free_disk.yml").read_text())
    (tmp_path / "bare.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "vague.yml").write_text("# fixes: x\n# vars: none\n# idempotent: maybe\n# check_mode_safe: no\n"
                                        "- hosts: all\n")
    with pytest.raises(PlaybookError):
        read_header(tmp_path / "bare.yml")

    result = CliRunner().invoke(cli, ["playbook", "lint", "--dir", str(tmp_path), "--no-syntax",
                                      "--config", str(config)])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{tmp_path / 'bare.yml'}: expected a header with fixes, vars, idempotent, check_mode_safe, "
        "found none for fixes, vars, idempotent, check_mode_safe",
        f"{tmp_path / 'vague.yml'}: header idempotent: expected yes or no, found 'maybe'",
    ]


def test_playbook_test_runs_check_mode_with_the_variables_the_incident_gives(tmp_path):
    target = tmp_path / "logs"
    target.mkdir()
    old = target / "old.log"
    old.write_text("x")
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    incident = tmp_path / "incident.yaml"
    incident.write_text("severity: warning\nlabels: {service: api, mount: data}\n"
                        "signals:\n  - {series_id: 'disk_free{mount=\"data\"}', detector: threshold, metric: disk_free}\n")
    config = _config(tmp_path, f"""
remediation:
  playbook_dir: {LIBRARY}
  rules:
    - name: disk
      match: {{detector: threshold, labels: {{service: api}}}}
      playbook: free_disk.yml
      vars: {{cleanup_path: {target}, cleanup_action: delete}}
      vars_from_labels: {{mount_name: mount}}
""")

    result = CliRunner().invoke(cli, ["playbook", "test", "free_disk.yml", "--incident", str(incident),
                                      "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("rule: disk\nvariables: ")
    assert '"cleanup_action": "delete"' in result.output and '"mount_name": "data"' in result.output
    assert result.output.endswith("check run successful (rc 0)\n")
    assert "TASK [Delete them]" in result.output
    assert old.exists()  # check mode


def _config(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(f"agent: {{state_dir: {tmp_path / 'state'}}}\n" + text)
    return path
