"""One ansible-runner execution in a fresh private_data_dir, with a hard timeout.

ansible-runner reuses ``env/cmdline`` and friends from a private_data_dir it has seen before (a
real run after a check run would silently stay in check mode), so every execution gets a new
directory. Variables from incident labels are written to a vars file with YAML's ``!unsafe``
tag, which ansible never templates; the host list goes through ``--limit @file``, so no label
value ever lands in a command line. Every process of an execution carries an environment marker;
at the timeout (or after the agent died mid-run) every process bearing it is killed, which also
reaches children that left ansible's process group.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.log import kv
from remediations.model import HostSummary

log = logging.getLogger(__name__)

MARKER_ENV = "AIOPS_REMEDIATION_RUN"
OUTPUT_CHARS = 16_000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_KILL_GRACE_S = 2.0


class Unsafe(str):
    """A string ansible must never template: written as ``!unsafe`` in the vars file."""


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style="'"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """What one ansible-runner execution produced."""

    status: str                 # successful, failed, timeout, canceled
    rc: int
    host_summary: Mapping[str, HostSummary] = field(default_factory=dict)
    output: str = ""
    private_dir: Path
    duration_s: float = 0.0


def write_vars(path: Path, trusted: Mapping[str, Any], untrusted: Mapping[str, str]) -> None:
    """Config variables as they are; label-derived ones tagged ``!unsafe``."""
    body: dict[str, Any] = dict(trusted)
    body.update({key: Unsafe(value) for key, value in untrusted.items()})
    path.write_text(yaml.dump(body, Dumper=_VarsDumper, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)


def local_python() -> str:
    """The interpreter modules run under on this host: the system one starts about three times
    faster than a virtual environment's (modules need only the standard library)."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def local_inventory() -> str:
    return f"localhost ansible_connection=local ansible_python_interpreter={local_python()}\n"


def execute(*, playbook: Path, project_dir: Path, private_dir: Path, targets: Sequence[str],
            check: bool, trusted_vars: Mapping[str, Any], label_vars: Mapping[str, str],
            timeout_s: float, marker: str, inventory: Path | None = None,
            cancel: Callable[[], bool] | None = None, tick: Callable[[], None] | None = None) -> Execution:
    """Run ``playbook`` on ``targets`` (inventory hosts) and wait, at most ``timeout_s``."""
    import ansible_runner  # imported here: it is slow to import and only this stage needs it

    if private_dir.exists():
        shutil.rmtree(private_dir)
    (private_dir / "inventory").mkdir(parents=True, mode=0o700)
    vars_file = private_dir / "aiops-vars.yml"
    write_vars(vars_file, trusted_vars, label_vars)
    limit_file = private_dir / "limit.txt"
    limit_file.write_text("".join(f"{host}\n" for host in targets), encoding="utf-8")
    if inventory is None:
        (private_dir / "inventory" / "hosts").write_text(local_inventory(), encoding="utf-8")
    args = (["--check", "--diff"] if check else []) + ["-e", f"@{vars_file}", "--limit", f"@{limit_file}"]
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        MARKER_ENV: marker,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_PIPELINING": "1",  # modules go over stdin: no temp files per task
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
    }
    deadline = time.monotonic() + timeout_s
    finished = threading.Event()
    killed = threading.Event()

    def watchdog() -> None:
        # ansible-runner kills its process group at the timeout; this catches what escaped it.
        if not finished.wait(timeout_s + _KILL_GRACE_S):
            killed.set()
            kill_marked(marker)

    def cancel_callback() -> bool:
        if tick is not None:
            tick()
        if time.monotonic() > deadline:
            killed.set()
        return bool(cancel and cancel())

    threading.Thread(target=watchdog, name=f"runner-watchdog-{marker}", daemon=True).start()
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private_dir), project_dir=str(project_dir), playbook=str(playbook),
            inventory=str(inventory) if inventory is not None else None, cmdline=shlex.join(args),
            envvars=env, timeout=max(1, int(timeout_s + 0.999)), quiet=True,
            settings={"pexpect_timeout": 0.2, "suppress_ansible_output": True},
            cancel_callback=cancel_callback, ident="run")
    finally:
        finished.set()
    duration = time.monotonic() - started
    status, rc = str(runner.status), int(runner.rc if runner.rc is not None else -1)
    if status in ("timeout", "canceled") or killed.is_set():
        left = kill_marked(marker)
        if left:
            log.warning(kv("remediation.killed_leftovers", marker=marker, pids=",".join(map(str, left))))
        if killed.is_set() and status not in ("canceled",):
            status = "timeout"
    return Execution(status=status, rc=rc, host_summary=host_summary(runner), output=read_output(runner),
                     private_dir=private_dir, duration_s=duration)


def host_summary(runner: Any) -> dict[str, HostSummary]:
    """Per host counts from the playbook's final stats, or from the events when there are none
    (a run killed at its timeout never reaches the stats)."""
    stats = runner.stats
    counts: dict[str, dict[str, int]] = {}

    def bump(host: str, key: str, n: int = 1) -> None:
        counts.setdefault(host, {}).setdefault(key, 0)
        counts[host][key] += n

    if stats:
        for key, source in (("ok", "ok"), ("changed", "changed"), ("failed", "failures"),
                            ("unreachable", "dark"), ("skipped", "skipped")):
            for host, n in (stats.get(source) or {}).items():
                bump(host, key, int(n))
    else:
        for event in runner.events:
            data = event.get("event_data") or {}
            host = data.get("host")
            kind = event.get("event", "")
            if not host:
                continue
            if kind == "runner_on_ok":
                bump(host, "ok")
                if (data.get("res") or {}).get("changed"):
                    bump(host, "changed")
            elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                bump(host, "failed")
            elif kind == "runner_on_unreachable":
                bump(host, "unreachable")
            elif kind == "runner_on_skipped":
                bump(host, "skipped")
    return {host: HostSummary(**c) for host, c in sorted(counts.items())}


def read_output(runner: Any) -> str:
    try:
        text = Path(runner.stdout.name).read_text(encoding="utf-8", errors="replace")
    except (OSError, AttributeError):
        return ""
    text = _ANSI.sub("", text)
    return text[-OUTPUT_CHARS:]


# -- processes ---------------------------------------------------------------------------------

def marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries ``MARKER_ENV=marker``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_marked(marker: str, *, rounds: int = 5) -> list[int]:
    """SIGKILL every process bearing ``marker`` (again, in case one forked meanwhile)."""
    killed: list[int] = []
    for _ in range(rounds):
        pids = marked_pids(marker)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return killed


def rotate(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` run directories under ``root``."""
    if not root.is_dir():
        return []
    dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = dirs[keep:]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
