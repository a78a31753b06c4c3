"""The installed unit and the code agree on cgroups: under the unit's own view of /sys/fs/cgroup
the agent tracks a playbook run in a cgroup of its own.

systemd is not PID 1 here, so the unit cannot be started. What it would give the agent is built
by hand from the installed unit's own settings, as systemd builds it: a cgroup for the unit (that
the agent may write only with ``Delegate=yes``), the agent placed in it, then a mount namespace
(``unshare``) in which ``ProtectControlGroups=yes`` makes the cgroup file system read-only. In that
view a child process runs the agent's tracking: it must choose cgroup mode, move itself into the
leaf ``<unit>/aiops/agent``, and find and kill a run's process that left its session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.agent.test_service import installed  # noqa: F401  (the fixture: aiops service install --prefix)
from tests.conftest import PYTHON

CHILD = r"""
import json, os, subprocess, sys, time
from pathlib import Path
from remediations import processes

run_dir = Path(sys.argv[1])
groups = processes.cgroups()
own = next(l[3:] for l in Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::"))
out = {"mode": "cgroup" if groups else "subreaper", "own": own}
if groups:
    run = processes.tracking("auto", key="unit-view", run_dir=run_dir)
    pidfile = run_dir / "sleep.pid"
    shell = subprocess.Popen(run.wrap(["/bin/sh", "-c", f"setsid sleep 300 & echo $! > {pidfile}; wait"]),
                             env={**os.environ, **run.env()})
    for _ in range(200):  # at most 10 s
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    out["cgroup"] = str(run.path)
    out["member"] = pid in run.pids()
    run.kill_all()
    shell.wait(timeout=10)
    for _ in range(200):
        state = processes.stat(pid)
        if state is None or state[0] == "Z":
            break
        time.sleep(0.05)
    out["killed"] = processes.stat(pid) is None or processes.stat(pid)[0] == "Z"
    run.close()
print(json.dumps(out))
"""


def service_settings(unit: Path) -> dict[str, str]:
    section, found = "", {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


def cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


def remove_tree(path: Path) -> None:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        child.rmdir()
    path.rmdir()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or cgroup2_mount() is None,
                    reason="needs root, unshare and a cgroup2 mount")
def test_a_run_is_tracked_in_its_own_cgroup_under_the_units_view_of_sys_fs_cgroup(installed, tmp_path,  # noqa: F811
                                                                                   subprocess_env):
    settings = service_settings(installed / "etc/systemd/system/aiops-agent.service")
    mount = cgroup2_mount()
    unit = mount / f"aiops-test-{uuid.uuid4().hex[:8]}.service"  # where systemd puts the unit's processes
    unit.mkdir()
    read_only = [str(mount)] if settings.get("ProtectControlGroups", "no") == "yes" else []
    if settings.get("Delegate", "no") != "yes":
        read_only.append(str(unit))  # not delegated: the unit's cgroup is systemd's, not the agent's
    remount = "".join(f'mount --bind "{p}" "{p}" && mount -o remount,bind,ro "{p}" && ' for p in read_only)
    script = f'echo $$ > "{unit}/cgroup.procs" && {remount}exec "{PYTHON}" -c "$0" "{tmp_path}"'
    try:
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, CHILD],
                              env=subprocess_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.splitlines()[-1])
    finally:
        remove_tree(unit)

    relative = "/" + str(unit.relative_to(mount))
    assert seen == {"mode": "cgroup", "own": f"{relative}/aiops/agent", "cgroup": str(unit / "aiops/runs/unit-view"),
                    "member": True, "killed": True}
    assert (settings.get("Delegate"), settings.get("ProtectControlGroups")) == ("yes", "no")
