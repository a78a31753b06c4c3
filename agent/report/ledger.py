"""The remediation ledger (``remediations.ledger``) as text, CSV, JSON or an HTML page, and the
tables the weekly and governance reports include."""

from __future__ import annotations

import io
import json

from agent import csvcells
from agent.report import tables
from agent.report.render import environment
from agent.report.tables import Table, seconds, share, table, when
from remediations.ledger import COUNTS, Ledger, LedgerRow, ledger_dict

FORMATS = ("text", "json", "csv", "html")
_HEAD = ("runs", "verified", "not fixed", "failed", "rolled back", "interrupted", "under way", "success",
         "median to verify")


def _figures(row: LedgerRow) -> list[str]:
    return [*(str(getattr(row, name)) for name in COUNTS), share(row.success_rate), seconds(row.median_verify_s)]


def _last_failure(row: LedgerRow) -> str:
    if row.last_failure_run is None:
        return "-"
    return f"run {row.last_failure_run} at {when(row.last_failure_at)}: {row.last_failure_why or 'no reason recorded'}"


def _mark(row: LedgerRow) -> str:
    if row.not_fixed or row.failed or row.rolled_back:
        return "warn"
    return "good" if row.verified else ""


def rules_table(ledger: Ledger) -> Table:
    """Per rule and playbook; the mode each rule runs in now, and its shadow runs."""
    rows = [[r.rule, r.playbook, r.mode or "-", *_figures(r), f"{r.shadow} ({r.shadow_checked} checked)",
             _last_failure(r)] for r in ledger.rules]
    return table(["rule", "playbook", "mode", *_HEAD, "shadow", "last failure and why"], rows,
                 numeric=range(3, 13), text=[13], marks=[_mark(r) for r in ledger.rules],
                 empty="No remediation run in this period.", id="ledger")


def targets_table(ledger: Ledger) -> Table:
    rows = [[r.target or "-", r.rule, r.playbook, *_figures(r), _last_failure(r)] for r in ledger.targets]
    return table(["target", "rule", "playbook", *_HEAD, "last failure and why"], rows, numeric=range(3, 12),
                 text=[12], marks=[_mark(r) for r in ledger.targets], empty="No remediation run in this period.",
                 id="ledger-targets")


def _period(ledger: Ledger) -> str:
    return f"{ledger.since:%Y-%m-%d %H:%M} to {ledger.until:%Y-%m-%d %H:%M} UTC"


def as_text(ledger: Ledger, *, by: str = "rule") -> str:
    shown = targets_table(ledger) if by == "target" else rules_table(ledger)
    return (f"Remediation ledger {_period(ledger)}: {ledger.runs} real runs\n\n" + tables.as_text(shown)
            + "\nverified: the incident's signals stayed quiet for the verify period after the run; not fixed: not "
              "by the deadline; rolled back: the rule's rollback playbook ran after it; success: verified over "
              "verified, not fixed and failed.\n")


def as_json(ledger: Ledger) -> str:
    return json.dumps(ledger_dict(ledger), indent=2)


_CSV_HEADER = ["table", "rule", "playbook", "target", "mode", *COUNTS, "success_rate", "median_verify_s",
               "shadow", "shadow_checked", "last_failure_run", "last_failure_at", "last_failure_why"]


def as_csv(ledger: Ledger) -> str:
    """One line per rule and playbook (``table`` = rule), then per target (``table`` = target)."""
    out = io.StringIO()
    writer = csvcells.Writer(out)  # rule names, targets and reasons are not formulas
    writer.writerow(_CSV_HEADER)
    for name, rows in (("rule", ledger.rules), ("target", ledger.targets)):
        for r in rows:
            writer.writerow([name, r.rule, r.playbook, r.target or "", r.mode, *(getattr(r, c) for c in COUNTS),
                             "" if r.success_rate is None else round(r.success_rate, 4),
                             "" if r.median_verify_s is None else round(r.median_verify_s, 3),
                             r.shadow, r.shadow_checked, r.last_failure_run or "",
                             r.last_failure_at.isoformat() if r.last_failure_at else "", r.last_failure_why])
    return out.getvalue()


def as_html(ledger: Ledger) -> str:
    """One page, no script, no network; every cell escaped."""
    return environment().get_template("ledger.html").render(
        ledger=ledger, period=_period(ledger), rules=rules_table(ledger), targets=targets_table(ledger))


def render(ledger: Ledger, fmt: str, *, by: str = "rule") -> str:
    if fmt == "text":
        return as_text(ledger, by=by)
    return {"json": as_json, "csv": as_csv, "html": as_html}[fmt](ledger)
