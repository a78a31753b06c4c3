"""The systemd unit and ``aiops service install``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "config" / "aiops-agent.service"

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def install(root: Path, env: dict[str, str], node_exporter: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aiops", "service", "install", "--prefix", str(root), "--node-exporter", node_exporter],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def installed(tmp_path, subprocess_env) -> Path:
    """An install on a machine where no node_exporter answers."""
    result = install(tmp_path / "root", subprocess_env, f"http://127.0.0.1:{free_port()}/metrics")
    assert result.returncode == 0, result.stderr
    return tmp_path / "root"


DEMO_THINGS = ("fraud", "api-server", "replace-with", "pagerduty", "/srv/models")


def test_unit_declares_notify_watchdog_restart_and_hardening():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=",
                 "ReadWritePaths=/var/lib/aiops-agent", "PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID",
                 "\nLimitNOFILE=16384\n"):
        assert line in text, line


def test_install_writes_unit_config_and_state_dir_with_safe_modes(installed, subprocess_env):
    unit = installed / "etc/systemd/system/aiops-agent.service"
    config = installed / "etc/aiops-agent/agent.yaml"
    assert mode(unit) == 0o644
    assert mode(config) == 0o600
    assert mode(installed / "etc/aiops-agent/env") == 0o600
    assert mode(installed / "var/lib/aiops-agent") == 0o700
    exec_start = next(l for l in unit.read_text().splitlines() if l.startswith("ExecStart="))
    executable = exec_start.split("=", 1)[1].split()[0]
    assert Path(executable).is_absolute() and os.access(executable, os.X_OK)


def test_with_a_local_node_exporter_the_config_watches_it_and_nothing_of_the_demo(tmp_path, subprocess_env,
                                                                                 node_exporter):
    result = install(tmp_path / "root", subprocess_env, node_exporter.url)
    assert result.returncode == 0, result.stderr
    assert f"  it watches the node_exporter at {node_exporter.url} and the agent itself" in result.stdout
    config = tmp_path / "root/etc/aiops-agent/agent.yaml"
    check = subprocess.run(["aiops", "config", "check", str(config)], capture_output=True, text=True, env=subprocess_env)
    assert (check.returncode, check.stdout) == (0, f"{config}: ok\n"), check.stderr
    text = config.read_text()
    assert not [thing for thing in DEMO_THINGS if thing in text.lower()]
    loaded = load_config(config)
    assert [(t.name, t.url) for t in loaded.sources.scrape.targets] == [("node", node_exporter.url)]
    assert loaded.agent.state_dir == Path("/var/lib/aiops-agent")
    assert (loaded.remediation.rules, loaded.notify.channels, loaded.models) == ([], {}, [])
    assert loaded.detectors.drift == [] and len(text.splitlines()) < 60


def test_without_an_exporter_the_config_is_a_template_config_check_refuses(installed, subprocess_env):
    config = installed / "etc/aiops-agent/agent.yaml"
    text = config.read_text()
    assert "# No node_exporter answered at http://127.0.0.1:" in text
    assert not [thing for thing in DEMO_THINGS if thing in text.lower()]
    check = subprocess.run(["aiops", "config", "check", str(config)], capture_output=True, text=True, env=subprocess_env)
    assert check.returncode == 2
    assert check.stderr == (f"{config}: sources.scrape.targets[0].url: expected an http:// or https:// URL, found "
                            "\"<the URL of an exporter's /metrics>\"\n")


def test_install_keeps_an_existing_config(installed, subprocess_env):
    config = installed / "etc/aiops-agent/agent.yaml"
    config.write_text("agent:\n  interval: 5m\n")
    again = subprocess.run(["aiops", "service", "install", "--prefix", str(installed)], capture_output=True, text=True,
                           env=subprocess_env, timeout=60)
    assert f"kept {config} (exists)" in again.stdout
    assert config.read_text() == "agent:\n  interval: 5m\n"


@needs_systemd_analyze
def test_installed_unit_verifies_cleanly(installed):
    result = verify(installed / "etc/systemd/system/aiops-agent.service")
    assert result.returncode == 0, result.stderr
    # systemd only warns (exit 0) on unknown keys or bad values: stderr must be clean too
    assert "aiops-agent.service" not in result.stderr, result.stderr


@needs_systemd_analyze
def test_verification_catches_a_broken_unit(tmp_path):
    bad = tmp_path / "aiops-agent.service"
    bad.write_text(UNIT.read_text().replace("Type=notify", "Type=notifyy").replace("WatchdogSec=", "WatchdogSecs="))
    result = verify(bad)
    assert result.returncode != 0 or "aiops-agent.service" in result.stderr
    assert "WatchdogSecs" in result.stderr
