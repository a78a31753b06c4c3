"""One ansible-runner execution in a fresh private_data_dir, with a hard timeout.

ansible-runner reuses ``env/cmdline`` and friends from a private_data_dir it has seen before (a
real run after a check run would silently stay in check mode), so every execution gets a new
directory. Variables from incident labels are written to a vars file with YAML's ``!unsafe``
tag, which ansible never templates; the host list goes through ``--limit @file``, so no label
value ever lands in a command line.

Every process of an execution is tracked by the kernel (``remediations.processes``: a cgroup per
run, or the agent as child subreaper), so one that leaves ansible's process group or clears its
environment is still found. At the timeout, on cancellation and when the run ends, whatever of it
is still running gets SIGTERM, then SIGKILL; a service started through ``aiops_detach`` is kept.

Playbooks get a scrubbed environment: the names in ``ALLOWED_ENV`` from the agent's, what the
rule passes on purpose (``env``, ``pass_env``), and ansible's own settings; nothing else of the
agent's environment (``AIOPS_API_TOKEN`` and any other secret) reaches ansible or its children.

ansible-runner is driven through ``ansible_runner.run`` and its documented arguments only. It
starts ``ansible-playbook`` by name on the PATH it is given, and the run's own ``bin`` comes first
there: its ``ansible-playbook`` execs ``remediations/launch.py``, which joins the run's tracking,
scrubs the environment and becomes the real ``ansible-playbook``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.flow.runs import HostSummary, RunnerStatus
from agent.log import kv
from remediations import processes

log = logging.getLogger(__name__)

# From the agent's environment only these reach a playbook (plus LC_*); the rest may be secrets.
ALLOWED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR")
OUTPUT_CHARS = 16_000
LAUNCH_SCRIPT = Path(__file__).resolve().parent / "launch.py"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Unsafe(str):
    """A string ansible must never template: written as ``!unsafe`` in the vars file."""


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style="'"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """What one ansible-runner execution produced."""

    status: RunnerStatus
    rc: int
    host_summary: Mapping[str, HostSummary] = field(default_factory=dict)
    output: str = ""
    private_dir: Path
    duration_s: float = 0.0
    killed: tuple[int, ...] = ()    # pids of the run's processes still running at its end, killed


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


def playbook_env(agent_env: Mapping[str, str], *, env: Mapping[str, str] = {},
                 pass_env: Sequence[str] = ()) -> dict[str, str]:
    """The environment a playbook starts with: allowed names and ``pass_env`` names from
    ``agent_env``, then ``env`` (a rule's own values). PATH leads with this interpreter's bin dir,
    where ansible-playbook is."""
    out = {k: v for k, v in agent_env.items() if k in ALLOWED_ENV or k.startswith("LC_") or k in pass_env}
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{agent_env.get('PATH', '/usr/bin:/bin')}"
    out.update(env)
    return out


def _ansible_runner_run() -> Callable[..., Any]:
    """``ansible_runner.run``, imported here: the package is slow to import and only this stage
    needs it. Importing the package (not one of its modules) matters: two runs starting together
    in a fresh process would otherwise race, the second getting ``ansible_runner.interface``
    (complete) while the package is still loading its plugins, when ``ansible_runner.plugins`` is
    still a module and not yet the dict every run iterates (TypeError: 'module' object is not
    iterable). Importing the package waits for the first thread to finish it."""
    import ansible_runner

    run: Callable[..., Any] = ansible_runner.run
    return run


def launcher(private_dir: Path, *, join: Path, agent_env: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """Put ``bin/ansible-playbook`` (which execs ``launch.py``) in ``private_dir`` and return the
    environment to hand ansible-runner: ``given``, PATH led by that ``bin``, and every other name
    of ``agent_env`` set to "" so that the launcher drops it (ansible-runner starts from a copy of
    the agent's whole environment; a name it sets for itself keeps its value)."""
    bin_dir = private_dir / "bin"
    bin_dir.mkdir(mode=0o700)
    dropped = sorted(name for name in agent_env if name not in given)
    config = private_dir / "launch.json"
    config.write_text(json.dumps({"join": str(join), "drop": dropped, "path": given["PATH"]}), encoding="utf-8")
    config.chmod(0o600)
    script = bin_dir / "ansible-playbook"
    script.write_text(f"#!/bin/sh\nexec {shlex.join([local_python(), '-I', '-S', str(LAUNCH_SCRIPT), str(config)])}"
                      ' "$@"\n', encoding="utf-8")
    script.chmod(0o700)
    return {**dict.fromkeys(dropped, ""), **given, "PATH": f"{bin_dir}{os.pathsep}{given['PATH']}"}


def prepare(private_dir: Path, *, targets: Sequence[str], check: bool, trusted_vars: Mapping[str, Any],
            label_vars: Mapping[str, str], inventory: Path | None) -> list[str]:
    """A fresh ``private_dir`` with the run's vars file, host list and (without ``inventory``) the
    local inventory; returns ansible-playbook's options that name them."""
    if private_dir.exists():
        shutil.rmtree(private_dir)
    (private_dir / "inventory").mkdir(parents=True, mode=0o700)
    vars_file = private_dir / "aiops-vars.yml"
    detach = [local_python(), str(processes.DETACH_SCRIPT)]
    write_vars(vars_file, {**trusted_vars, "aiops_detach": detach}, label_vars)
    limit_file = private_dir / "limit.txt"
    limit_file.write_text("".join(f"{host}\n" for host in targets), encoding="utf-8")
    if inventory is None:
        (private_dir / "inventory" / "hosts").write_text(local_inventory(), encoding="utf-8")
    return (["--check", "--diff"] if check else []) + ["-e", f"@{vars_file}", "--limit", f"@{limit_file}"]


def execute(*, playbook: Path, project_dir: Path, private_dir: Path, targets: Sequence[str],
            check: bool, trusted_vars: Mapping[str, Any], label_vars: Mapping[str, str],
            timeout_s: float, run_key: str, inventory: Path | None = None,
            env: Mapping[str, str] = {}, pass_env: Sequence[str] = (), tracking: str = "auto",
            grace_s: float = processes.KILL_GRACE_S,
            cancel: Callable[[], bool] | None = None, tick: Callable[[], None] | None = None) -> Execution:
    """Run ``playbook`` on ``targets`` (inventory hosts) and wait, at most ``timeout_s``; its
    processes then get SIGTERM and, ``grace_s`` later, SIGKILL."""
    ansible_run = _ansible_runner_run()
    args = prepare(private_dir, targets=targets, check=check, trusted_vars=trusted_vars, label_vars=label_vars,
                   inventory=inventory)
    run = processes.tracking(tracking, key=run_key, run_dir=private_dir)
    given = _ansible_env(private_dir, run, env=env, pass_env=pass_env)
    envvars = launcher(private_dir, join=run.join_file(), agent_env=dict(os.environ), given=given)
    guard = _Guard(run=run, timeout_s=timeout_s, grace_s=grace_s, cancel=cancel, tick=tick)
    watchdog = threading.Thread(target=guard.watchdog, name=f"runner-watchdog-{run_key}", daemon=True)
    watchdog.start()
    started = time.monotonic()
    run.start()
    try:
        runner = ansible_run(
            private_data_dir=str(private_dir), project_dir=str(project_dir), playbook=str(playbook),
            inventory=str(inventory) if inventory is not None else None, cmdline=shlex.join(args),
            envvars=envvars, quiet=True, ident="run",
            # ansible-runner's own timeout only backs ours up: it SIGKILLs without a SIGTERM first.
            timeout=max(1, int(timeout_s + grace_s + 5.999)),
            settings={"pexpect_timeout": 0.2, "suppress_ansible_output": True},
            cancel_callback=guard.cancel_callback)
    finally:
        guard.finished.set()
        watchdog.join()  # a timeout's SIGTERM and SIGKILL are done, and counted, before the result
        guard.killed.extend(processes.terminate(run, grace_s=grace_s))
    duration = time.monotonic() - started
    status, rc = RunnerStatus(runner.status), int(runner.rc if runner.rc is not None else -1)
    killed = guard.killed
    if killed:
        log.warning(kv("remediation.killed_leftovers", run=run_key, tracking=str(run.mode),
                       pids=",".join(map(str, killed))))
    if guard.timed_out.is_set() and status is not RunnerStatus.CANCELED:
        status, rc = RunnerStatus.TIMEOUT, 254  # ansible-runner's rc for a run it ends itself
    return Execution(status=status, rc=rc, host_summary=host_summary(runner), output=read_output(runner),
                     private_dir=private_dir, duration_s=duration, killed=tuple(dict.fromkeys(killed)))


def _ansible_env(private_dir: Path, run: processes.RunProcesses, *, env: Mapping[str, str],
                 pass_env: Sequence[str]) -> dict[str, str]:
    """The environment ansible-playbook is meant to get: the playbook's, the run's tracking and
    ansible's own settings."""
    return {
        **playbook_env(os.environ, env=env, pass_env=pass_env),
        **run.env(),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_PIPELINING": "1",  # modules go over stdin: no temp files per task
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "tmp"),
    }


@dataclass(kw_only=True)
class _Guard:
    """The timeout and the cancellation of one execution: either ends its processes (SIGTERM
    first), and the pids killed are kept."""

    run: processes.RunProcesses
    timeout_s: float
    grace_s: float
    cancel: Callable[[], bool] | None
    tick: Callable[[], None] | None
    finished: threading.Event = field(default_factory=threading.Event)
    timed_out: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    killed: list[int] = field(default_factory=list)

    def watchdog(self) -> None:
        """Wait for the run to finish; at the timeout, end its processes."""
        if not self.finished.wait(self.timeout_s):
            self.timed_out.set()
            self.killed.extend(processes.terminate(self.run, grace_s=self.grace_s))

    def cancel_callback(self) -> bool:
        """ansible-runner's question, asked as the run goes: whether to stop it."""
        if self.tick is not None:
            self.tick()
        if not self.stopped.is_set() and self.cancel is not None and self.cancel():
            self.stopped.set()
            # SIGTERM first; ansible-runner SIGKILLs
            self.killed.extend(processes.terminate(self.run, grace_s=self.grace_s))
        return self.stopped.is_set()


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

def rotate(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` run directories under ``root``."""
    if not root.is_dir():
        return []
    dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = dirs[keep:]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
