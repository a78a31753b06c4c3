"""Copy a whole store into an empty one: SQLite to PostgreSQL when an agent outgrows one machine.

Every table's rows are copied as they are (ids, times, hashes), so the audit chain verifies on the
copy exactly as on the original. The source is read in one snapshot (an agent may be writing it);
the target must be empty and at the same migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import sqlalchemy as sa

from agent.errors import StoreError
from agent.store.base import StoreBase

BATCH_ROWS = 5000


def copy_store(source: StoreBase, target: StoreBase) -> dict[str, int]:
    """Copy every row of ``source`` into ``target`` in one transaction; the rows copied per table.
    ``source`` is read in one snapshot, so a store an agent is writing meanwhile is copied as it
    was at one moment (every row a row of another table refers to is there). ``StoreError`` when
    ``target`` holds anything or has had other migrations."""
    if source.path == target.path:
        raise StoreError(str(target.path), "expected a store other than the source, found the source itself")
    with source.snapshot():
        return _copy(source, target)


def _copy(source: StoreBase, target: StoreBase) -> dict[str, int]:
    _check_same_schema(source, target)
    for table, count in target.table_counts().items():
        if table != "migrations" and count:
            raise StoreError(str(target.path), f"expected an empty store, found {count} rows in {table}")
    copied: dict[str, int] = {}
    with target.transaction() as conn:
        for table in _dependency_order(target):
            if table == "migrations":
                continue
            columns = target.table_columns(table)
            names = ", ".join(columns)
            insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"
            rows = (tuple(row[c] for c in columns) for row in source.table_rows(table))
            copied[table] = 0
            while batch := list(islice(rows, BATCH_ROWS)):
                conn.executemany(insert, batch)
                copied[table] += len(batch)
        if target.postgresql:
            _restart_identities(target)
    return copied


def _check_same_schema(source: StoreBase, target: StoreBase) -> None:
    theirs = {int(r[0]) for r in source.query("SELECT number FROM migrations")}
    ours = {int(r[0]) for r in target.query("SELECT number FROM migrations")}
    if theirs != ours:
        raise StoreError(str(target.path), f"expected the source's migrations {sorted(theirs)}, found {sorted(ours)}")


def _dependency_order(store: StoreBase) -> list[str]:
    """Tables with the tables they reference first (PostgreSQL checks each row's foreign keys)."""
    if not store.postgresql:
        return store.table_names()
    metadata = sa.MetaData()
    metadata.reflect(bind=store._engine)
    return [table.name for table in metadata.sorted_tables]


def _restart_identities(store: StoreBase) -> None:
    """Identity columns go on after the copied ids (rows were inserted with their own ids)."""
    for table, column in _identity_columns(store):
        store.conn.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), coalesce(max({column}), 0) + 1, false) FROM {table}",
            (table, column))


def _identity_columns(store: StoreBase) -> Iterator[tuple[str, Any]]:
    for row in store.query("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name"):
        yield row[0], row[1]
