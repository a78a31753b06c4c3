"""``aiops service install``: the unit, a config for this machine and the state dir, with safe modes.

The config is small and made for the machine it is installed on: when a node_exporter answers
(at ``--node-exporter``, by default ``http://127.0.0.1:9100/metrics``) it watches that and the
agent itself, with the default detectors and nothing that acts; else it is a commented template
whose exporter URL is a placeholder ``aiops config check`` refuses, so the service cannot start
on a config that watches nothing. Never the example's demo services (a fraud model, an API server).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import requests

from agent.errors import AiopsError
from agent.sources.exposition import parse_exposition

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
UNIT_NAME = "aiops-agent.service"
NODE_EXPORTER = "http://127.0.0.1:9100/metrics"
PLACEHOLDER = "<the URL of an exporter's /metrics>"
PROBE_TIMEOUT_S = 3.0

_HEAD = """\
# aiops-agent configuration, written by `aiops service install` on {host}.
# Every key and its default: docs/configuration.md, and config/agent.example.yaml in the checkout
# ({checkout}). After a change: aiops config check {path} && systemctl reload aiops-agent
"""

_BODY = """\
agent:
  state_dir: /var/lib/aiops-agent
  # A cycle (collect, detect, correlate, remediate, notify) every interval.
  interval: 60s

http:
  # /metrics, /healthz, /status and the incident pages, on loopback.
  listen: 127.0.0.1
  port: 9847
  # For the endpoints that change state: set AIOPS_API_TOKEN in /etc/aiops-agent/env (mode 0600).
  token: ${{AIOPS_API_TOKEN:-}}

sources:
  kind: scrape
  scrape:
    # The agent's own /metrics is read too (self_metrics).
    targets:
{targets}
# Detectors: the default forecast detector on every series, scored once a series has an hour of
# history (`aiops status` says how many are still warming up). Add rules and SLOs as in the example.

remediation:
  # Playbooks live here; no rule is configured, so nothing runs until you add one.
  playbook_dir: {playbooks}
  rules: []
"""

_FOUND = """\
      # It answered when this file was written.
      - name: node
        url: {url}
"""

_MISSING = """\
      # No node_exporter answered at {url} when this file was written. Name the exporters this
      # agent reads (apt-get install prometheus-node-exporter gives one at {default}), or read
      # a Prometheus server instead (sources.kind: prometheus, see the example): until then
      # `aiops config check` refuses this file and the service does not start.
      - name: node
        url: "{placeholder}"
"""


class InstallError(AiopsError):
    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"service install: {what}: {problem}")


def _aiops_executable(exec_path: str | None) -> str:
    if exec_path:
        return exec_path
    found = shutil.which("aiops")
    if found:
        return str(Path(found).resolve())
    return str(Path(sys.executable).with_name("aiops"))


def exporter_answers(url: str) -> bool:
    """Whether ``url`` answers 200 with metrics in the exposition format."""
    try:
        response = requests.get(url, timeout=PROBE_TIMEOUT_S)
    except requests.RequestException:
        return False
    with response:
        if response.status_code != 200:
            return False
        try:
            found = parse_exposition(response.text, extra_labels={})
        except (ValueError, IndexError, KeyError, TypeError):
            return False
    return bool(found.gauges or found.counters or found.histograms)


def config_text(path: Path, found: str | None, probed: str = NODE_EXPORTER) -> str:
    """The installed config: watching ``found`` (an exporter that answered), else a template
    naming ``probed`` as the exporter that did not answer."""
    targets = (_FOUND.format(url=found) if found else
               _MISSING.format(url=probed, default=NODE_EXPORTER, placeholder=PLACEHOLDER))
    head = _HEAD.format(host=socket.gethostname(), checkout=CONFIG_DIR.parent, path=path)
    return head + "\n" + _BODY.format(targets=targets.rstrip("\n"), playbooks=CONFIG_DIR.parent / "playbooks")


def install(prefix: Path, *, exec_path: str | None = None, node_exporter: str = NODE_EXPORTER) -> Iterator[str]:
    """Yields one line per thing written or kept. Existing config is never overwritten."""
    unit_src = CONFIG_DIR / UNIT_NAME
    if not unit_src.is_file():
        raise InstallError(str(unit_src), "not found: install from a checkout of aiops-agent")
    prefix = Path(prefix)
    executable = _aiops_executable(exec_path)
    if not executable.startswith("/"):
        raise InstallError("--exec-path", f"expected an absolute path, found {executable!r}")

    unit_dir = prefix / "etc/systemd/system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit = unit_src.read_text()
    unit = re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", unit, count=1, flags=re.M)
    unit_path = unit_dir / UNIT_NAME
    unit_path.write_text(unit)
    os.chmod(unit_path, 0o644)
    yield f"wrote {unit_path}"

    etc = prefix / "etc/aiops-agent"
    etc.mkdir(parents=True, exist_ok=True, mode=0o750)
    os.chmod(etc, 0o750)
    config_path = etc / "agent.yaml"
    if config_path.exists():
        yield f"kept {config_path} (exists)"
    else:
        answered = exporter_answers(node_exporter)
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(config_text(Path("/etc/aiops-agent/agent.yaml"), node_exporter if answered else None,
                                  node_exporter))
        yield f"wrote {config_path} (mode 0600: it may hold secrets)"
        if answered:
            yield f"  it watches the node_exporter at {node_exporter} and the agent itself"
        else:
            yield (f"  no node_exporter answered at {node_exporter}: edit the file to name your exporters "
                   "(aiops config check refuses it until then)")
    env_path = etc / "env"
    if not env_path.exists():
        fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Secrets for aiops-agent, read by systemd (mode 0600). Example:\n# AIOPS_API_TOKEN=change-me\n")
        yield f"wrote {env_path} (mode 0600)"

    state = prefix / "var/lib/aiops-agent"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    yield f"state dir {state} (mode 0700)"
    if prefix == Path("/"):
        yield "next: systemctl daemon-reload && systemctl enable --now aiops-agent"
