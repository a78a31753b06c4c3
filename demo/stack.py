"""The demo stack: the model-serving service, node_exporter when installed, and a real Prometheus
with a backfilled week of history. ``stack.json`` in the stack's root records ports and pids, so
``python -m demo inject`` in another process finds what to break, and ``python -m demo down``
what to stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from agent.errors import AiopsError
from demo.history import demo_history
from demo.prometheus import PrometheusServer, ScrapeJob, backfill, start_prometheus

# The checkout the demo runs from: its processes import ``demo`` from there (it is not installed).
REPO = Path(__file__).resolve().parents[1]
SERVICE_JOB = "demo-model"
MODEL_VERSIONS = {
    "v1": {"version": "v1", "latency_s": 0.06, "feature_shift": 0.0},
    "v2": {"version": "v2", "latency_s": 0.06, "feature_shift": 0.0},
    # v3 ships a preprocessing change that shifts its input features: drift after a rollout.
    "v3": {"version": "v3", "latency_s": 0.06, "feature_shift": 1.2},
    # v4 is seven times slower: the version a guarded rollout catches on its canary.
    "v4": {"version": "v4", "latency_s": 0.45, "feature_shift": 0.0},
}
FAULT_KINDS = ("latency", "errors", "memory", "crash", "drift", "disk", "stuck-latency", "bad-labels")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StackInfo:
    root: str
    service_port: int
    prometheus_port: int
    node_exporter_port: int | None
    agent_port: int
    scrape_interval_s: float
    service_pid: int | None = None
    prometheus_pid: int | None = None
    node_exporter_pid: int | None = None
    agent_pid: int | None = None

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"


class DemoStack:
    def __init__(self, root: Path, *, scrape_interval_s: float = 5.0, history_days: float = 2.5,
                 history_step_s: float = 15.0) -> None:
        self.root = root.resolve()
        self.history_days = history_days
        self.history_step_s = history_step_s
        self.info = StackInfo(root=str(self.root), service_port=free_port(), prometheus_port=free_port(),
                              node_exporter_port=None, agent_port=free_port(), scrape_interval_s=scrape_interval_s)
        self.prometheus: PrometheusServer | None = None
        self.node_exporter: subprocess.Popen[bytes] | None = None
        self.jobs: list[ScrapeJob] = []

    # -- layout ------------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def scratch_dir(self) -> Path:
        return self.root / "scratch"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def prepare(self) -> float:
        """Models dir with ``current -> v2``, scratch dir, and Prometheus history; returns the
        seconds the backfill took."""
        for path in (self.models_dir, self.scratch_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        for version, model in MODEL_VERSIONS.items():
            (self.models_dir / "versions" / version).mkdir(parents=True, exist_ok=True)
            (self.models_dir / "versions" / version / "model.json").write_text(json.dumps(model))
        current = self.models_dir / "current"
        if current.is_symlink() or current.exists():
            current.unlink()
        current.symlink_to("versions/v2")
        (self.models_dir / "history").write_text("v1\nv2\n")
        return backfill(
            demo_history(end_s=time.time(), days=self.history_days, step_s=self.history_step_s, job=SERVICE_JOB,
                         instance=f"127.0.0.1:{self.info.service_port}"),
            self.root / "prometheus" / "data")

    # -- processes ---------------------------------------------------------------------------

    def service_command(self) -> list[str]:
        return service_command(self.root, self.info.service_port)

    def start(self) -> None:
        start_service(self.root, self.service_command())
        node = shutil.which("prometheus-node-exporter")
        jobs = [ScrapeJob(name=SERVICE_JOB, targets=[f"127.0.0.1:{self.info.service_port}"]),
                ScrapeJob(name="aiops-agent", targets=[f"127.0.0.1:{self.info.agent_port}"])]
        if node:
            self.info.node_exporter_port = free_port()
            log = open(self.logs_dir / "node_exporter.log", "ab")
            self.node_exporter = subprocess.Popen(
                [node, f"--web.listen-address=127.0.0.1:{self.info.node_exporter_port}",
                 "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo",
                 "--collector.filesystem", "--collector.loadavg"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            jobs.append(ScrapeJob(name="node", targets=[f"127.0.0.1:{self.info.node_exporter_port}"]))
            self.info.node_exporter_pid = self.node_exporter.pid
        self.jobs = jobs
        self.start_prometheus()
        wait_for(lambda: _get(self.info.service_url + "/healthz"), 30, "the demo service")
        self.info.service_pid = read_pid(self.root)
        self.save()

    def start_prometheus(self) -> None:
        """Prometheus over the backfilled history, scraping the stack (again, after ``stop_prometheus``)."""
        self.prometheus = start_prometheus(self.root / "prometheus", self.jobs, data_dir=self.root / "prometheus" / "data",
                                           port=self.info.prometheus_port, scrape_interval_s=self.info.scrape_interval_s,
                                           ready_timeout_s=60)
        self.info.prometheus_pid = self.prometheus.process.pid
        self.save()

    def stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None

    def save(self) -> None:
        (self.root / "stack.json").write_text(json.dumps(asdict(self.info), indent=2))

    def stop(self) -> None:
        stop_service(self.root)
        if self.node_exporter is not None and self.node_exporter.poll() is None:
            self.node_exporter.terminate()
            self.node_exporter.wait(timeout=10)
        self.stop_prometheus()


# What each recorded pid must be running, so a pid the system reused is never signalled.
_COMMANDS = {"agent_pid": "agent.cli", "node_exporter_pid": "node-exporter", "prometheus_pid": "prometheus"}


def running(root: Path) -> list[str]:
    """What of the stack at ``root`` still runs (by the pids ``stack.json`` recorded)."""
    if not (root / "stack.json").exists():
        return []
    info = load_info(root)
    found = [name for name, marker in _COMMANDS.items() if _runs(getattr(info, name), marker)]
    return found + (["service"] if read_pid(root) is not None or _services(root) else [])


def stop_recorded(root: Path, timeout_s: float = 30.0) -> list[str]:
    """Stop the agent, the service, node_exporter and Prometheus of the stack at ``root`` (started
    by another process: ``python -m demo up``), each by its recorded pid; what was stopped."""
    info = load_info(root)
    stopped = []
    for name, marker in _COMMANDS.items():  # the agent first: it must not see the others go
        pid = getattr(info, name)
        if _runs(pid, marker):
            _stop_pid(pid, timeout_s)
            stopped.append(f"{name.removesuffix('_pid').replace('_', ' ')} (pid {pid})")
        if name == "agent_pid":
            stopped += [f"service (pid {service})" for service in _stop_services(root, timeout_s)]
        setattr(info, name, None)
    (root / "stack.json").write_text(json.dumps(asdict(info), indent=2))
    return stopped


def _stop_services(root: Path, timeout_s: float, settle_s: float = 1.0) -> list[int]:
    """Stop every process serving this stack's models, not only the pid file's, until none has
    been seen for ``settle_s``: a restart the agent's playbook began just before the agent stopped
    may not have written the pid file yet, or still be between its fork and its exec."""
    stopped: list[int] = []
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle_s and time.monotonic() < deadline:
        found = [pid for pid in _services(root) if pid not in stopped]
        if not found:
            time.sleep(0.05)
            continue
        for service in found:
            _stop_pid(service, timeout_s)
            stopped.append(service)
        quiet_since = time.monotonic()
    return stopped


def _services(root: Path) -> list[int]:
    """The demo service processes of the stack at ``root`` (by their command line)."""
    wanted = ["demo.service", "--models-dir", str(root.resolve() / "models")]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if all(word in argv for word in wanted) and alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def _runs(pid: int | None, marker: str) -> bool:
    if pid is None:
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _stop_pid(pid: int, timeout_s: float) -> None:
    _kill(pid)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        _kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited; its parent, gone, will not reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def load_info(root: Path) -> StackInfo:
    try:
        return StackInfo(**json.loads((root / "stack.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise AiopsError(f"no demo stack at {root}: {exc}") from exc


def service_command(root: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "demo.service", "--port", str(port), "--models-dir", str(root / "models"),
            "--scratch-dir", str(root / "scratch"), "--pid-file", str(root / "service.pid")]


def stop_service(root: Path, timeout_s: float = 10.0) -> None:
    pid = read_pid(root)
    if pid is None:
        return
    _kill(pid)
    deadline = time.monotonic() + timeout_s
    while read_pid(root) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if read_pid(root) is not None:
        _kill(pid, signal.SIGKILL)


def start_service(root: Path, command: list[str]) -> None:
    """Start the demo service detached (it outlives the command that started it, as a
    service under an init system would)."""
    log = open(root / "logs" / "service.log", "ab")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def read_pid(root: Path) -> int | None:
    try:
        pid = int((root / "service.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None  # a zombie has exited (its reaper may be slow or absent)


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AiopsError(f"{what} did not come up within {timeout_s:g}s")
