"""A real Prometheus (the Debian package) on 127.0.0.1, with history backfilled by promtool: the
one harness the demo stack and the tests' fixtures (``tests/fixtures/prometheus.py``) start.

History is written as OpenMetrics (all samples of a metric together under one ``# TYPE`` line,
timestamps in seconds, a final ``# EOF``) and turned into TSDB blocks with
``promtool tsdb create-blocks-from openmetrics --max-block-duration=24h`` (the flag is hidden from
``--help``; it makes the backfill about 7x faster) before the server starts, so the server loads
it at start. Retention is raised so backfilled history is not deleted as "too old".
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from agent.errors import AiopsError

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RETENTION = "3650d"  # longer than any backfill: Prometheus counts retention back from the newest sample


class ToolMissingError(AiopsError):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(f"{tool} is not installed (Debian package {package}; `make demo` installs it as root)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrapeJob:
    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    honor_labels: bool = False  # keep a target's own job/instance labels


def binary(path: str, package: str) -> str:
    """``path`` when it is an executable, else ``ToolMissingError`` naming the Debian package."""
    found = shutil.which(path)
    if found is None:
        raise ToolMissingError(Path(path).name, package)
    return found


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Until ``url`` answers 200; an error when ``proc`` exits first or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AiopsError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AiopsError(f"{url} did not answer within {timeout_s:g}s")


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate, then kill after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backfill(openmetrics: str | Iterable[str], data_dir: Path) -> float:
    """Turn OpenMetrics text (one string, or chunks of it) into blocks inside ``data_dir``;
    returns the seconds promtool took."""
    promtool = binary(PROMTOOL, "prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "backfill.om"
        with source.open("w") as out:
            for chunk in [openmetrics] if isinstance(openmetrics, str) else openmetrics:
                out.write(chunk)
        started = time.monotonic()
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                               str(source), str(data_dir)], capture_output=True, text=True, timeout=600)
        elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise AiopsError(f"promtool failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


@dataclass(kw_only=True)
class LocalServer:
    """A server process started on 127.0.0.1 by the demo or the tests, logging to ``log_path``."""

    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass(kw_only=True)
class PrometheusServer(LocalServer):
    data_dir: Path

    def series_count(self, selector: str) -> int:
        answer = requests.get(f"{self.url}/api/v1/series", params={"match[]": selector}, timeout=5).json()
        return len(answer.get("data") or [])

    def wait_scraped(self, count: int, timeout_s: float) -> None:
        """Until ``count`` targets are up (Prometheus applies new targets at most every 5 s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = requests.get(f"{self.url}/api/v1/query", params={"query": "up == 1"}, timeout=5).json()
            if len(answer["data"]["result"]) >= count:
                return
            time.sleep(0.1)
        raise AiopsError(f"Prometheus did not scrape its {count} targets within {timeout_s:g}s")


def write_config(path: Path, jobs: Sequence[ScrapeJob], scrape_interval_s: float) -> Path:
    interval = f"{scrape_interval_s:g}s"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": job.name, "metrics_path": job.metrics_path, "scrape_timeout": interval,
             **({"honor_labels": True} if job.honor_labels else {}),
             "static_configs": [{"targets": list(job.targets)}]}
            for job in jobs
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(workdir: Path, jobs: Sequence[ScrapeJob] = (), *, data_dir: Path | None = None,
                     port: int, scrape_interval_s: float = 1.0, ready_timeout_s: float = 30) -> PrometheusServer:
    """Prometheus on 127.0.0.1:``port`` scraping ``jobs``, its config and log in ``workdir`` and its
    tsdb in ``data_dir`` (``workdir/tsdb`` by default: backfill there first); returns once ready."""
    server_binary = binary(PROMETHEUS, "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or workdir / "tsdb"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "prometheus.yml", jobs, scrape_interval_s)
    log_path = workdir / "prometheus.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [server_binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
             f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.retention.time={RETENTION}",
             "--web.enable-lifecycle", "--log.level=warn"],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    server = PrometheusServer(port=port, data_dir=data_dir, process=proc, log_path=log_path)
    try:
        wait_http(f"{server.url}/-/ready", ready_timeout_s, proc)
    except AiopsError as exc:
        server.stop()
        raise AiopsError(f"{exc}; log {log_path}: {log_path.read_text()[-2000:]}") from None
    return server
