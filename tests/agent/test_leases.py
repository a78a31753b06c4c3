"""Leases on one store: one holder at a time, a takeover only after expiry, a release hands over at
once, and a playbook run is started only under the leader lease (checked in the store)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agent.clock import ManualClock
from agent.config import parse_config
from agent.context import Health
from agent.errors import LeaseLostError
from agent.flow.leases import LEADER, holder_id
from agent.flow.runs import RunMode, RunStatus
from agent.leases import LeaseKeeper
from agent.metrics import Metrics
from remediations.engine import owner_alive

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(any_store):
    """Leases work alike on both backends: SQLite and a real PostgreSQL."""
    return any_store


def test_a_lease_has_one_holder_until_it_expires_and_every_change_of_holder_is_audited(store):
    clock = ManualClock(T0)
    assert store.take_lease("shard:0/1", "a", ttl_s=10, now=clock())
    assert not store.take_lease("shard:0/1", "b", ttl_s=10, now=clock())
    clock.advance(9)
    assert store.take_lease("shard:0/1", "a", ttl_s=10, now=clock())  # renewed: now until T0 + 19 s
    clock.advance(9.5)
    assert not store.take_lease("shard:0/1", "b", ttl_s=10, now=clock())
    assert store.holds_lease("shard:0/1", "a", now=clock()) and not store.holds_lease("shard:0/1", "b", now=clock())
    clock.advance(0.5)
    assert not store.holds_lease("shard:0/1", "a", now=clock())
    assert store.take_lease("shard:0/1", "b", ttl_s=10, now=clock())
    assert not store.release_lease("shard:0/1", "a", now=clock())  # not a's to give
    assert store.release_lease("shard:0/1", "b", now=clock())
    assert store.leases() == []
    taken = [(e.actor, e.action, e.details.get("from")) for e in store.audit_entries() if e.action.startswith("lease.")]
    assert taken == [("a", "lease.taken", None), ("b", "lease.taken", "a"), ("b", "lease.released", None)]
    assert store.verify_audit() is None


def keeper(store, clock, name: str, ttl_s: float = 60) -> LeaseKeeper:
    return LeaseKeeper(store, shard="0/1", ttl_s=ttl_s, clock=clock, metrics=Metrics(), holder=name)


def test_two_agents_of_one_shard_one_works_and_leads_the_other_waits_then_takes_over(store):
    clock = ManualClock(T0)
    a, b = keeper(store, clock, "a"), keeper(store, clock, "b")
    a.renew()
    b.renew()
    assert (a.working(), a.leading(), b.working(), b.leading()) == (True, True, False, False)
    assert b.held() == {"shard:0/1": "a", LEADER: "a"}
    clock.advance(61)  # a died: nothing renewed its leases
    b.renew()
    assert (b.working(), b.leading()) == (True, True)
    a.renew()  # a was only stalled: it learns it lost both and acts no more
    assert (a.working(), a.leading()) == (False, False)
    assert b.held() == {"shard:0/1": "b", LEADER: "b"}


def test_a_clean_stop_hands_the_leases_over_at_once(store):
    clock = ManualClock(T0)
    a, b = keeper(store, clock, "a"), keeper(store, clock, "b")
    a.start()
    b.renew()
    assert not b.working()
    a.stop()
    b.renew()
    assert (b.working(), b.leading()) == (True, True)


def test_a_lease_is_trusted_locally_only_a_share_of_its_time_to_live(store):
    clock = ManualClock(T0)
    a = LeaseKeeper(store, shard="0/1", ttl_s=10, clock=clock, metrics=Metrics(), holder="a",
                    monotonic=lambda: clock().timestamp())
    a.renew()
    clock.advance(7.9)
    assert (a.working(), a.leading()) == (True, True)
    clock.advance(0.2)  # no renewal: it stops acting 2 s before the store would free the lease
    assert (a.working(), a.leading()) == (False, False)
    assert store.holds_lease("shard:0/1", "a", now=clock())


def test_agents_of_different_shards_both_work_and_one_leads(store):
    clock = ManualClock(T0)
    a = LeaseKeeper(store, shard="0/2", ttl_s=60, clock=clock, metrics=Metrics(), holder="a")
    b = LeaseKeeper(store, shard="1/2", ttl_s=60, clock=clock, metrics=Metrics(), holder="b")
    a.renew()
    b.renew()
    assert (a.working(), a.leading(), b.working(), b.leading()) == (True, True, True, False)


def test_a_run_is_started_only_under_the_leader_lease_held_in_the_store(store):
    clock = ManualClock(T0)
    run = store.create_run(incident_id=None, rule="restart", rule_mode="auto", playbook="restart.yml",
                           playbook_sha256="0" * 64, mode=RunMode.APPLY, status=RunStatus.PENDING,
                           targets=["localhost"], extravars={}, now=clock())
    store.take_lease(LEADER, "b", ttl_s=10, now=clock())
    with pytest.raises(LeaseLostError, match="a no longer holds the leader lease"):
        store.update_run(run.id, RunStatus.RUNNING, now=clock(), lease=(LEADER, "a"))
    assert store.get_run(run.id).status is RunStatus.PENDING  # still due, for the leader
    assert store.update_run(run.id, RunStatus.RUNNING, now=clock(), lease=(LEADER, "b")).status is RunStatus.RUNNING


def test_a_run_owner_on_another_host_is_alive_while_it_holds_a_lease():
    me = holder_id()
    assert owner_alive(me)
    assert owner_alive(me.split("/", 1)[1])  # written before leases: pid:start of this host
    assert not owner_alive("999999999:1")
    other = "elsewhere.example/4242:17"
    assert not owner_alive(other)
    assert owner_alive(other, live_holders=lambda: [other])


def test_a_standby_is_healthy_and_its_cycles_are_expected_from_when_it_takes_over():
    config = parse_config("agent:\n  interval: 10s\n")
    clock = ManualClock(T0)
    health = Health()
    health.start(clock())
    health.wait()
    clock.advance(3600)
    assert health.check(config, now=clock()) == (True, "")
    health.work(clock())
    clock.advance(60)
    assert health.check(config, now=clock()) == (True, "")
    clock.advance(1)
    assert health.check(config, now=clock()) == (False, "the first cycle has not finished for 61s (limit 60s)")
