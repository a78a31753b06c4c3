"""The remediation ledger: what each rule's playbook did when it ran for real.

Per rule and playbook, and per target host: the real runs of a period, how many were verified
(the incident's signals stayed quiet afterwards), not fixed (not quiet by the verify deadline),
failed (the playbook failed or timed out), rolled back (the rule's rollback playbook ran after
it), interrupted (the agent stopped mid-run) or are still under way; the median time from a
run's start to its verification; and the last failure with its reason. Shadow runs (that ran
nothing) are counted beside them, with how many a person checked.

It is the record a team reads before letting a rule run alone, and the one ``trust: earned``
reads to decide it (``remediations.trust``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from agent.clock import from_epoch, to_epoch
from agent.flow.runs import RunStatus

if TYPE_CHECKING:
    from agent.store import Store

VERIFIED = (RunStatus.VERIFIED,)
NOT_FIXED = (RunStatus.NOT_FIXED,)
FAILED = (RunStatus.FAILED, RunStatus.TIMEOUT)
INTERRUPTED = (RunStatus.INTERRUPTED,)
UNDER_WAY = (RunStatus.RUNNING, RunStatus.VERIFYING)
COUNTS = ("runs", "verified", "not_fixed", "failed", "rolled_back", "interrupted", "under_way")


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """What one rule's playbook did (on one ``target``, in the per-target table)."""

    rule: str
    playbook: str
    target: str | None = None
    runs: int = 0
    verified: int = 0
    not_fixed: int = 0
    failed: int = 0
    rolled_back: int = 0
    interrupted: int = 0
    under_way: int = 0
    median_verify_s: float | None = None  # from a run's start to its verification
    last_failure_run: int | None = None
    last_failure_at: datetime | None = None
    last_failure_why: str = ""
    shadow: int = 0          # shadow runs (per rule only): nothing ran
    shadow_checked: int = 0  # of them, checked by a person
    mode: str = ""           # how the rule runs now (auto, approve, …), when the caller knows

    @property
    def decided(self) -> int:
        return self.verified + self.not_fixed + self.failed

    @property
    def success_rate(self) -> float | None:
        """Verified runs over those that came to a verdict (higher = better); None without any."""
        return self.verified / self.decided if self.decided else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    since: datetime
    until: datetime
    generated_at: datetime
    rules: tuple[LedgerRow, ...] = ()
    targets: tuple[LedgerRow, ...] = field(default=())

    @property
    def runs(self) -> int:
        return sum(r.runs for r in self.rules)


def build_ledger(store: "Store", since: datetime, until: datetime, *, now: datetime,
                 incident_ids: Sequence[int] | None = None, modes: Mapping[str, str] | None = None,
                 rule: str | None = None) -> Ledger:
    """The ledger of runs started in ``[since, until)`` (of ``incident_ids`` only, when given);
    ``modes`` names how each rule runs now; ``rule`` keeps one rule."""
    since_s, until_s = float(to_epoch(since)), float(to_epoch(until))
    runs, shadow = store.ledger_runs(since_s, until_s, incident_ids=incident_ids)
    if rule is not None:
        runs, shadow = runs[runs["rule"] == rule], shadow[shadow["rule"] == rule]
    runs = _classified(runs)
    per_rule = _rows(store, runs, ["rule", "playbook"], shadow=shadow, modes=modes or {})
    per_target = _rows(store, _by_target(runs), ["rule", "playbook", "target"], shadow=None, modes=modes or {})
    return Ledger(since=since, until=until, generated_at=now, rules=tuple(per_rule), targets=tuple(per_target))


def _classified(runs: pd.DataFrame) -> pd.DataFrame:
    status = runs["status"]
    out = runs.assign(
        verified=status.isin(VERIFIED), not_fixed=status.isin(NOT_FIXED), failed=status.isin(FAILED),
        interrupted=status.isin(INTERRUPTED), under_way=status.isin(UNDER_WAY))
    # A failure is a run that did not fix: not fixed, failed, or undone by its rollback.
    out["failure"] = out["not_fixed"] | out["failed"] | out["rolled_back"]
    return out


def _by_target(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run and target host. Most runs have one plain target: ``["h1"]`` is read
    without a JSON parse."""
    targets = [t[2:-2] if t.startswith('["') and '"' not in t[2:-2] and "\\" not in t else json.loads(t)
               for t in runs["targets"]]
    return runs.assign(target=targets).explode("target").dropna(subset=["target"])


def _rows(store: "Store", runs: pd.DataFrame, keys: list[str], *, shadow: pd.DataFrame | None,
          modes: Mapping[str, str]) -> list[LedgerRow]:
    counts = runs.groupby(keys, sort=True).agg(
        runs=("id", "size"), verified=("verified", "sum"), not_fixed=("not_fixed", "sum"), failed=("failed", "sum"),
        rolled_back=("rolled_back", "sum"), interrupted=("interrupted", "sum"), under_way=("under_way", "sum"),
        median_verify_s=("verify_s", "median")).reset_index()
    last = (runs[runs["failure"]].sort_values(["started_at", "id"]).groupby(keys).tail(1)
            [[*keys, "id", "started_at", "rolled_back", "not_fixed", "failed"]]
            .rename(columns={"id": "last_id", "started_at": "last_at", "rolled_back": "last_rolled_back",
                             "not_fixed": "last_not_fixed", "failed": "last_failed"}))
    table = counts.merge(last, on=keys, how="left")
    reasons = store.run_reasons([int(i) for i in last["last_id"]])
    if "target" not in table:
        table["target"] = None
    rows = [LedgerRow(
        rule=r.rule, playbook=r.playbook, target=r.target, runs=int(r.runs), verified=int(r.verified),
        not_fixed=int(r.not_fixed), failed=int(r.failed), rolled_back=int(r.rolled_back),
        interrupted=int(r.interrupted), under_way=int(r.under_way), median_verify_s=_number(r.median_verify_s),
        last_failure_run=None if pd.isna(r.last_id) else int(r.last_id),
        last_failure_at=None if pd.isna(r.last_id) else from_epoch(r.last_at),
        last_failure_why="" if pd.isna(r.last_id) else _why(r, reasons), mode=modes.get(r.rule, ""))
        for r in table.itertuples(index=False)]
    if shadow is not None and len(shadow):
        rows = _with_shadow(rows, shadow.set_index("rule"), modes)
    return rows


def _with_shadow(rows: list[LedgerRow], shadows: pd.DataFrame, modes: Mapping[str, str]) -> list[LedgerRow]:
    """Shadow counts on each rule's first row; a rule with shadow runs only gets a row of its own."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.rule in shadows.index and row.rule not in seen:
            figures = shadows.loc[row.rule]
            row = replace(row, shadow=int(figures["shadow"]), shadow_checked=int(figures["checked"]))
        seen.add(row.rule)
        out.append(row)
    for rule, figures in shadows.iterrows():
        if rule not in seen:
            out.append(LedgerRow(rule=str(rule), playbook="-", shadow=int(figures["shadow"]),
                                 shadow_checked=int(figures["checked"]), mode=modes.get(str(rule), "")))
    return sorted(out, key=lambda r: (r.rule, r.playbook))


def _why(last: Any, reasons: Mapping[int, str]) -> str:
    reason = reasons.get(int(last.last_id), "")
    if bool(last.last_rolled_back) and not (last.last_not_fixed or last.last_failed):
        return f"rolled back: {reason}" if reason else "rolled back"
    return reason


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def ledger_dict(ledger: Ledger) -> dict[str, object]:
    """The ledger as JSON-able data (``--format json``, the HTTP API)."""
    return {"since": ledger.since.isoformat(), "until": ledger.until.isoformat(),
            "generated_at": ledger.generated_at.isoformat(),
            "rules": [row_dict(r) for r in ledger.rules], "targets": [row_dict(r) for r in ledger.targets]}


def row_dict(row: LedgerRow) -> dict[str, object]:
    out: dict[str, object] = {"rule": row.rule, "playbook": row.playbook}
    if row.target is not None:
        out["target"] = row.target
    out.update({name: getattr(row, name) for name in COUNTS})
    out.update(success_rate=row.success_rate, median_verify_s=row.median_verify_s,
               last_failure={"run": row.last_failure_run, "at": row.last_failure_at.isoformat(),
                             "why": row.last_failure_why} if row.last_failure_run is not None else None)
    if row.target is None:
        out.update(shadow=row.shadow, shadow_checked=row.shadow_checked, mode=row.mode or None)
    return out


__all__ = ["Ledger", "LedgerRow", "build_ledger", "ledger_dict", "row_dict"]
