"""The remediation ledger's summary: per rule, playbook and UTC day a run was requested, what
the real runs came to, kept in the transaction that changes a run.

A ``ledger_days`` row holds the rule's counts (``COLUMNS``, in columns a query can sum), the
targets the rule's runs of that day ran on (``targets``, JSON) and, in five BLOB columns of
float64 numbers (``_PARTS``), the counts per target, the verification times of the verified runs (the ledger shows
their median, which cannot be summed, so the times are kept) and the failures (start, id, and
whether the run counts as a failure only because it was rolled back), so a ledger over whole
days reads one row per rule and day, not the runs. Shadow runs count on a row whose ``playbook``
is ``''``. A run counts on the day it was requested; a run that has not started counts nowhere.

Every change to a run goes through ``LedgerDays.tracked`` (its contribution before and after,
and its parent's when it is a rollback: a started rollback marks the run it undoes); pruning a
run takes it out of the summary too, so the ledger forgets pruned runs as it did when it read
the runs. ``rebuild`` recomputes the summary from the runs (migration 90 fills it that way).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agent.flow.runs import LEDGER_SEP
from agent.store.migrations import migration, run_script

DAY_S = 86400
# Count columns, in the order of ``Tally.counts``.
COLUMNS = ("runs", "verified", "not_fixed", "failed", "interrupted", "under_way", "rolled_back", "shadow",
           "shadow_checked")
_OUTCOME = {"verified": "verified", "not_fixed": "not_fixed", "failed": "failed", "timeout": "failed",
            "interrupted": "interrupted", "running": "under_way", "verifying": "under_way"}
_INDEX = {name: i for i, name in enumerate(COLUMNS)}

Key = tuple[str, str, str, int]  # rule, playbook, target ('' = the rule's row), day


@dataclass(slots=True)
class Tally:
    """What runs contribute to one key: counts (``COLUMNS``), verification times and failures
    as the tokens the table stores."""

    counts: list[int] = field(default_factory=lambda: [0] * len(COLUMNS))
    verify: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.verify.extend(other.verify)
        self.failures.extend(other.failures)

    @property
    def empty(self) -> bool:
        return not (any(self.counts) or self.verify or self.failures)


# The columns ``contributions`` reads of a run: whether a started rollback undid it, too.
_RUN_COLUMNS = ("SELECT r.id, r.mode, r.status, r.rule, r.playbook, r.targets, r.requested_at, r.started_at, "
                "r.verification, EXISTS (SELECT 1 FROM remediation_runs c WHERE c.parent_id = r.id "
                "AND c.mode = 'rollback' AND c.started_at IS NOT NULL) FROM remediation_runs r ")


def contributions(rows: Iterable[Sequence[Any]]) -> dict[Key, Tally]:
    """What the runs (rows of ``_RUN_COLUMNS``) add to the summary, by key."""
    out: dict[Key, Tally] = {}
    for row in rows:
        for key, tally in _one_run(row):
            out.setdefault(key, Tally()).add(tally)
    return out


def _one_run(row: Sequence[Any]) -> list[tuple[Key, Tally]]:
    run_id, mode, status, rule, playbook, targets, requested_at, started_at, verification, undone = row
    day = int(math.floor(requested_at / DAY_S))
    if mode == "shadow":
        tally = Tally()
        tally.counts[_INDEX["shadow"]] = 1
        verdict = json.loads(verification or "{}").get("verdict")
        tally.counts[_INDEX["shadow_checked"]] = int(verdict in ("fixed", "not_fixed"))
        return [((rule, "", "", day), tally)]
    if mode != "apply" or started_at is None:
        return []
    tally = Tally()
    tally.counts[_INDEX["runs"]] = 1
    outcome = _OUTCOME.get(status)
    if outcome is not None:
        tally.counts[_INDEX[outcome]] = 1
    tally.counts[_INDEX["rolled_back"]] = int(bool(undone))
    if status == "verified":
        verified_at = json.loads(verification or "{}").get("verified_at")
        if verified_at is not None:
            tally.verify.append(repr(float(verified_at) - started_at))
    failing = outcome in ("not_fixed", "failed")
    if failing or undone:
        tally.failures.append(_token(started_at, run_id, not failing))
    return [((rule, playbook, target, day), tally) for target in ["", *json.loads(targets)]]


@migration(90, "remediation ledger: per rule, playbook and day, kept as runs change")
def _ledger_days(conn: Any) -> None:
    run_script(conn, """
        CREATE TABLE ledger_days (
            rule TEXT NOT NULL, playbook TEXT NOT NULL, day INTEGER NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 0,
            not_fixed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
            interrupted INTEGER NOT NULL DEFAULT 0, under_way INTEGER NOT NULL DEFAULT 0,
            rolled_back INTEGER NOT NULL DEFAULT 0, shadow INTEGER NOT NULL DEFAULT 0,
            shadow_checked INTEGER NOT NULL DEFAULT 0, targets TEXT NOT NULL, target_counts BLOB NOT NULL,
            verify_s BLOB NOT NULL, target_verify_s BLOB NOT NULL, failures BLOB NOT NULL,
            target_failures BLOB NOT NULL,
            PRIMARY KEY (day, rule, playbook));
        CREATE INDEX runs_started ON remediation_runs(started_at);
        CREATE INDEX runs_requested ON remediation_runs(requested_at)
    """)
    rebuild(conn)


def rebuild(conn: Any) -> int:
    """Recompute the whole summary from the runs, inside the caller's transaction; returns the
    number of rows written."""
    conn.execute("DELETE FROM ledger_days")
    summary = contributions(conn.execute(_RUN_COLUMNS + "WHERE r.mode IN ('apply', 'shadow')").fetchall())
    rows = _by_row(summary)
    conn.executemany(_INSERT, [_encode(key, targets) for key, targets in sorted(rows.items())])
    return len(rows)


# The BLOB columns: float64 numbers (ids and counts are exact in them), so many width: the
# targets' counts (the columns before the shadow runs'), the rule's verification times, (target,
# time), the rule's failures (start, id, rolled back only), (target, start, id, rolled back only).
_PER_TARGET = COLUMNS.index("shadow")
_PARTS = {"target_counts": _PER_TARGET, "verify_s": 1, "target_verify_s": 2, "failures": 3, "target_failures": 4}
_WIDTHS = tuple(_PARTS.values())
_STORED = f"{', '.join(COLUMNS)}, targets, {', '.join(_PARTS)}"
_INSERT = (f"INSERT INTO ledger_days (rule, playbook, day, {_STORED}) "
           f"VALUES ({', '.join('?' for _ in range(len(COLUMNS) + len(_PARTS) + 4))})")
RowKey = tuple[str, str, int]  # rule, playbook, day


def _by_row(tallies: Mapping[Key, Tally]) -> dict[RowKey, dict[str, Tally]]:
    out: dict[RowKey, dict[str, Tally]] = {}
    for (rule, playbook, target, day), tally in tallies.items():
        out.setdefault((rule, playbook, day), {})[target] = tally
    return out


def _encode(key: RowKey, targets: Mapping[str, Tally]) -> tuple[Any, ...]:
    """A row of ``key`` from its tallies by target ('' = the rule's)."""
    names = sorted(t for t in targets if t)
    own = targets.get("", Tally())
    parts: list[list[float]] = [
        [n for t in names for n in targets[t].counts[:_PER_TARGET]],
        [float(v) for v in sorted(own.verify)],
        [n for i, t in enumerate(names) for v in sorted(targets[t].verify) for n in (i, float(v))],
        [n for f in sorted(own.failures) for n in _failure(f)],
        [n for i, t in enumerate(names) for f in sorted(targets[t].failures) for n in (i, *_failure(f))]]
    blobs = [np.array(part, dtype="<f8").tobytes() for part in parts]
    return (*key, *own.counts, json.dumps(names), *blobs)


def _parts(rows: Sequence[Sequence[bytes]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``_PARTS`` columns of ``rows``, part by part: (each entry's row, the entries (n, width))."""
    out = []
    for part, width in enumerate(_WIDTHS):
        blobs = [bytes(r[part]) for r in rows]
        sizes = np.array([len(b) // (8 * width) for b in blobs], dtype="int64")
        entries = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(-1, width)
        out.append((np.repeat(np.arange(len(rows)), sizes), entries))
    return out


def _failure(token: str) -> tuple[float, int, int]:
    at, run_id, rolled_only = token.split("/")
    return float(at), int(run_id), int(rolled_only)


def _token(at: float, run_id: int, rolled_only: object) -> str:
    return f"{float(at)!r}/{int(run_id)}/{int(bool(rolled_only))}"


def _decode(row: Sequence[Any]) -> dict[str, Tally]:
    """A row (``COLUMNS``, ``targets``, ``_PARTS``) as tallies by target ('' = the rule's)."""
    names = json.loads(row[len(COLUMNS)])
    counts, verify, target_verify, failures, target_failures = (
        entries.tolist() for _, entries in _parts([row[len(COLUMNS) + 1:]]))
    out = {"": Tally(counts=[int(v) for v in row[:len(COLUMNS)]], verify=[repr(v) for (v,) in verify],
                     failures=[_token(*f) for f in failures])}
    for name, figures in zip(names, counts):
        out[name] = Tally(counts=[int(n) for n in figures] + [0] * (len(COLUMNS) - _PER_TARGET))
    for i, value in target_verify:
        out[names[int(i)]].verify.append(repr(value))
    for i, *failure in target_failures:
        out[names[int(i)]].failures.append(_token(*failure))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerColumns:
    """Ledger figures as entries, not yet summed per key: ``names`` are the keys (rule, playbook,
    target; target '' for the rule's own figures, playbook '' for shadow runs); each entry
    points at its key by index. A key may have many entries (one a day, say)."""

    names: list[tuple[str, str, str]]
    count_key: np.ndarray       # int64
    counts: np.ndarray          # int64, entries x len(COLUMNS)
    verify_key: np.ndarray      # int64
    verify_s: np.ndarray        # float64
    failure_key: np.ndarray     # int64
    failure_at: np.ndarray      # float64, the run's start (epoch seconds)
    failure_run: np.ndarray     # int64
    failure_rolled_only: np.ndarray  # bool


def columns_of(tallies: Mapping[Key, Tally]) -> LedgerColumns:
    """``tallies`` (from the runs) as entries."""
    names = [(r, p, t) for r, p, t, _ in tallies]
    verify = [(i, float(v)) for i, tally in enumerate(tallies.values()) for v in tally.verify]
    failures = [(i, *_failure(f)) for i, tally in enumerate(tallies.values()) for f in tally.failures]
    return _columns(names, np.arange(len(names)), np.array([t.counts for t in tallies.values()], dtype="int64"),
                    np.array(verify, dtype="float64").reshape(-1, 2), np.array(failures, dtype="float64").reshape(-1, 4))


def _columns(names: list[tuple[str, str, str]], count_key: np.ndarray, counts: np.ndarray, verify: np.ndarray,
             failures: np.ndarray) -> LedgerColumns:
    """From (key, time) and (key, start, id, rolled back only) rows."""
    return LedgerColumns(names=names, count_key=count_key.astype("int64"),
                         counts=counts.reshape(-1, len(COLUMNS)).astype("int64"),
                         verify_key=verify[:, 0].astype("int64"), verify_s=verify[:, 1].astype("float64"),
                         failure_key=failures[:, 0].astype("int64"), failure_at=failures[:, 1].astype("float64"),
                         failure_run=failures[:, 2].astype("int64"), failure_rolled_only=failures[:, 3] > 0)


def concat(parts: Sequence[LedgerColumns]) -> LedgerColumns:
    """One set of entries of ``parts``, their keys merged."""
    index: dict[tuple[str, str, str], int] = {}
    moved = [np.array([index.setdefault(name, len(index)) for name in p.names], dtype="int64") for p in parts]
    return LedgerColumns(
        names=list(index), count_key=np.concatenate([m[p.count_key] for m, p in zip(moved, parts)]),
        counts=np.concatenate([p.counts for p in parts]).reshape(-1, len(COLUMNS)),
        verify_key=np.concatenate([m[p.verify_key] for m, p in zip(moved, parts)]),
        verify_s=np.concatenate([p.verify_s for p in parts]),
        failure_key=np.concatenate([m[p.failure_key] for m, p in zip(moved, parts)]),
        failure_at=np.concatenate([p.failure_at for p in parts]),
        failure_run=np.concatenate([p.failure_run for p in parts]),
        failure_rolled_only=np.concatenate([p.failure_rolled_only for p in parts]))


class LedgerDays:
    """The ``ledger_days`` table on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def runs(self, where: str, params: Sequence[Any]) -> dict[Key, Tally]:
        """Contributions of the runs ``where`` picks (SQL on ``r``)."""
        return contributions(self.conn.execute(_RUN_COLUMNS + "WHERE " + where, params).fetchall())

    def read(self, first_day: int, end_day: int, *, rule: str | None = None) -> LedgerColumns:
        """The rows of days ``[first_day, end_day)`` as entries: one a row for the rule, one for
        each target of a row."""
        sql = f"SELECT rule, playbook, {_STORED} FROM ledger_days WHERE day >= ? AND day < ?"
        params: list[Any] = [first_day, end_day]
        if rule is not None:
            sql += " AND rule = ?"
            params.append(rule)
        rows = self.conn.execute(sql, params).fetchall()
        # Keys: each row's (rule, playbook) first, then (that row, target) pairs, numbered at once.
        owners = pd.factorize(pd.Series([f"{r[0]}{LEDGER_SEP}{r[1]}" for r in rows], dtype=object))[1].tolist()
        own = {name: i for i, name in enumerate(owners)}
        own_key = np.array([own[f"{r[0]}{LEDGER_SEP}{r[1]}"] for r in rows], dtype="int64")
        names_of = [json.loads(r[2 + len(COLUMNS)]) for r in rows]
        widths = np.array([len(n) for n in names_of], dtype="int64")
        row_of = np.repeat(np.arange(len(rows)), widths)
        target_codes, targets = pd.factorize(pd.Series(list(itertools.chain.from_iterable(names_of)), dtype=object))
        span = max(len(targets), 1)
        pair_codes, pairs = pd.factorize(own_key[row_of] * span + target_codes)
        split_owners = [owner.split(LEDGER_SEP, 1) for owner in owners]
        target_names = targets.tolist()
        names = [(rule_, playbook, "") for rule_, playbook in split_owners]
        names.extend((*split_owners[pair // span], target_names[pair % span]) for pair in pairs.tolist())
        target_key = pair_codes.astype("int64") + len(owners)
        starts = np.concatenate([[0], np.cumsum(widths)])  # a row's first target's entry
        parts = _parts([r[-len(_PARTS):] for r in rows])
        per_target = np.zeros((len(target_key), len(COLUMNS)), dtype="int64")
        per_target[:, :_PER_TARGET] = parts[0][1]

        def keyed(part: int, targeted: bool) -> np.ndarray:
            """Part ``part`` of every row with its key in front."""
            rows_at, out = parts[part]
            if targeted:
                keys = target_key[starts[rows_at] + out[:, 0].astype("int64")]
                return np.column_stack([keys, out[:, 1:]])
            return np.column_stack([own_key[rows_at], out])

        counts = np.concatenate([np.array([r[2:2 + len(COLUMNS)] for r in rows], dtype="int64").reshape(
            -1, len(COLUMNS)), per_target])
        return _columns(names, np.concatenate([own_key, target_key]), counts,
                        np.concatenate([keyed(1, False), keyed(2, True)]),
                        np.concatenate([keyed(3, False), keyed(4, True)]))

    @contextmanager
    def tracked(self, run_ids: Sequence[int]) -> Iterator[None]:
        """Around a change to ``run_ids``: the summary moves by what their contribution (and
        their parents', for rollbacks) changed."""
        ids = [int(i) for i in run_ids]
        marks = ", ".join("?" for _ in ids)
        parents = [int(r[0]) for r in self.conn.execute(
            f"SELECT DISTINCT parent_id FROM remediation_runs WHERE id IN ({marks}) AND mode = 'rollback' "
            "AND parent_id IS NOT NULL", ids)]
        watched = sorted({*ids, *parents})
        where = f"r.id IN ({', '.join('?' for _ in watched)})"
        before = self.runs(where, watched)
        yield
        self.apply(before, self.runs(where, watched))

    def apply(self, before: dict[Key, Tally], after: dict[Key, Tally]) -> None:
        """Move each key's row from ``before``'s contribution to ``after``'s."""
        changed = {key for key in {*before, *after} if before.get(key) != after.get(key)}
        for row_key in sorted({(r, p, d) for r, p, _, d in changed}):
            where = "day = ? AND rule = ? AND playbook = ?"
            params = (row_key[2], row_key[0], row_key[1])
            row = self.conn.execute(f"SELECT {_STORED} FROM ledger_days WHERE {where}",
                                    params).fetchone()
            targets = {} if row is None else _decode(row)
            for r, p, target, d in changed:
                if (r, p, d) == row_key:
                    old, new = before.get((r, p, target, d), Tally()), after.get((r, p, target, d), Tally())
                    stored = targets.get(target, Tally())
                    targets[target] = Tally(
                        counts=[s + b - a for s, a, b in zip(stored.counts, old.counts, new.counts)],
                        verify=_moved(stored.verify, old.verify, new.verify),
                        failures=_moved(stored.failures, old.failures, new.failures))
            kept = {t: tally for t, tally in targets.items() if not tally.empty}
            self.conn.execute(f"DELETE FROM ledger_days WHERE {where}", params)
            if kept:
                self.conn.execute(_INSERT, _encode(row_key, kept))


def _moved(stored: list[str], old: list[str], new: list[str]) -> list[str]:
    """``stored`` without ``old``'s tokens and with ``new``'s (as multisets)."""
    out = Counter(stored)
    out.subtract(Counter(old))
    out.update(Counter(new))
    return sorted(out.elements())


__all__ = ["COLUMNS", "DAY_S", "Key", "LedgerColumns", "LedgerDays", "Tally", "columns_of", "concat", "contributions",
           "rebuild"]
