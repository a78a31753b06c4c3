"""Every CLI command and every config key is documented in docs/ (as sqlite-utils' docs test
does for its commands): a command as its whole name (``aiops GROUP NAME``) on some page, a
config key as its dotted path in backticks in a table row of docs/configuration.md
(``[]`` for an item of a list, ``<name>`` for a value of a map)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

import click
import pytest
from pydantic import BaseModel

from agent.cli import cli
from agent.config.model import AgentConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"


def commands(command: click.Command = cli, path: tuple[str, ...] = ("aiops",)) -> Iterator[str]:
    """``aiops``, ``aiops config``, ``aiops config check``, …: every visible command, depth first."""
    yield " ".join(path)
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from commands(sub, (*path, name))


def _models(annotation: object, suffix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """The config models inside a field's type, each with the suffix its keys take."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield suffix, annotation
    elif origin is Annotated:
        yield from _models(get_args(annotation)[0], suffix)
    elif origin in (Union, UnionType):
        for member in get_args(annotation):
            yield from _models(member, suffix)
    elif origin in (list, tuple, set, frozenset):
        yield from _models(get_args(annotation)[0], suffix + "[]")
    elif origin is dict:
        yield from _models(get_args(annotation)[1], suffix + ".<name>")


def config_keys(model: type[BaseModel] = AgentConfig, prefix: str = "") -> Iterator[str]:
    """Every key path of the config, as written in YAML (aliases, not field names)."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        yield key
        for suffix, sub in _models(field.annotation):
            yield from config_keys(sub, f"{key}{suffix}.")


def documented_commands() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md")))


ALL_COMMANDS = list(commands())
ALL_KEYS = sorted(set(config_keys()))


def test_the_walks_find_the_commands_and_keys():
    assert {"aiops config check", "aiops remediation approve"} <= set(ALL_COMMANDS)
    assert {"agent.interval", "sources.prometheus.queries[].expr", "remediation.rules[].targets.canary",
            "notify.channels.<name>.routing_key", "notify.channels.<name>.from"} <= set(ALL_KEYS)
    assert "notify.channels.<name>.sender" not in ALL_KEYS  # YAML says `from`


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_command_is_documented(command: str):
    written = re.compile(rf"(?<![\w-]){re.escape(command)}(?![\w-])")
    assert written.search(documented_commands()), f"`{command}` is not documented in docs/*.md"


@pytest.mark.parametrize("key", ALL_KEYS)
def test_config_key_is_documented(key: str):
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert f"\n| `{key}` |" in page, f"config key {key} is not documented in docs/configuration.md"


def test_configuration_page_names_no_missing_key():
    """A key removed from the models leaves the page too."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \|", page, re.MULTILINE)
    assert rows, "docs/configuration.md has no key table"
    assert sorted(set(rows) - set(ALL_KEYS)) == []
