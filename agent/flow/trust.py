"""How far a remediation rule is trusted to run alone, and the record that moved it.

A rule configured ``trust: earned`` starts in ``approve``; its own runs move it to ``auto`` and
back (``remediations.trust``). A person may pin any auto/approve rule (``auto``, ``approve``) or
hand it to its record (``earned``). Each move is stored as a ``RuleTrust``, changed only through
the store, which writes the audit entry with the runs that justified it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class TrustSetting(StrEnum):
    EARNED = "earned"     # the rule's record moves it
    AUTO = "auto"         # pinned by hand: runs alone
    APPROVE = "approve"   # pinned by hand: waits for a person


class Evidence(StrEnum):
    """What one run says about a rule's playbook."""

    VERIFIED = "verified"        # ran, and the incident's signals stayed quiet afterwards
    NOT_FIXED = "not_fixed"      # ran, and they did not by the verify deadline
    FAILED = "failed"            # the playbook failed or timed out
    ROLLED_BACK = "rolled_back"  # the rule's rollback playbook ran after it


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleTrust:
    rule: str
    setting: TrustSetting
    mode: str                 # how the rule runs since ``since``: auto or approve
    since: datetime
    changed_by: str
    reason: str
    runs: tuple[int, ...]     # the runs that justified the last move (none for a move by hand)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvidence:
    """One run of a rule as graduation reads it (shadow runs only once a person checked them)."""

    run: int
    incident_id: int | None
    at: datetime
    outcomes: frozenset[Evidence]   # a run not fixed and then rolled back is both
    shadow: bool = False

    @property
    def verified(self) -> bool:
        return Evidence.VERIFIED in self.outcomes


def trust_dict(t: RuleTrust) -> dict[str, Any]:
    return {"rule": t.rule, "setting": t.setting.value, "mode": t.mode, "since": t.since.isoformat(),
            "changed_by": t.changed_by, "reason": t.reason, "runs": list(t.runs)}
