"""The store suite runs against both backends: ``store`` here is SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from agent.store import Store


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store
