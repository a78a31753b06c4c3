"""The systemd unit and ``aiops service install``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "config" / "aiops-agent.service"

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def installed(tmp_path, subprocess_env) -> Path:
    result = subprocess.run(["aiops", "service", "install", "--prefix", str(tmp_path / "root")],
                            capture_output=True, text=True, env=subprocess_env, timeout=60)
    assert result.returncode == 0, result.stderr
    return tmp_path / "root"


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
    check = subprocess.run(["aiops", "config", "check", str(config)], capture_output=True, text=True, env=subprocess_env)
    assert check.returncode == 0, check.stderr


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
