"""The trust repository: ``store.trust`` owns the ``rule_trust`` table; the store's former method
names read the same rows."""

from __future__ import annotations

from datetime import datetime, timezone

from agent.flow.trust import TrustSetting
from agent.store import Store
from agent.store.trust import TrustRepository

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_a_move_is_stored_audited_and_read_back_through_either_face(store: Store) -> None:
    trust = store.trust
    assert isinstance(trust, TrustRepository) and trust.get("fix") is None and trust.all() == {}
    moved = trust.move("fix", setting=TrustSetting.EARNED, mode="auto", actor="agent", reason="3 verified", now=T0,
                       runs=[4, 7])
    assert (moved.rule, moved.setting, moved.mode, moved.since, moved.runs) == (
        "fix", TrustSetting.EARNED, "auto", T0, (4, 7))
    assert store.rule_trust("fix") == moved and store.rule_trusts() == {"fix": moved} == trust.all()
    [entry] = [e for e in store.audit_entries() if e.action == "remediation.trust"]
    assert (entry.subject, entry.details["mode"], entry.details["runs"]) == ("rule:fix", "auto", [4, 7])
    trust.clear("fix", actor="alice", reason="by hand", now=T0)
    assert trust.get("fix") is None and store.rule_trust("fix") is None
