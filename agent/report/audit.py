"""Audit export: every entry of a period with its actor, action, subject and reason."""

from __future__ import annotations

import json
from typing import TextIO

from agent import csvcells
from agent.clock import from_epoch
from agent.report.period import Period
from agent.store.reports import ReportStore

EXPORT_FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ["id", "ts", "actor", "action", "subject", "reason", "details", "prev_hash", "hash"]


def export(store: ReportStore, period: Period, fmt: str, stream: TextIO) -> int:
    """Write the period's entries, oldest first, to ``stream``; returns how many.

    ``reason`` is lifted out of ``details`` (empty when the entry has none); ``ts`` is ISO-8601
    UTC; the hashes let a reader check the export against ``aiops audit verify``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"expected a format among {', '.join(EXPORT_FORMATS)}, found {fmt!r}")
    writer = csvcells.Writer(stream) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    count = 0
    for row_id, ts, actor, action, subject, details, prev_hash, digest in store.audit_rows(period.since_s, period.until_s):
        parsed = json.loads(details)
        reason = parsed.get("reason", "") if isinstance(parsed, dict) else ""
        when = from_epoch(ts).isoformat()
        if writer is not None:
            writer.writerow([row_id, when, actor, action, subject, reason, details, prev_hash, digest])
        else:
            stream.write(json.dumps({"id": row_id, "ts": when, "actor": actor, "action": action, "subject": subject,
                                     "reason": reason, "details": parsed, "prev_hash": prev_hash, "hash": digest},
                                    sort_keys=False) + "\n")
        count += 1
    return count
