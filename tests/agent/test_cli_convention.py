"""One CLI convention: ``--format`` (the formats a command supports) and ``-o/--output FILE``
wherever a command prints a result; the spellings before it still accepted, hidden."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from tests.notify.incident_data import T0, make_incident


def leaves(command: click.Command = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from leaves(sub, (*path, name))
    else:
        yield " ".join(path), command


def visible(command: click.Command) -> set[str]:
    return {name for p in command.params if isinstance(p, click.Option) and not p.hidden for name in p.opts}


ALL = dict(leaves())


def test_every_command_with_a_format_writes_to_an_output_file_and_no_other_spelling_shows():
    formatted = sorted(name for name, command in ALL.items() if "--format" in visible(command))
    assert len(formatted) >= 18, formatted
    assert [name for name in formatted if "--output" not in visible(ALL[name])] == []
    assert [name for name, command in ALL.items() if visible(command) & {"--json", "--out"}] == []
    assert sorted(name for name, command in ALL.items() if "--shard" in visible(command)) == ["once", "run"]


@pytest.fixture
def state(tmp_path, make_config):
    from agent.store import Store

    config = tmp_path / "agent.yaml"
    config.write_text(f"agent:\n  state_dir: {tmp_path / 'state'}\n")
    store = Store(tmp_path / "state" / "aiops.db")
    make_incident(store)
    store.close()
    return ["--config", str(config)]


def aiops(*args: str):
    return CliRunner().invoke(cli, list(args), obj=Settings(clock=ManualClock(T0)))


def test_the_old_spellings_still_work_hidden(state, tmp_path):
    new = aiops("incidents", "list", "--format", "json", *state)
    old = aiops("incidents", "list", "--json", *state)
    assert new.exit_code == 0 and old.output == new.output and json.loads(new.output)[0]["id"] == 1
    shown = aiops("incidents", "show", "1", "--format", "markdown", "--out", str(tmp_path / "one.md"), *state)
    assert shown.output == f"wrote {tmp_path / 'one.md'} ({(tmp_path / 'one.md').stat().st_size:,} bytes)\n"
    assert (tmp_path / "one.md").read_text().startswith("# ")
    assert aiops("incidents", "ack", "1", "--shard", "0/2", *state).exit_code == 0  # accepted, means nothing here


def test_output_is_written_whole_or_not_at_all(state, tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_text("before")
    missing = aiops("incidents", "show", "99", "--format", "json", "--output", str(kept), *state)
    assert missing.exit_code == 1 and kept.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    written = aiops("incidents", "list", "--format", "json", "-o", str(kept), *state)
    assert written.exit_code == 0 and json.loads(kept.read_text())[0]["id"] == 1
    outbox = aiops("notify", "outbox", "--format", "json", *state)
    assert (outbox.exit_code, json.loads(outbox.output)) == (0, [])
