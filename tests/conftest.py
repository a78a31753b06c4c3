"""Shared fixtures: real SQLite stores, configs written to disk, free ports, waiting on conditions.

Fixtures that start real servers live in ``tests/fixtures/`` (one module per kind of server).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config
from agent.store import Store

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.prometheus",
    "tests.fixtures.browser",
    "tests.fixtures.alertmanager",
    "tests.fixtures.postgres",
]

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.05,
               message: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "aiops.db")
    yield s
    s.close()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text to ``tmp_path/agent.yaml`` (or a given name) and return its path."""

    def write(text: str, name: str = "agent.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def make_config(write_config: Callable[[str], Path], tmp_path: Path) -> Callable[[str], AgentConfig]:
    """Load a config from YAML text, with the state dir in ``tmp_path/state``."""

    def make(text: str = "") -> AgentConfig:
        text = f"agent:\n  state_dir: {tmp_path / 'state'}\n" + text if "agent:" not in text else text
        return load_config(write_config(text))

    return make


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ``aiops`` as a subprocess from the test's virtual environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["PATH"] = f"{Path(PYTHON).parent}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env
