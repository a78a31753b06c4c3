"""The store suite runs against both backends: ``store`` here is SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.dispose()
