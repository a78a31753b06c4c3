"""The ledger's per-day summary (``agent.store.ledger``) against the runs it summarises: the
ledger read from it equals the ledger computed from the runs, over every kind of window, as runs
move through their states, are rolled back, checked and pruned, and after an upgrade that fills
it from runs already in the store. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pytest

from agent.clock import to_epoch
from agent.flow.runs import RunMode, RunStatus
from agent.store import Store, migrations
from remediations.ledger import build_ledger, ledger_from_rows
from tests.remediations.conftest import T0

DAY = timedelta(days=1)
START = T0.replace(hour=0) - 6 * DAY  # 2026-11-19 00:00 UTC: runs over eight days from here
RULES = {"fix": ("fix.yml", "undo.yml"), "restart": ("restart.yml", "restart-undo.yml"), "drain": ("drain.yml", None)}
HOSTS = ("h1", "h2", "h3", "db-1")
# How a started real run ends, as the engine leaves it.
ENDINGS = (RunStatus.VERIFIED, RunStatus.VERIFIED, RunStatus.VERIFIED, RunStatus.NOT_FIXED, RunStatus.FAILED,
           RunStatus.TIMEOUT, RunStatus.INTERRUPTED, RunStatus.RUNNING, RunStatus.VERIFYING, RunStatus.CANCELED)


def fill(store: Store, count: int, *, seed: int = 3) -> list[int]:
    """``count`` runs through the store's own methods: real runs that end every way (some never
    start), rollbacks (some never start), shadow runs a person checked or not, runs on several
    targets. Returns the real runs' ids."""
    rng = random.Random(seed)
    ids = []
    for _ in range(count):
        rule = rng.choice(sorted(RULES))
        playbook, undo = RULES[rule]
        at = START + timedelta(seconds=rng.uniform(0, 8 * 86400))
        targets = rng.sample(HOSTS, rng.choice((1, 1, 1, 2, 3)))
        if rng.random() < 0.15:
            shadow = store.create_run(incident_id=None, rule=rule, rule_mode="approve", playbook=playbook,
                                      playbook_sha256="", mode=RunMode.SHADOW, status=RunStatus.SHADOW,
                                      targets=targets, extravars={}, now=at, reason="shadow mode: would have run")
            verdict = rng.choice(("fixed", "not_fixed", None))
            if verdict:
                store.update_run(shadow.id, RunStatus.SHADOW, now=at + timedelta(hours=1), actor="ann",
                                 verification={"verdict": verdict, "checked_by": "ann"})
            continue
        run = store.create_run(incident_id=None, rule=rule, rule_mode="auto", playbook=playbook, playbook_sha256="",
                               mode=RunMode.APPLY, status=RunStatus.PENDING, targets=targets, extravars={}, now=at)
        ids.append(run.id)
        if rng.random() < 0.1:
            continue  # never started (expired, skipped…)
        started = at + timedelta(seconds=rng.uniform(0, 120))
        store.update_run(run.id, RunStatus.RUNNING, now=started, started_at=started)
        status = rng.choice(ENDINGS)
        verification = {}
        if status is RunStatus.VERIFIED and rng.random() < 0.9:  # an old run may not say when
            verification = {"verified_at": (started + timedelta(seconds=rng.uniform(30, 900))).timestamp()}
        if status is not RunStatus.RUNNING:
            store.update_run(run.id, status, now=started + timedelta(minutes=5), ended_at=started + timedelta(minutes=2),
                             verification=verification, reason=f"{status} on {', '.join(targets)}")
        if undo and (status in (RunStatus.NOT_FIXED, RunStatus.FAILED) or rng.random() < 0.05):
            back = store.create_run(incident_id=None, rule=rule, rule_mode="auto", playbook=undo, playbook_sha256="",
                                    mode=RunMode.ROLLBACK, status=RunStatus.PENDING, targets=targets, extravars={},
                                    parent_id=run.id, now=started + timedelta(minutes=6))
            if rng.random() < 0.8:
                store.update_run(back.id, RunStatus.SUCCEEDED, now=started + timedelta(minutes=8),
                                 started_at=started + timedelta(minutes=7), ended_at=started + timedelta(minutes=8))
    return ids


# Windows: whole days, part-days at either end, within one day, before and after every run.
WINDOWS = [
    (START - 30 * DAY, START + 30 * DAY),
    (START, START + 8 * DAY),
    (START + timedelta(hours=7, minutes=13), START + 5 * DAY + timedelta(hours=3, seconds=1.5)),
    (START + 2 * DAY + timedelta(hours=1), START + 2 * DAY + timedelta(hours=20)),
    (START + 3 * DAY, START + 3 * DAY + timedelta(hours=12)),
    (START + 9 * DAY, START + 12 * DAY),
]


def same_as_the_runs(store: Store, since: datetime, until: datetime, **kwargs: object) -> None:
    now = START + 40 * DAY
    read = build_ledger(store, since, until, now=now, **kwargs)  # type: ignore[arg-type]
    assert read == ledger_from_rows(store, since, until, now=now, **kwargs)  # type: ignore[arg-type]


def summary_rows(store: Store) -> list[tuple[object, ...]]:
    return sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                  for row in store.query("SELECT * FROM ledger_days"))


def test_the_ledger_read_from_the_summary_equals_the_ledger_of_the_runs(any_store):
    fill(any_store, 160)
    whole = build_ledger(any_store, START - 30 * DAY, START + 30 * DAY, now=START)
    assert whole.runs > 100 and {r.rule for r in whole.rules} == set(RULES)  # every figure has something to count
    assert all(sum(getattr(r, n) for r in whole.rules) for n in ("verified", "not_fixed", "failed", "rolled_back",
                                                                   "interrupted", "under_way", "shadow_checked"))
    assert any(r.last_failure_why.startswith("rolled back") for r in whole.targets)
    assert any_store.ledger_summary(to_epoch(START), to_epoch(START + 8 * DAY)) is not None  # the summary served
    for since, until in WINDOWS:
        same_as_the_runs(any_store, since, until)
        same_as_the_runs(any_store, since, until, rule="fix", modes={"fix": "auto"})
    kept = summary_rows(any_store)
    assert len(kept) > 20
    assert any_store.rebuild_ledger() == len(kept)
    assert summary_rows(any_store) == kept  # kept as runs changed == recomputed from the runs


def test_a_run_that_started_after_the_window_ends_is_left_out_as_before(any_store):
    """A run requested inside a whole day of the window but started after it ends: the summary
    cannot leave it out, so the ledger reads the runs."""
    until = START + 3 * DAY + timedelta(hours=1)
    run = any_store.create_run(incident_id=None, rule="fix", rule_mode="approve", playbook="fix.yml",
                               playbook_sha256="", mode=RunMode.APPLY, status=RunStatus.WAITING_APPROVAL,
                               targets=["h1"], extravars={}, now=START + DAY)
    any_store.update_run(run.id, RunStatus.VERIFIED, now=until + DAY, started_at=until + DAY,
                         verification={"verified_at": (until + DAY).timestamp() + 60})
    assert any_store.ledger_summary(to_epoch(START), to_epoch(until)) is None
    assert build_ledger(any_store, START, until, now=until).runs == 0
    assert build_ledger(any_store, START, until + 2 * DAY, now=until).runs == 1


def test_pruned_runs_leave_the_summary_with_their_rows(any_store):
    fill(any_store, 120, seed=11)
    before = to_epoch(START + 3 * DAY + timedelta(hours=5))
    pruned = 0
    while count := any_store.prune_runs(before, 17):  # batches, as retention runs them
        pruned += count
    assert pruned > 20
    for since, until in WINDOWS:
        same_as_the_runs(any_store, since, until)
    kept = summary_rows(any_store)
    any_store.rebuild_ledger()
    assert summary_rows(any_store) == kept


def test_pruning_a_rollback_unmarks_the_run_it_undid(any_store):
    """A rollback that ended before its run (the run kept verifying) goes first: the run is no
    longer rolled back, as the runs now say."""
    run = any_store.create_run(incident_id=None, rule="fix", rule_mode="auto", playbook="fix.yml", playbook_sha256="",
                               mode=RunMode.APPLY, status=RunStatus.PENDING, targets=["h1"], extravars={}, now=START)
    any_store.update_run(run.id, RunStatus.VERIFYING, now=START, started_at=START)
    back = any_store.create_run(incident_id=None, rule="fix", rule_mode="auto", playbook="undo.yml",
                                playbook_sha256="", mode=RunMode.ROLLBACK, status=RunStatus.PENDING, targets=["h1"],
                                extravars={}, parent_id=run.id, now=START + timedelta(hours=1))
    any_store.update_run(back.id, RunStatus.SUCCEEDED, now=START + timedelta(hours=1),
                         started_at=START + timedelta(hours=1), ended_at=START + timedelta(hours=1))
    window = (START, START + 2 * DAY)
    assert [r.rolled_back for r in build_ledger(any_store, *window, now=START).rules] == [1]
    assert any_store.prune_runs(to_epoch(START + 2 * DAY), 10) == 1
    assert [r.rolled_back for r in build_ledger(any_store, *window, now=START).rules] == [0]
    same_as_the_runs(any_store, *window)


def test_a_replayed_shadow_run_counted_as_applied_moves_in_the_summary(any_store):
    shadow = any_store.create_run(incident_id=None, rule="fix", rule_mode="auto", playbook="fix.yml",
                                  playbook_sha256="", mode=RunMode.SHADOW, status=RunStatus.SHADOW, targets=["h1"],
                                  extravars={}, now=START + timedelta(hours=2))
    window = (START, START + DAY)
    (row,) = build_ledger(any_store, *window, now=START).rules
    assert (row.runs, row.shadow) == (0, 1)
    any_store.count_shadow_run_as_applied(shadow.id)
    (row,) = build_ledger(any_store, *window, now=START).rules
    assert (row.runs, row.shadow) == (1, 0)
    same_as_the_runs(any_store, *window)


def test_an_upgraded_store_gets_its_summary_from_the_runs_it_has(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:  # the store as it was before the summary
        patch.delitem(migrations.MIGRATIONS, 90)
        old = Store(path)
    rng = random.Random(5)
    rows, children = [], []
    for i in range(1, 401):
        at = float(to_epoch(START)) + rng.uniform(0, 8 * 86400)
        status = rng.choice(("verified", "verified", "not_fixed", "failed", "interrupted", "verifying"))
        verification = json.dumps({"verified_at": at + rng.uniform(60, 600)}) if status == "verified" else "{}"
        rows.append((i, "fix" if i % 3 else "restart", "fix.yml", "apply", status,
                     json.dumps(rng.sample(HOSTS, 1 + i % 2)), at, at + 5, verification, f"run {i}"))
        if status == "not_fixed":
            children.append((1000 + i, "fix", "undo.yml", "rollback", "succeeded", "[]", at + 600, at + 600, "{}",
                             "rollback", i))
        if i % 7 == 0:
            rows.append((2000 + i, "fix", "fix.yml", "shadow", "shadow", "[]", at, None,
                         json.dumps({"verdict": "fixed"}) if i % 2 else "{}", "shadow"))
    columns = "id, rule, playbook, mode, status, targets, requested_at, started_at, verification, reason"
    with old.transaction() as conn:
        conn.executemany(f"INSERT INTO remediation_runs ({columns}) VALUES ({', '.join('?' * 10)})", rows)
        conn.executemany(f"INSERT INTO remediation_runs ({columns}, parent_id) VALUES ({', '.join('?' * 11)})",
                         children)
    old.close()

    store = Store(path)
    assert 90 in {int(r[0]) for r in store.query("SELECT number FROM migrations")}
    ledger = build_ledger(store, START, START + 8 * DAY, now=START)
    assert ledger.runs == 400 and sum(r.shadow for r in ledger.rules) == 57
    for since, until in WINDOWS:
        same_as_the_runs(store, since, until)
    kept = summary_rows(store)
    store.rebuild_ledger()
    assert summary_rows(store) == kept
    store.close()


@pytest.mark.parametrize("incident_ids", [[1, 2], []])
def test_a_ledger_of_some_incidents_reads_their_runs(any_store, incident_ids):
    for incident in (1, 2, 3):
        opened = any_store.open_incident(severity="warning", title=f"i{incident}", labels={}, started_at=START,
                                         now=START)
        run = any_store.create_run(incident_id=opened.id, rule="fix", rule_mode="auto", playbook="fix.yml",
                                   playbook_sha256="", mode=RunMode.APPLY, status=RunStatus.PENDING, targets=["h1"],
                                   extravars={}, now=START + timedelta(hours=incident))
        any_store.update_run(run.id, RunStatus.FAILED, now=START + timedelta(hours=incident),
                             started_at=START + timedelta(hours=incident))
    ledger = build_ledger(any_store, START, START + DAY, now=START, incident_ids=incident_ids)
    assert ledger.runs == len(incident_ids)
