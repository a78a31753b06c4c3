"""What a remediation run is. A ``Run`` changes only through ``RunStore`` methods, each of which
writes the audit entry in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunMode(StrEnum):
    CHECK = "check"        # ansible-playbook --check --diff: changes nothing
    APPLY = "apply"        # the real run
    ROLLBACK = "rollback"  # the rule's rollback playbook after a run that did not fix
    SHADOW = "shadow"      # shadow mode: recorded, never executed


class RunStatus(StrEnum):
    WAITING_APPROVAL = "waiting_approval"
    APPROVED = "approved"
    EXPIRED = "expired"            # nobody approved in time
    PENDING = "pending"            # decided, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"        # check and rollback runs that ended with rc 0
    VERIFYING = "verifying"        # applied; watching the incident's signals
    VERIFIED = "verified"          # the signals stayed recovered for the verify period
    NOT_FIXED = "not_fixed"        # signals not recovered by the deadline: rolled back, escalated
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"            # re-checked before the run: nothing left to fix
    SUGGESTED = "suggested"        # suggest mode: check run only
    SHADOW = "shadow"              # shadow mode: would have run
    INTERRUPTED = "interrupted"    # the agent died mid-run
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self not in _LIVE


class RunnerStatus(StrEnum):
    """How ansible-runner says an execution ended (``Runner.status`` once ``run()`` returns)."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    TIMEOUT = "timeout"      # ended at its timeout (ours or ansible-runner's)
    CANCELED = "canceled"    # cancelled: the agent was stopping


_LIVE = frozenset({RunStatus.WAITING_APPROVAL, RunStatus.APPROVED, RunStatus.PENDING, RunStatus.RUNNING,
                   RunStatus.VERIFYING})
# Outcomes that count towards a rule's circuit breaker, and the one that resets it.
FAILURES = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.NOT_FIXED})
SUCCESSES = frozenset({RunStatus.VERIFIED})


# How the ledger reads a run's outcome (``RunStore.ledger_runs`` codes them in this order), and
# what joins a rule to its playbook in the ledger's key.
LEDGER_OUTCOMES = ("other", "verified", "not_fixed", "failed", "interrupted", "under_way")
LEDGER_SEP = "\x1f"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSummary:
    """What ansible-runner's stats say about one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    id: int
    incident_id: int | None
    rule: str
    rule_mode: str                 # auto, approve, suggest (from the rule), or test
    playbook: str                  # relative to playbook_dir
    playbook_sha256: str
    mode: RunMode
    status: RunStatus
    targets: tuple[str, ...]
    extravars: Mapping[str, Any]   # as recorded: secrets redacted
    batch: int = 0                 # 0 = the canary (or the only batch)
    parent_id: int | None = None
    rc: int | None = None
    requested_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    expires_at: datetime | None = None
    verify_until: datetime | None = None
    verification: Mapping[str, Any] = field(default_factory=dict)
    host_summary: Mapping[str, HostSummary] = field(default_factory=dict)
    artifact_dir: str | None = None
    reason: str = ""
    output: str = ""
    owner: str | None = None       # pid:start-ticks of the agent process running it


def run_dict(run: Run) -> dict[str, Any]:
    """A run as plain JSON-able data (for the CLI's --json and the HTTP API)."""
    return {
        "id": run.id, "incident_id": run.incident_id, "rule": run.rule, "rule_mode": run.rule_mode,
        "playbook": run.playbook, "playbook_sha256": run.playbook_sha256, "mode": str(run.mode),
        "status": str(run.status), "targets": list(run.targets), "extravars": dict(run.extravars),
        "batch": run.batch, "parent_id": run.parent_id, "rc": run.rc,
        **{key: (value.isoformat() if value is not None else None) for key, value in (
            ("requested_at", run.requested_at), ("started_at", run.started_at), ("ended_at", run.ended_at),
            ("approved_at", run.approved_at), ("expires_at", run.expires_at), ("verify_until", run.verify_until))},
        "approved_by": run.approved_by, "verification": dict(run.verification),
        "host_summary": {h: {"ok": s.ok, "changed": s.changed, "failed": s.failed, "unreachable": s.unreachable,
                             "skipped": s.skipped} for h, s in run.host_summary.items()},
        "artifact_dir": run.artifact_dir, "reason": run.reason, "output": run.output,
    }
