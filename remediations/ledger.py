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

import numpy as np
import pandas as pd

from agent.clock import from_epoch, to_epoch
from agent.flow.runs import LEDGER_OUTCOMES, LEDGER_SEP
from agent.store.ledger import COLUMNS, LedgerColumns

if TYPE_CHECKING:
    from agent.store import Store

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
    ``modes`` names how each rule runs now; ``rule`` keeps one rule. Read from the store's
    per-day summary (``agent.store.ledger``), and the runs of a part-day at either end that
    holds runs outside the window; from the runs alone (``ledger_from_rows``) for some incidents
    only, or when the summary cannot say."""
    since_s, until_s = float(to_epoch(since)), float(to_epoch(until))
    figures = None if incident_ids is not None else store.ledger_summary(since_s, until_s, rule=rule)
    if figures is None:
        return ledger_from_rows(store, since, until, now=now, incident_ids=incident_ids, modes=modes, rule=rule)
    return _from_columns(store, figures, since, until, now=now, modes=modes or {})


def ledger_from_rows(store: "Store", since: datetime, until: datetime, *, now: datetime,
                     incident_ids: Sequence[int] | None = None, modes: Mapping[str, str] | None = None,
                     rule: str | None = None) -> Ledger:
    """``build_ledger`` computed from the period's runs alone, with numpy: what the summary must
    always agree with."""
    since_s, until_s = float(to_epoch(since)), float(to_epoch(until))
    runs, shadow = store.ledger_runs(since_s, until_s, incident_ids=incident_ids)
    if rule is not None:
        runs = runs[runs["key"].str.startswith(rule + LEDGER_SEP)].reset_index(drop=True)
        shadow = shadow[shadow["rule"] == rule]
    codes, keys = pd.factorize(runs["key"].to_numpy(dtype=object), sort=True)
    names = [str(k).split(LEDGER_SEP, 1) for k in keys]
    per_rule = _rows(store, runs, codes, [(rule_, playbook, None) for rule_, playbook in names], modes or {})
    if len(shadow):
        per_rule = _with_shadow(per_rule, shadow.set_index("rule"), modes or {})
    (group, rows), pairs = _by_target(runs, codes)
    per_target = _rows(store, runs.iloc[rows].reset_index(drop=True), group,
                       [(names[code][0], names[code][1], target) for code, target in pairs], modes or {})
    return Ledger(since=since, until=until, generated_at=now, rules=tuple(per_rule), targets=tuple(per_target))


def _from_columns(store: "Store", figures: LedgerColumns, since: datetime, until: datetime, *,
                  now: datetime, modes: Mapping[str, str]) -> Ledger:
    """The ledger from the summary's entries: summed per rule, playbook and target."""
    names, group = _ordered(figures.names)
    n = len(names)
    keys = group[figures.count_key]
    sums = {name: np.bincount(keys, weights=figures.counts[:, COLUMNS.index(name)], minlength=n).astype("int64")
            .tolist() for name in (*COUNTS, "shadow", "shadow_checked")}
    middle = pd.Series(figures.verify_s).groupby(group[figures.verify_key]).median().reindex(range(n)).tolist()
    last = _last_failures(figures, group, n)
    reasons = store.run_reasons([run for run in last[0] if run >= 0])
    rows, shadow = [], []
    for (rule, playbook, target), runs, verified, not_fixed, failed, rolled_back, interrupted, under_way, \
            shadows_, checked, median, run, at, rolled in zip(names, *(sums[name] for name in COUNTS), sums["shadow"],
                                                              sums["shadow_checked"], middle, *last):
        if not playbook:
            shadow.append((rule, shadows_, checked))
        elif runs:
            why = reasons.get(run, "") if run >= 0 else ""
            if run >= 0 and rolled:
                why = f"rolled back: {why}" if why else "rolled back"
            rows.append(LedgerRow(
                rule=rule, playbook=playbook, target=target or None, runs=runs, verified=verified,
                not_fixed=not_fixed, failed=failed, rolled_back=rolled_back, interrupted=interrupted,
                under_way=under_way, median_verify_s=None if median != median else median,  # NaN: none verified
                last_failure_run=run if run >= 0 else None, last_failure_at=from_epoch(at) if run >= 0 else None,
                last_failure_why=why, mode=modes.get(rule, "")))
    per_rule = [row for row in rows if row.target is None]
    shadows = pd.DataFrame(shadow, columns=["rule", "shadow", "checked"]).groupby("rule", sort=True).sum()
    if (shadows["shadow"] > 0).any():
        per_rule = _with_shadow(per_rule, shadows[shadows["shadow"] > 0], modes)
    return Ledger(since=since, until=until, generated_at=now, rules=tuple(per_rule),
                  targets=tuple(row for row in rows if row.target is not None))


def _ordered(names: Sequence[tuple[str, str, str]]) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """``names`` in the order the runs path gives its rows (by ``rule␟playbook``, then target),
    and each name's place in it."""
    order = sorted(range(len(names)), key=lambda i: (names[i][0] + LEDGER_SEP + names[i][1], names[i][2]))
    place = np.empty(len(order), dtype="int64")
    place[np.array(order, dtype="int64")] = np.arange(len(order))
    return [names[i] for i in order], place


def _last_failures(figures: LedgerColumns, group: np.ndarray, n: int) -> tuple[list[int], list[float], list[bool]]:
    """Per group, the newest failure (by start, then id): its run (-1 when none), start, and
    whether it failed only by being rolled back."""
    groups = group[figures.failure_key]
    newest = np.lexsort((figures.failure_run, figures.failure_at, groups))
    ends = newest[np.r_[groups[newest][1:] != groups[newest][:-1], True]] if len(newest) else newest
    run, at, rolled = np.full(n, -1, dtype="int64"), np.zeros(n), np.zeros(n, dtype=bool)
    run[groups[ends]], at[groups[ends]] = figures.failure_run[ends], figures.failure_at[ends]
    rolled[groups[ends]] = figures.failure_rolled_only[ends]
    return run.tolist(), at.tolist(), rolled.tolist()


def _by_target(runs: pd.DataFrame, codes: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[int, str]]]:
    """Per rule, playbook and target: ((each row's group, the run it repeats), each group's
    (rule-and-playbook code, target)). Most runs have one plain target: ``["h1"]`` is read
    without a JSON parse."""
    rows, hosts = [], []
    for i, text in enumerate(runs["targets"].to_numpy(dtype=object)):
        inner = text[2:-2]
        plain = text.startswith('["') and '"' not in inner and "\\" not in text
        for host in [inner] if plain else json.loads(text):
            rows.append(i)
            hosts.append(host)
    at = np.asarray(rows, dtype="int64")
    host_codes, host_names = pd.factorize(np.asarray(hosts, dtype=object), sort=True)
    width = max(len(host_names), 1)
    group, uniques = pd.factorize(codes[at].astype("int64") * width + host_codes, sort=True)
    return (group, at), [(int(u // width), str(host_names[u % width])) for u in uniques]


def _rows(store: "Store", runs: pd.DataFrame, codes: np.ndarray, names: list[tuple[str, str, str | None]],
          modes: Mapping[str, str]) -> list[LedgerRow]:
    """One row per group (``runs``' row i belongs to group ``codes[i]``, named ``names[group]``)."""
    n = len(names)
    outcome = runs["outcome"].to_numpy()
    rolled = runs["rolled_back"].to_numpy(dtype=bool)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=mask, minlength=n).astype("int64")

    figures = {"runs": np.bincount(codes, minlength=n), "rolled_back": count(rolled),
               **{name: count(outcome == LEDGER_OUTCOMES.index(name)) for name in COUNTS if name in LEDGER_OUTCOMES}}
    medians = pd.Series(runs["verify_s"].to_numpy()).groupby(codes).median().reindex(range(n))
    failure = np.isin(outcome, (LEDGER_OUTCOMES.index("not_fixed"), LEDGER_OUTCOMES.index("failed"))) | rolled
    last = (pd.DataFrame({"code": codes, "at": runs["started_at"].to_numpy(), "id": runs["id"].to_numpy(),
                          "outcome": outcome, "rolled": rolled})[failure]
            .sort_values(["code", "at", "id"]).drop_duplicates("code", keep="last").set_index("code"))
    reasons = store.run_reasons([int(i) for i in last["id"]])
    lasts = {int(code): row for code, row in zip(last.index, last.itertuples(index=False))}
    counted = {name: figures[name].tolist() for name in COUNTS}
    middle = medians.to_numpy().tolist()
    out = []
    for code, (rule, playbook, target) in enumerate(names):
        failed = lasts.get(code)
        out.append(LedgerRow(
            rule=rule, playbook=playbook, target=target, **{name: counted[name][code] for name in COUNTS},
            median_verify_s=_number(middle[code]),
            last_failure_run=None if failed is None else int(failed.id),
            last_failure_at=None if failed is None else from_epoch(float(failed.at)),
            last_failure_why="" if failed is None else _why(failed, reasons), mode=modes.get(rule, "")))
    return out


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
    reason = reasons.get(int(last.id), "")
    if bool(last.rolled) and last.outcome not in (LEDGER_OUTCOMES.index("not_fixed"), LEDGER_OUTCOMES.index("failed")):
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


__all__ = ["Ledger", "LedgerRow", "build_ledger", "ledger_dict", "ledger_from_rows", "row_dict"]
