"""Run a real Prometheus (the Debian package) on loopback, with history backfilled by promtool.

Used by the demo stack and the end-to-end tests. The history is written as OpenMetrics and turned
into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics --max-block-duration=24h``
(about 7x faster than the default block size) before the server starts, so the server loads it at
start. Retention is raised so backfilled history is not deleted as "too old".
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from agent.errors import AiopsError


class ToolMissingError(AiopsError):
    def __init__(self, tool: str, package: str) -> None:
        super().__init__(f"{tool} is not installed (Debian package {package}; `make demo` installs it as root)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrapeJob:
    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"


def binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(name, package)
    return found


def backfill(openmetrics: Iterable[str], data_dir: Path, work_dir: Path) -> float:
    """Turn OpenMetrics text (all samples of a metric together, seconds, ending in ``# EOF``)
    into blocks inside ``data_dir``; returns the seconds promtool took."""
    promtool = binary("promtool", "prometheus")
    work_dir.mkdir(parents=True, exist_ok=True)
    source = work_dir / "history.om"
    with source.open("w") as out:
        for chunk in openmetrics:
            out.write(chunk)
    blocks = work_dir / "blocks"
    started = time.monotonic()
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                    str(source), str(blocks)], check=True, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    data_dir.mkdir(parents=True, exist_ok=True)
    for block in blocks.iterdir():
        shutil.move(str(block), data_dir / block.name)
    source.unlink()
    return elapsed


class PrometheusProcess:
    """``prometheus`` on 127.0.0.1:``port`` with its own config and data dir."""

    def __init__(self, root: Path, port: int, jobs: Sequence[ScrapeJob], *, scrape_interval_s: float = 5.0) -> None:
        self.root = root
        self.port = port
        self.jobs = list(jobs)
        self.scrape_interval_s = scrape_interval_s
        self.data_dir = root / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        interval = f"{self.scrape_interval_s:g}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job.name, "metrics_path": job.metrics_path, "scrape_timeout": interval,
                 "static_configs": [{"targets": list(job.targets)}]}
                for job in self.jobs
            ],
        }
        path = self.root / "prometheus.yml"
        self.root.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout_s: float = 60.0) -> None:
        server = binary("prometheus", "prometheus")
        config = self.write_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [server, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=400d",
             "--web.enable-lifecycle", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AiopsError(f"prometheus exited with {self.proc.returncode}; see {self.root / 'prometheus.log'}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AiopsError(f"prometheus did not become ready within {timeout_s:g}s; see {self.root / 'prometheus.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
