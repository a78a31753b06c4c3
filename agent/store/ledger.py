"""The remediation ledger's summary: per rule and playbook (and per target), per UTC day a run
was requested, what the real runs came to, kept in the transaction that changes a run.

A ``ledger_days`` row holds the counts the ledger shows (``COUNTS`` and the shadow runs), the
verification times of the verified runs (``verify_s``, space-separated, for the exact median)
and the failures (``failures``: ``started_at/id/flag`` tokens, flag 1 when the run counts as a
failure only because it was rolled back), so a ledger over whole days reads these rows and not
the runs. ``target`` is ``''`` on the rule's own row; shadow runs count on a row whose
``playbook`` is ``''``. A run counts on the day it was requested; a run that has not started
counts nowhere.

Every change to a run goes through ``LedgerDays.tracked`` (its contribution before and after,
and its parent's when it is a rollback: a started rollback marks the run it undoes); pruning a
run takes it out of the summary too, so the ledger forgets pruned runs as it did when it read
the rows. ``rebuild`` recomputes the summary from the runs (migration 90 fills it that way).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
        tally.failures.append(f"{started_at!r}/{run_id}/{int(not failing)}")
    return [((rule, playbook, target, day), tally) for target in ["", *json.loads(targets)]]


@migration(90, "remediation ledger: per rule, playbook, target and day, kept as runs change")
def _ledger_days(conn: Any) -> None:
    run_script(conn, """
        CREATE TABLE ledger_days (
            rule TEXT NOT NULL, playbook TEXT NOT NULL, target TEXT NOT NULL, day INTEGER NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 0,
            not_fixed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
            interrupted INTEGER NOT NULL DEFAULT 0, under_way INTEGER NOT NULL DEFAULT 0,
            rolled_back INTEGER NOT NULL DEFAULT 0, shadow INTEGER NOT NULL DEFAULT 0,
            shadow_checked INTEGER NOT NULL DEFAULT 0, verify_s TEXT NOT NULL DEFAULT '',
            failures TEXT NOT NULL DEFAULT '', PRIMARY KEY (rule, playbook, target, day));
        CREATE INDEX ledger_days_day ON ledger_days(day);
        CREATE INDEX runs_started ON remediation_runs(started_at)
    """)
    rebuild(conn)


def rebuild(conn: Any) -> int:
    """Recompute the whole summary from the runs, inside the caller's transaction; returns the
    number of rows written."""
    conn.execute("DELETE FROM ledger_days")
    summary = contributions(conn.execute(_RUN_COLUMNS + "WHERE r.mode IN ('apply', 'shadow')").fetchall())
    conn.executemany(_INSERT, [_row(key, tally) for key, tally in summary.items()])
    return len(summary)


_INSERT = (f"INSERT INTO ledger_days (rule, playbook, target, day, {', '.join(COLUMNS)}, verify_s, failures) "
           f"VALUES ({', '.join('?' for _ in range(len(COLUMNS) + 6))})")


def _row(key: Key, tally: Tally) -> tuple[Any, ...]:
    return (*key, *tally.counts, " ".join(sorted(tally.verify)), " ".join(sorted(tally.failures)))


class LedgerDays:
    """The ``ledger_days`` table on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def runs(self, where: str, params: Sequence[Any]) -> dict[Key, Tally]:
        """Contributions of the runs ``where`` picks (SQL on ``r``)."""
        return contributions(self.conn.execute(_RUN_COLUMNS + "WHERE " + where, params).fetchall())

    def read(self, first_day: int, end_day: int, *, rule: str | None = None) -> dict[Key, Tally]:
        """The days ``[first_day, end_day)`` summed per rule, playbook and target (the key's day
        is ``first_day``)."""
        joined = "string_agg({0}, ' ')" if getattr(self.conn, "postgresql", False) else "group_concat({0}, ' ')"
        sql = (f"SELECT rule, playbook, target, {', '.join(f'sum({c})' for c in COLUMNS)}, "
               f"{joined.format('verify_s')}, {joined.format('failures')} FROM ledger_days "
               "WHERE day >= ? AND day < ?")
        params: list[Any] = [first_day, end_day]
        if rule is not None:
            sql += " AND rule = ?"
            params.append(rule)
        out = {}
        for row in self.conn.execute(sql + " GROUP BY rule, playbook, target", params):
            out[(row[0], row[1], row[2], first_day)] = Tally(
                counts=[int(v) for v in row[3:3 + len(COLUMNS)]], verify=(row[-2] or "").split(),
                failures=(row[-1] or "").split())
        return out

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
        for key in sorted({*before, *after}):
            old, new = before.get(key, Tally()), after.get(key, Tally())
            if old == new:
                continue
            row = self.conn.execute(
                f"SELECT {', '.join(COLUMNS)}, verify_s, failures FROM ledger_days "
                "WHERE rule = ? AND playbook = ? AND target = ? AND day = ?", key).fetchone()
            stored = Tally() if row is None else Tally(counts=[int(v) for v in row[:len(COLUMNS)]],
                                                       verify=row[len(COLUMNS)].split(),
                                                       failures=row[len(COLUMNS) + 1].split())
            moved = Tally(counts=[s + b - a for s, a, b in zip(stored.counts, old.counts, new.counts)],
                          verify=_moved(stored.verify, old.verify, new.verify),
                          failures=_moved(stored.failures, old.failures, new.failures))
            self.conn.execute("DELETE FROM ledger_days WHERE rule = ? AND playbook = ? AND target = ? AND day = ?",
                              key)
            if any(moved.counts) or moved.verify or moved.failures:
                self.conn.execute(_INSERT, _row(key, moved))


def _moved(stored: list[str], old: list[str], new: list[str]) -> list[str]:
    """``stored`` without ``old``'s tokens and with ``new``'s (as multisets)."""
    out = Counter(stored)
    out.subtract(Counter(old))
    out.update(Counter(new))
    return sorted(out.elements())


__all__ = ["COLUMNS", "DAY_S", "Key", "LedgerDays", "Tally", "contributions", "rebuild"]
