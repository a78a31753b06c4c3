"""Retention: what is pruned, what is never pruned unless configured, batches, and the audit."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from agent.context import Context
from agent.report.retention import prune
from tests.report.builders import DAY, add_incident

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
NOW_S = NOW.timestamp()


@pytest.fixture
def context(make_config, store, tmp_path):
    def make(retention: str = "") -> Context:
        config = make_config(f"retention:\n{retention}" if retention else "")
        return Context(config=config, store=store, state_dir=tmp_path)

    return make


def _samples(store, ages_days: list[float]) -> None:
    store.record_samples([], [("up{job=a}", NOW_S - a * DAY, 1.0) for a in ages_days], now=NOW_S)


def _sample_count(store) -> int:
    return len(store.sample_history(0, NOW_S))


def _hits(store, ages_days: list[float]) -> None:
    store.conn.executemany(
        "INSERT INTO hits (ts, series_id, detector, score, direction, recorded_at) VALUES (?, 's', 'stl', 1, 'up', ?)",
        [(NOW_S - a * DAY, NOW_S - a * DAY) for a in ages_days])


def _count(store, table: str) -> int:
    return store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _prune_entries(store) -> list[dict]:
    return [json.loads(r[0]) for r in store.conn.execute(
        "SELECT details FROM audit WHERE action = 'retention.prune' AND actor = 'agent:retention' ORDER BY id")]


def test_defaults_prune_samples_and_hits_and_keep_incidents_runs_audit(context, store):
    ctx = context()
    _samples(store, [20, 15, 13, 1])          # samples kept 14 days
    _hits(store, [40, 31, 29])                 # hits kept 30 days
    old = NOW_S - 400 * DAY
    add_incident(store, started=old, detected=old + 1, resolved=old + 60, resolution="manual",
                 runs=[{"rule": "restart"}])
    store.audit("cli:alice", "incident.resolve", "incident:1", {"reason": "fixed"}, now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    outcome = prune(ctx, now=NOW)
    assert outcome == {"deleted": {"samples": 2, "hits": 2}, "complete": True,
                       "cutoffs": {"samples": NOW_S - 14 * DAY, "hits": NOW_S - 30 * DAY}}
    assert (_sample_count(store), _count(store, "hits")) == (2, 1)
    assert ctx.metrics.registry.get_sample_value("aiops_retention_pruned_rows_total", {"table": "samples"}) == 2
    assert (_count(store, "incidents"), _count(store, "remediation_runs"), _count(store, "audit")) == (1, 1, 2)
    assert _prune_entries(store) == [{
        "reason": "older than the configured retention", "deleted": {"samples": 2, "hits": 2}, "complete": True,
        "cutoffs": {"samples": NOW_S - 14 * DAY, "hits": NOW_S - 30 * DAY}, "audit_anchor": None}]


def test_nothing_to_prune_writes_no_entry(context, store):
    _samples(store, [1])
    outcome = prune(context(), now=NOW)
    assert outcome["deleted"] == {"samples": 0, "hits": 0}
    assert _prune_entries(store) == [] and _count(store, "audit") == 0


def test_deletes_in_batches_of_the_configured_size(context, store):
    ctx = context("  batch_size: 3\n  hits: null\n")
    _samples(store, [20 + i for i in range(10)])
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    outcome = prune(ctx, now=NOW)
    store.conn.set_trace_callback(None)
    assert outcome["deleted"] == {"samples": 10}
    # 3 + 3 + 3 + 1 chunks (a day apart, so a sample each): four short transactions, never one long one.
    assert sum(s.startswith("DELETE FROM sample_chunks") for s in statements) == 10
    assert sum(s == "BEGIN IMMEDIATE" for s in statements) == 4 + 1  # the batches, then the audit entry


def test_a_stopping_agent_leaves_the_rest_for_next_time(context, store):
    ctx = context()
    _samples(store, [20, 21])
    ctx.stopping.set()
    assert prune(ctx, now=NOW) == {"deleted": {"samples": 0}, "cutoffs": {"samples": NOW_S - 14 * DAY},
                                   "complete": False}
    assert _sample_count(store) == 2


def test_incidents_pruned_only_when_configured_and_only_without_kept_runs(context, store):
    ctx = context("  incidents: 90d\n")
    old = NOW_S - 100 * DAY
    gone = add_incident(store, started=old, detected=old, resolved=old + 60, resolution="quiet",
                        signals=[{"metric": "cpu"}])
    store.conn.execute("INSERT INTO hits (ts, series_id, detector, score, direction, recorded_at, incident_id) "
                       "VALUES (?, 's', 'stl', 1, 'up', ?, ?)", (NOW_S - DAY, NOW_S - DAY, gone))
    store.set_incident_keys(gone, ["service=api"])
    with_run = add_incident(store, started=old, detected=old, resolved=old + 60, resolution="remediation",
                            runs=[{"rule": "restart"}])
    still_open = add_incident(store, started=old, detected=old)
    recent = add_incident(store, started=NOW_S - DAY, detected=NOW_S - DAY, resolved=NOW_S - 10, resolution="quiet")
    outcome = prune(ctx, now=NOW)
    assert outcome["deleted"] == {"samples": 0, "hits": 0, "incidents": 1}
    kept = [r[0] for r in store.conn.execute("SELECT id FROM incidents ORDER BY id")]
    assert kept == [with_run, still_open, recent]
    assert store.conn.execute("SELECT count(*) FROM incident_signals WHERE incident_id = ?", (gone,)).fetchone()[0] == 0
    assert _count(store, "hits") == 0
    assert store.conn.execute("SELECT count(*) FROM incident_keys WHERE incident_id = ?", (gone,)).fetchone()[0] == 0


def test_runs_and_their_incidents_pruned_together_when_both_configured(context, store):
    ctx = context("  incidents: 90d\n  runs: 90d\n")
    old = NOW_S - 100 * DAY
    add_incident(store, started=old, detected=old, resolved=old + 60, resolution="remediation",
                 runs=[{"rule": "restart"}, {"rule": "restart", "mode": "rollback"}])
    store.conn.execute("UPDATE remediation_runs SET parent_id = 1 WHERE id = 2")
    outcome = prune(ctx, now=NOW)
    assert outcome["deleted"] == {"samples": 0, "hits": 0, "remediation_runs": 2, "incidents": 1}
    assert (_count(store, "incidents"), _count(store, "remediation_runs")) == (0, 0)


def test_audit_pruning_keeps_the_chain_verifiable(context, store):
    ctx = context("  audit: 365d\n  batch_size: 2\n")
    for year in (2024, 2024, 2024, 2026):
        store.audit("cli:alice", "flag.set", "pause", {"reason": "test"}, now=datetime(year, 3, 1, tzinfo=timezone.utc))
    third_hash = store.conn.execute("SELECT hash FROM audit WHERE id = 3").fetchone()[0]
    outcome = prune(ctx, now=NOW)
    assert outcome["deleted"]["audit"] == 3
    assert [r[0] for r in store.conn.execute("SELECT id FROM audit ORDER BY id")] == [4, 5]
    assert store.audit_anchor() == (3, third_hash)
    assert _prune_entries(store)[0]["audit_anchor"] == third_hash
    assert store.verify_audit_chain() is None
    store.conn.execute("UPDATE audit SET subject = 'resume' WHERE id = 4")
    broken = store.verify_audit_chain()
    assert (broken.id, broken.reason) == (4, "its content does not match its hash (the entry was edited)")


def test_deleting_the_oldest_remaining_entry_is_caught(context, store):
    ctx = context("  audit: 365d\n")
    for year in (2024, 2026, 2026):
        store.audit("cli:alice", "flag.set", "pause", {}, now=datetime(year, 3, 1, tzinfo=timezone.utc))
    prune(ctx, now=NOW)
    store.conn.execute("DELETE FROM audit WHERE id = 2")
    broken = store.verify_audit_chain()
    assert (broken.id, broken.reason) == (3, "does not follow the entry before it (an entry was deleted or inserted)")


def test_chain_check_agrees_with_the_store_hash_on_awkward_content(store):
    awkward = ['quote " and backslash \\', "new\nline\ttab\x00nul", "ünïcödé ✓ 日本", "</script>", ""]
    for i, text in enumerate(awkward):
        store.audit(text or "agent", "note", text, {"reason": text, "n": i, "x": 1e300},
                    now=datetime.fromtimestamp(1234567890.123456 + i / 7, timezone.utc))
    assert store.verify_audit() is None
    assert store.verify_audit_chain() is None
