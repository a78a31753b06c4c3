"""A Context over a real store for the notify tests, built from YAML for the ``notify`` section."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.context import Context
from agent.metrics import Metrics
from agent.store import Store


@pytest.fixture
def notify_ctx(make_config, tmp_path: Path) -> Iterator[Callable[..., Context]]:
    """``notify_ctx(yaml)`` → a Context on ``tmp_path/state/aiops.db``; call again for a
    "restarted" agent (a new Store and fresh metrics on the same file)."""
    opened: list[Store] = []

    def make(notify_yaml: str) -> Context:
        config = make_config("http:\n  public_url: http://aiops.example:9847\n" + notify_yaml)
        store = Store(tmp_path / "state" / "aiops.db")
        opened.append(store)
        return Context(config=config, store=store, state_dir=tmp_path / "state", metrics=Metrics())

    yield make
    for store in opened:
        store.close()


def sample(ctx: Context, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)
