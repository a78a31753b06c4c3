"""Every example command in README.md and docs/*.md, run with the demo's config, so a renamed
command or option, or an example that no longer works, fails here rather than for a reader.

An example is a line of a fenced code block (not one marked ``text``: output) that starts with ``aiops`` (or ``.venv/bin/aiops``,
or ``python -m demo``), or an inline code span with arguments that holds no placeholder
(``ID``, ``FILE``, ``…``, ``[--opt]``, ``a|b``). Each must name a command and only options that
command shows in ``--help``; then it is run (``CliRunner``, the demo's config for every
``--config``, a temporary state dir, files written to a temporary directory) and must end as a
command ends: exit 0, or exit 1 with its one-line reason (an incident #12 the store does not
hold), never a usage error (2) or a traceback. A few are only checked, not run; ``NOT_RUN`` says
why for each.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.store import Store
from demo.cli import demo
from demo.config import demo_config
from demo.stack import StackInfo
from tests.conftest import REPO
from tests.notify.incident_data import make_incident

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{1,}\b|…|\.\.\.|\[|\||<")
# Checked (the command and its options exist), not run here:
NOT_RUN = {
    ("run",): "the daemon does not return (tests/agent/test_daemon.py runs it)",
    ("service", "install"): "writes under / (tests/agent/test_service.py runs it with --prefix)",
    ("store", "copy"): "needs a PostgreSQL server (tests/store/test_postgres.py)",
    ("backtest",): "replays the NAB corpus for minutes (tests/backtest)",
    ("replay",): "replays days of history from a Prometheus (tests/replay backfills one)",
    ("up",): "starts the whole demo stack (tests/e2e/test_demo_cli.py)",
    ("inject",): "breaks a running demo stack (tests/e2e/test_demo_cli.py)",
    ("down",): "stops a running demo stack (tests/e2e/test_demo_cli.py)",
}


def examples() -> Iterator[tuple[str, str]]:
    """(page, command line) of every example, in page order."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for kind, block in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S):
            if kind == "text":  # what a command printed, not a command
                continue
            for line in block.splitlines():
                for part in _commands(line):
                    yield page.name, part
        for span in re.findall(r"`((?:\.venv/bin/)?aiops [^`]+)`", text):
            if not PLACEHOLDER.search(span):
                for part in _commands(span):
                    if len(_path(part)[1]) > 0:  # with arguments: an example, not a command's name
                        yield page.name, part


def _commands(line: str) -> list[str]:
    words = shlex.split(line, comments=True) if re.match(r"\s*(\.venv/bin/)?(aiops|python -m demo)\b", line) else []
    parts, current = [], []
    for word in words + ["&&"]:
        if word in ("&&", ";", "|"):
            if current:
                parts.append(shlex.join(current))
            current = []
        else:
            current.append(word.removeprefix(".venv/bin/"))
    return [p for p in parts if re.match(r"(aiops|python -m demo)\b", p)]


def _path(line: str) -> tuple[click.Command, list[str], tuple[str, ...]]:
    """The command a line names, its arguments, and the command's path."""
    words = shlex.split(line)
    group, words = (demo, words[3:]) if words[:3] == ["python", "-m", "demo"] else (cli, words[1:])
    command: click.Command = group
    path: list[str] = []
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        path.append(words[0])
        command, words = command.commands[words[0]], words[1:]
    return command, words, tuple(path)


ALL = list(examples())


def test_the_pages_hold_examples_of_most_commands():
    named = {_path(line)[2] for _, line in ALL}
    assert len(ALL) > 50 and len(named) > 35, sorted(named)


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's config (no stack behind it), a store with incidents #1-#12, files the examples read."""
    home = tmp_path_factory.mktemp("examples")
    info = StackInfo(root=str(home / "demo"), service_port=1, prometheus_port=1, node_exporter_port=None,
                     agent_port=1, scrape_interval_s=5.0)
    (home / "agent.yaml").write_text(demo_config(info, cycle_s=10, verify_s=10, verify_deadline_s=180,
                                                 state_dir=home / "state", history_step_s=10))
    store = Store(home / "state" / "aiops.db")
    for i in range(12):
        make_incident(store, now=NOW - timedelta(hours=12 - i))
    store.close()
    (home / "incident.yaml").write_text("labels: {job: demo-model}\nseverity: warning\n")
    return home


def _arguments(line: str, home: Path) -> list[str]:
    command, words, path = _path(line)
    out, skip = list(path), False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in ("--config", "--state-dir", ">") and i + 1 < len(words):
            skip = True
            if word == ">":
                out += ["--output", str(home / Path(words[i + 1]).name)]
            continue
        if not word.startswith("-") and (REPO / word).exists():
            word = str(REPO / word)  # a path of the checkout (config/agent.example.yaml)
        elif word in ("/etc/aiops-agent/agent.yaml", "agent.yaml", ".demo/agent.yaml"):
            word = str(home / "agent.yaml")
        out.append(word)
    names = {n for p in command.params for n in getattr(p, "opts", ())}
    out += ["--config", str(home / "agent.yaml")] if "--config" in names else []
    out += ["--state-dir", str(home / "state")] if "--state-dir" in names else []
    return out


@pytest.mark.parametrize("page, line", ALL, ids=[f"{p}:{line}" for p, line in ALL])
def test_an_example_names_a_command_and_its_options(page: str, line: str):
    command, words, path = _path(line)
    assert not isinstance(command, click.Group), f"{page}: `{line}` names no command"
    shown = {n for p in command.params if isinstance(p, click.Option) and not p.hidden for n in p.opts}
    used = {w.split("=", 1)[0] for w in words if w.startswith("-") and not re.match(r"-\d", w)}
    assert used <= shown | {"--config", "--state-dir"}, f"{page}: `{line}`: unknown or hidden {used - shown}"


@pytest.mark.parametrize("page, line", [(p, line) for p, line in ALL if _path(line)[2] not in NOT_RUN],
                         ids=[f"{p}:{line}" for p, line in ALL if _path(line)[2] not in NOT_RUN])
def test_an_example_runs_with_the_demos_config(page: str, line: str, demo_home: Path, monkeypatch):
    monkeypatch.chdir(demo_home)
    args = _arguments(line, demo_home)
    result = CliRunner().invoke(cli, args, obj=Settings(clock=ManualClock(NOW)))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{page}: `{line}` raised {result.exception!r}\n{result.output}")
    assert result.exit_code in (0, 1), f"{page}: `{line}` exited {result.exit_code}:\n{result.output}"
    if result.exit_code == 1:
        assert result.output.strip(), f"{page}: `{line}` failed without saying why"
