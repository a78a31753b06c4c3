"""Which processes belong to a playbook run, and ending them.

A run's processes are tracked by the kernel, never by something a process can drop (an
environment variable, its process group or session), so ``env -i setsid ...`` is still caught:

- ``cgroup`` (preferred, needs a writable cgroup v2): every run gets a cgroup of its own,
  ``<agent's cgroup>/aiops/runs/<run key>``; ansible-playbook joins it before it execs and all it
  starts stays in it. A new agent finds a dead run's cgroup by the same name. The agent itself
  moves into the leaf ``<agent's cgroup>/aiops/agent`` (unless its cgroup is the hierarchy's
  root): under systemd its cgroup is the unit's delegated one (``Delegate=yes``), and cgroup v2
  wants processes only in leaves of a tree that has children.
- ``subreaper`` (otherwise): the agent becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so
  a process whose parent exits is re-parented to the agent instead of init. A run's processes are
  the descendants of its ansible-playbook plus the children the agent adopted since the run
  started; a sampler writes them (pid and start time) to ``<run dir>/tracking/processes`` every 0.1 s,
  which is what a new agent reads after a SIGKILL. A process forked and orphaned between the last
  sample and the SIGKILL of the agent is missed: the one gap of this mode. It assumes one run at a
  time per agent process: two runs at once could not tell their adopted orphans apart, a cgroup
  per run can. So under it the worker pool runs one job at a time (``separates_runs``), and the
  cycle's own stages start no processes.

A playbook keeps a service it starts on purpose by starting it through ``aiops_detach``
(``remediations/detach.py``): in cgroup mode the process moves to ``<agent's cgroup>/aiops/detached``,
in subreaper mode its pid and start time go to ``<run dir>/tracking/detached``. Nothing detached
is killed.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from agent.log import kv

log = logging.getLogger(__name__)

DETACH_ENV = "AIOPS_DETACH"          # tells remediations/detach.py where a detached process goes
DETACH_SCRIPT = Path(__file__).resolve().parent / "detach.py"
_PR_SET_CHILD_SUBREAPER = 36
_SAMPLE_S = 0.1
KILL_GRACE_S = 2.0                   # from SIGTERM to SIGKILL
# The pexpect child writes its pid where the tracking wants it, then becomes ansible-playbook:
# nothing of the run exists before it is tracked.
_JOIN = 'echo $$ > "$1" || exit 125; shift; exec "$@"'


class Mode(StrEnum):
    CGROUP = "cgroup"
    SUBREAPER = "subreaper"


@dataclass(frozen=True, slots=True)
class Proc:
    """A process told apart from a later one with the same pid by its start time (clock ticks)."""

    pid: int
    start: int


def stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, start ticks, session) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19]), int(fields[3])


def alive(proc: Proc) -> bool:
    """Still running (a zombie has finished) and still the same process."""
    s = stat(proc.pid)
    return s is not None and s[0] != "Z" and s[2] == proc.start


def proc(pid: int) -> Proc | None:
    s = stat(pid)
    return None if s is None or s[0] == "Z" else Proc(pid, s[2])


def _table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, start, session) of every live process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = stat(int(entry))
            if s is not None and s[0] != "Z":
                out[int(entry)] = s[1:]
    return out


def _kept(record: Path, table: dict[int, tuple[int, int, int]]) -> set[int]:
    """Detached processes named in ``record`` (still the same ones), their descendants and the
    rest of their sessions (a service that daemonizes again keeps its session)."""
    roots = {p.pid for p in read_procs(record) if p.pid in table and table[p.pid][1] == p.start}
    sessions = {table[pid][2] for pid in roots}
    return roots | descendants(roots, table) | {pid for pid, row in table.items() if row[2] in sessions}


def descendants(roots: Iterable[int], table: dict[int, tuple[int, int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def read_procs(path: Path) -> set[Proc]:
    """``pid start`` lines (the record files of the subreaper mode)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    out = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            out.add(Proc(int(parts[0]), int(parts[1])))
    return out


class RunProcesses(Protocol):
    """The processes of one run, from before ansible-playbook starts until they are all gone."""

    mode: Mode

    def join_file(self) -> Path:
        """Where the run's first process writes its pid before it execs ansible-playbook: from
        then on it, and all it starts, is tracked. Prepares the tracking."""

    def wrap(self, command: Sequence[str]) -> list[str]:
        """``command`` prefixed so its process is tracked before it execs."""

    def env(self) -> dict[str, str]:
        """What the run's environment needs so ``aiops_detach`` works."""

    def start(self) -> None:
        """Called once the command has been started."""

    def pids(self) -> list[int]:
        """The run's processes still alive, detached ones excepted."""

    def kill_all(self) -> None:
        """SIGKILL them all at once, where the tracking can."""

    def close(self) -> None:
        """Forget the run (its processes are gone or were killed)."""


def _wrap(join: Path, command: Sequence[str]) -> list[str]:
    return ["/bin/sh", "-c", _JOIN, "aiops-run", str(join), *command]


# -- cgroup v2 ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cgroups:
    """``<agent's cgroup>/aiops``: ``runs/<key>`` per run, ``detached`` for kept services."""

    base: Path

    @property
    def detached(self) -> Path:
        return self.base / "detached"

    def run(self, key: str) -> Path:
        return self.base / "runs" / key

    def members(self, path: Path) -> list[int]:
        try:
            return [int(line) for line in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return []


@dataclass(slots=True)
class CgroupRun:
    cgroups: Cgroups
    key: str
    mode: Mode = Mode.CGROUP

    @property
    def path(self) -> Path:
        return self.cgroups.run(self.key)

    def join_file(self) -> Path:
        self.path.mkdir(exist_ok=True)
        return self.path / "cgroup.procs"

    def wrap(self, command: Sequence[str]) -> list[str]:
        return _wrap(self.join_file(), command)

    def env(self) -> dict[str, str]:
        return {DETACH_ENV: f"cgroup:{self.cgroups.detached / 'cgroup.procs'}"}

    def start(self) -> None:
        pass

    def pids(self) -> list[int]:
        return [pid for pid in self.cgroups.members(self.path) if proc(pid) is not None]

    def kill_all(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")  # kernel 5.14+: atomic, even against forks
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # still populated (a process not yet reaped) or already gone


# -- subreaper ---------------------------------------------------------------------------------

@dataclass(slots=True)
class SubreaperRun:
    run_dir: Path
    mode: Mode = Mode.SUBREAPER
    _since: float = field(default=0.0)
    _root: Proc | None = None
    _seen: set[Proc] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def record(self) -> Path:
        return self.run_dir / "processes"

    @property
    def detached_file(self) -> Path:
        return self.run_dir / "detached"

    def join_file(self) -> Path:
        subreaper().reap()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._since = _boot_ticks()
        return self.run_dir / "root.pid"

    def wrap(self, command: Sequence[str]) -> list[str]:
        return _wrap(self.join_file(), command)

    def env(self) -> dict[str, str]:
        return {DETACH_ENV: f"file:{self.detached_file}"}

    def start(self) -> None:
        threading.Thread(target=self._sample_loop, name=f"run-sampler-{self.run_dir.name}", daemon=True).start()

    def _sample_loop(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            self.pids()

    def pids(self) -> list[int]:
        """Descendants of the root, and children the agent adopted since the run started, that
        are not detached; each newly seen one is appended to the record."""
        with self._lock:
            table = _table()
            if self._root is None:
                root = read_procs_pid(self.run_dir / "root.pid")
                if root is not None and root in table:
                    self._root = Proc(root, table[root][1])
            me = os.getpid()
            roots = [self._root.pid] if self._root is not None and alive(self._root) else []
            adopted = [pid for pid, (ppid, start, _) in table.items()
                       if ppid == me and start >= self._since and (self._root is None or pid != self._root.pid)]
            mine = set(roots) | descendants(roots, table) | set(adopted) | descendants(adopted, table)
            mine -= _kept(self.detached_file, table)
            found = {Proc(pid, table[pid][1]) for pid in mine if pid in table}
            new = found - self._seen
            if new:
                self._seen |= new
                with self.record.open("a") as f:
                    f.write("".join(f"{p.pid} {p.start}\n" for p in sorted(new, key=lambda p: p.pid)))
            return sorted(p.pid for p in found)

    def kill_all(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        # ansible-playbook itself is pexpect's to wait for; the rest were adopted (or are kept)
        reap(p for p in self._seen if self._root is None or p.pid != self._root.pid)
        subreaper().keep(read_procs(self.detached_file))


def read_procs_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(slots=True)
class Subreaper:
    """The agent process as child subreaper. A service a run detached was adopted by it and stays
    its child: it is reaped here once it ends, not left a zombie."""

    kept: set[Proc] = field(default_factory=set)

    def keep(self, procs: Iterable[Proc]) -> None:
        self.kept |= set(procs)

    def reap(self) -> None:
        self.kept = reap(self.kept)


@functools.cache
def subreaper() -> Subreaper:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    return Subreaper()


def reap(procs: Iterable[Proc]) -> set[Proc]:
    """Collect the exit status of those of ``procs`` that ended as children of this process
    (adopted ones would stay zombies); returns those still running."""
    me, running = os.getpid(), set()
    for p in procs:
        s = stat(p.pid)
        if s is None or s[2] != p.start:
            continue
        if s[0] != "Z":
            running.add(p)
        elif s[1] == me:
            try:
                os.waitpid(p.pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return running


def _boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat dates processes with."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


# -- choosing and killing ----------------------------------------------------------------------

LEAF = "agent"  # the agent's own cgroup under <its delegated cgroup>/aiops


@functools.cache
def cgroups() -> Cgroups | None:
    """The cgroup v2 tree for runs under the agent's own cgroup, when the agent can create and
    fill cgroups there; else None (the reason is logged once)."""
    try:
        base = _cgroup_base()
        (base / "runs").mkdir(parents=True, exist_ok=True)
        (base / "detached").mkdir(exist_ok=True)
        probe = base / "runs" / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        try:
            done = subprocess.run(["/bin/sh", "-c", 'echo $$ > "$1"', "aiops-probe", str(probe / "cgroup.procs")],
                                  capture_output=True, text=True, timeout=10, check=False)
        finally:
            probe.rmdir()
        if done.returncode != 0:
            raise OSError(done.stderr.strip() or f"moving a process into {probe} failed")
        _into_leaf(base)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning(kv("remediation.tracking", mode="subreaper", reason=f"no writable cgroup v2: {exc}"))
        return None
    log.info(kv("remediation.tracking", mode="cgroup", base=str(base)))
    return Cgroups(base)


def _into_leaf(base: Path) -> None:
    """Move this process into ``base/agent`` unless its cgroup is the hierarchy's root (which
    may hold processes beside children) or it is there already."""
    leaf = base / LEAF
    own = _own_cgroup()
    if own == "/" or own.endswith(f"/{base.name}/{LEAF}"):
        return
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(str(os.getpid()))


def _cgroup_base() -> Path:
    mount = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            mount = Path(left.split()[4])
            break
    if mount is None:
        raise OSError("no cgroup2 file system is mounted")
    own = _own_cgroup()
    if own.endswith(f"/aiops/{LEAF}"):  # moved into the leaf already: the tree is two levels up
        own = own[:-len(f"/aiops/{LEAF}")] or "/"
    return mount / own.lstrip("/") / "aiops"


def _own_cgroup() -> str:
    own = next((line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")), None)
    if own is None:
        raise OSError("/proc/self/cgroup has no cgroup v2 entry")
    return own


def tracking(mode: str, *, key: str, run_dir: Path) -> RunProcesses:
    """How the run ``key`` (its processes record in ``run_dir``) is tracked: ``mode`` is
    ``auto`` (cgroup when possible), ``cgroup`` or ``subreaper``."""
    if mode != Mode.SUBREAPER:
        groups = cgroups()
        if groups is not None:
            return CgroupRun(groups, key)
        if mode == Mode.CGROUP:
            raise OSError("remediation.process_tracking is cgroup, but no writable cgroup v2 was found")
    return SubreaperRun(run_dir / "tracking")


def separates_runs(mode: str) -> bool:
    """Whether the tracking ``mode`` resolves to tells runs under way at once apart: a cgroup per
    run does; the subreaper's adopted orphans belong to no run in particular."""
    return mode != Mode.SUBREAPER and cgroups() is not None


def terminate(run: RunProcesses, *, grace_s: float) -> list[int]:
    """SIGTERM every process of ``run``, SIGKILL what is left after ``grace_s``, until none is
    left; returns the pids signalled. Detached processes are not touched."""
    signalled: list[int] = []
    first = run.pids()
    _signal(first, signal.SIGTERM)
    signalled += first
    deadline = time.monotonic() + grace_s
    while run.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(50):
        left = run.pids()
        if not left:
            break
        run.kill_all()
        _signal(left, signal.SIGKILL)
        signalled += [pid for pid in left if pid not in signalled]
        time.sleep(0.02)
    run.close()
    return signalled


def _signal(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@dataclass(frozen=True, slots=True)
class SubreaperRecord:
    """What a dead agent's run wrote in subreaper mode, read by a new agent process: the recorded
    processes still alive (same start time) and their descendants, detached ones excepted."""

    run_dir: Path
    mode: Mode = Mode.SUBREAPER

    def pids(self) -> list[int]:
        table = _table()
        record = self.run_dir / "tracking"
        recorded = {p.pid for p in read_procs(record / "processes") if p.pid in table and table[p.pid][1] == p.start}
        return sorted((recorded | descendants(recorded, table)) - _kept(record / "detached", table))

    def kill_all(self) -> None:
        pass

    def close(self) -> None:
        pass


def leftovers(*, key: str, run_dir: Path | None) -> list[CgroupRun | SubreaperRecord]:
    """Every tracking a dead run may have used: its cgroup (when this agent has cgroups: the
    same name in the same tree) and its record under ``run_dir``."""
    found: list[CgroupRun | SubreaperRecord] = []
    groups = cgroups()
    if groups is not None:
        found.append(CgroupRun(groups, key))
    if run_dir is not None:
        found.append(SubreaperRecord(run_dir))
    return found
