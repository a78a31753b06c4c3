"""The audit export carries who did what and why, for changes made through the store's own API."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from agent.flow.incidents import IncidentStatus, Matcher, MatchOp, Severity
from agent.report.audit import export
from agent.report.period import Period

NOW = datetime(2026, 5, 4, 12, tzinfo=timezone.utc)


@pytest.fixture
def store(any_store):
    """The audit trail on both backends."""
    return any_store


def test_state_changes_appear_with_actor_and_reason(store):
    incident = store.open_incident(severity=Severity.WARNING, title="disk filling", labels={"service": "db"},
                                   started_at=NOW - timedelta(minutes=5), now=NOW)
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="cli:alice", reason="looking",
                              now=NOW + timedelta(minutes=1))
    store.add_silence([Matcher(name="service", op=MatchOp.EQUAL, value="db")], starts_at=NOW,
                      ends_at=NOW + timedelta(hours=1), reason="maintenance window", actor="api", now=NOW)
    store.set_flag("remediation.paused", "1", actor="cli:bob", reason="change freeze", now=NOW)
    store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="cli:alice", reason="cleaned up",
                              now=NOW + timedelta(minutes=30))
    out = io.StringIO()
    count = export(store, Period(since=NOW - timedelta(days=1), until=NOW + timedelta(days=1)), "jsonl", out)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(entries) == 5
    assert [(e["actor"], e["action"], e["subject"], e["reason"]) for e in entries] == [
        ("agent", "incident.open", f"incident:{incident.id}", ""),
        ("cli:alice", "incident.acknowledged", f"incident:{incident.id}", "looking"),
        ("api", "silence.add", "silence:1", "maintenance window"),
        ("cli:bob", "flag.set", "remediation.paused", "change freeze"),
        ("cli:alice", "incident.resolved", f"incident:{incident.id}", "cleaned up")]
    assert entries[4]["details"]["resolution"] == "manual"
    assert store.verify_audit_chain() is None


def test_unknown_export_format_is_refused(store):
    try:
        export(store, Period(since=NOW, until=NOW + timedelta(days=1)), "xml", io.StringIO())
    except ValueError as exc:
        assert str(exc) == "expected a format among jsonl, csv, found 'xml'"
    else:
        raise AssertionError("xml was accepted")
