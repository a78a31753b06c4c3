"""A store file with a garbage page: one clear line and a non-zero exit, at start and from
``aiops once``, never a cycle that fails stage after stage with tracebacks."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.config import load_config
from agent.context import Context
from agent.errors import StoreDamagedError
from agent.pipeline import Pipeline
from agent.store import Store
from tests.conftest import PYTHON

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def healthy_store(state: Path) -> Path:
    store = Store(state / "aiops.db")
    for n in range(200):  # incidents over many pages
        store.open_incident(severity="warning", title="latency up " * 20, labels={"service": f"s{n}"},
                            started_at=T0, now=T0)
    store.close()
    return state / "aiops.db"


def damage(path: Path, table: str = "incidents") -> None:
    """Garbage over the root page of ``table``, as a bad disk block or a stray write leaves it."""
    conn = sqlite3.connect(path)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(os.urandom(size))


@pytest.fixture
def config(tmp_path) -> Path:
    (tmp_path / "series.csv").write_text("timestamp,value\n2026-03-02 11:58:00,1\n2026-03-02 11:59:00,2\n")
    path = tmp_path / "agent.yaml"
    path.write_text(f"agent:\n  state_dir: {tmp_path / 'state'}\n  interval: 1s\nhttp:\n  enabled: false\n"
                    f"sources:\n  kind: file\n  file:\n    paths: [{tmp_path / 'series.csv'}]\n")
    return path


def expected(path: Path, found: str = "database disk image is malformed") -> str:
    return (f"store {path}: the file is damaged ({found}): stop the agent, then restore the file from a backup, "
            f"or keep what is readable: sqlite3 {path} .recover | sqlite3 recovered.db")


@pytest.mark.parametrize("command", ["once", "run"])
def test_a_damaged_store_is_one_line_and_exit_1(config, tmp_path, subprocess_env, command):
    path = healthy_store(tmp_path / "state")
    damage(path)

    done = subprocess.run([PYTHON, "-m", "agent.cli", command, "--config", str(config)], env=subprocess_env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    head, tail = expected(path, "FOUND").split("FOUND")
    assert re.fullmatch(re.escape(head) + r"quick_check: Page \d+: .+" + re.escape(tail), line), line
    assert "event=cycle" not in done.stdout + done.stderr  # refused before any cycle


def test_damage_found_by_a_cycle_ends_it_with_the_same_error(config, tmp_path):
    path = healthy_store(tmp_path / "state")
    ctx = Context.create(load_config(config))  # the file passes the start's check
    pipeline = Pipeline(ctx)
    try:
        damage(path)
        ctx.store.close()  # this thread's next statement opens the file again, nothing cached

        with pytest.raises(StoreDamagedError) as raised:
            pipeline.run_cycle()
    finally:
        pipeline.close()
        ctx.store.close()
    assert str(raised.value) == expected(path)
