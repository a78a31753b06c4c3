"""Leases on one store: one holder at a time, a takeover only after expiry by the store's clock
(never an agent's own), a release hands over at once, a lone holder keeps its lease through a
busy store, and a playbook run is started only under the leader lease (checked in the store)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from agent.clock import ManualClock, ManualMonotonic
from agent.config import parse_config
from agent.context import Health
from agent.errors import LeaseLostError
from agent.flow.leases import LEADER, holder_id
from agent.flow.runs import RunMode, RunStatus
from agent.leases import LeaseKeeper
from agent.metrics import Metrics
from agent.store import Store
from agent.store.sessions import SessionLimits
from remediations.engine import owner_alive
from tests.conftest import wait_until

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


class StoreTime:
    """The store's clock and a monotonic clock that follows it. On SQLite both are injected (the
    store's clock is the host's); PostgreSQL's is the server's own, so there ``advance`` waits
    for real seconds to pass: tests keep their times to live short."""

    def __init__(self, store_url: str, tmp_path) -> None:
        self.postgresql = store_url.startswith("postgresql")
        self.epoch = ManualMonotonic(T0.timestamp())
        self.limits = SessionLimits(lock_timeout_s=0.3)
        if self.postgresql:
            self.store = Store(store_url, sessions=self.limits)
        else:
            self.store = quick_to_give_up(Store(store_url, host_clock=self.epoch))
        self.url = store_url

    def monotonic(self) -> float:
        return time.monotonic() if self.postgresql else self.epoch()

    def advance(self, seconds: float) -> None:
        if not self.postgresql:
            self.epoch.advance(seconds)
            return
        until = self.store.store_now() + seconds
        wait_until(lambda: self.store.store_now() >= until, seconds + 5, interval_s=0.02,
                   message=f"{seconds}s of the server's clock")

    def other_store(self) -> Store:
        """A second agent's view of the same store."""
        if self.postgresql:
            return Store(self.url, sessions=self.limits)
        return quick_to_give_up(Store(self.url, host_clock=self.epoch))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Another process holds the store's write lock (SQLite) or the leases' lock (PostgreSQL)
        for as long as the block runs: asking for a lease fails with the store's error."""
        if self.postgresql:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(hashtext('leases'))")
                yield
            return
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def quick_to_give_up(store: Store) -> Store:
    """A SQLite store whose busy timeout is 0.3 s: a locked file answers "busy" within the test."""
    store.BUSY_TIMEOUT_MS = 300
    store.close()  # the next statement connects with it
    return store


@pytest.fixture
def st(store_url, tmp_path) -> Iterator[StoreTime]:
    """Leases work alike on both backends: SQLite and a real PostgreSQL."""
    made = StoreTime(store_url, tmp_path)
    yield made
    made.store.dispose()


def test_a_lease_has_one_holder_until_it_expires_by_the_stores_clock_and_every_change_is_audited(st):
    store = st.store
    ttl = 10 if not st.postgresql else 1.0
    assert store.leases.take("shard:0/1", "a", ttl_s=ttl, now=T0)
    assert not store.leases.take("shard:0/1", "b", ttl_s=ttl, now=T0)
    st.advance(ttl * 0.5)
    assert store.leases.take("shard:0/1", "a", ttl_s=ttl, now=T0)  # renewed: from now
    st.advance(ttl * 0.7)
    assert not store.leases.take("shard:0/1", "b", ttl_s=ttl, now=T0)
    assert store.leases.holds("shard:0/1", "a") and not store.leases.holds("shard:0/1", "b")
    st.advance(ttl * 0.35)
    assert not store.leases.holds("shard:0/1", "a")
    assert store.leases.take("shard:0/1", "b", ttl_s=ttl, now=T0)
    assert not store.leases.release("shard:0/1", "a", now=T0)  # not a's to give
    assert store.leases.release("shard:0/1", "b", now=T0)
    assert store.leases.all() == []
    taken = [(e.actor, e.action, e.details.get("from")) for e in store.audit_entries() if e.action.startswith("lease.")]
    assert taken == [("a", "lease.taken", None), ("b", "lease.taken", "a"), ("b", "lease.released", None)]
    assert store.verify_audit() is None


def test_an_agent_whose_clock_runs_two_hours_ahead_neither_takes_a_live_lease_nor_writes_one_into_the_future(st):
    store = st.store
    assert store.leases.take("shard:0/1", "healthy", ttl_s=60, now=T0)
    ahead = T0 + timedelta(hours=2)  # what the skewed agent believes "now" is
    assert not store.leases.take("shard:0/1", "skewed", ttl_s=60, now=ahead)
    assert store.leases.holds("shard:0/1", "healthy")
    (lease,) = store.leases.all()
    assert lease.holder == "healthy" and lease.waiter == "skewed"
    # The skewed agent's own lease expires by the store's clock, not two hours later.
    assert store.leases.take("shard:1/2", "skewed", ttl_s=1, now=ahead)
    (_, mine) = store.leases.all()
    assert (mine.expires_at - mine.read_at).total_seconds() <= 1


def keeper(st: StoreTime, name: str, *, ttl_s: float, store: Store | None = None,
           shard: str = "0/1") -> LeaseKeeper:
    # The agent's wall clock is hours off on purpose: only records are dated by it.
    return LeaseKeeper(store or st.store, shard=shard, ttl_s=ttl_s, clock=ManualClock(T0 + timedelta(hours=5)),
                       metrics=Metrics(), holder=name, monotonic=st.monotonic)


def test_two_agents_of_one_shard_one_works_and_leads_the_other_waits_then_takes_over(st):
    ttl = 60 if not st.postgresql else 1.0
    a, b = keeper(st, "a", ttl_s=ttl), keeper(st, "b", ttl_s=ttl)
    a.renew()
    b.renew()
    assert (a.working(), a.leading(), b.working(), b.leading()) == (True, True, False, False)
    assert b.held() == {"shard:0/1": "a", LEADER: "a"}
    st.advance(ttl * 1.05)  # a died: nothing renewed its leases
    b.renew()
    assert (b.working(), b.leading()) == (True, True)
    a.renew()  # a was only stalled: it learns it lost both and acts no more
    assert (a.working(), a.leading()) == (False, False)
    assert b.held() == {"shard:0/1": "b", LEADER: "b"}


def test_a_clean_stop_hands_the_leases_over_at_once(st):
    a, b = keeper(st, "a", ttl_s=60), keeper(st, "b", ttl_s=60)
    a.start()
    b.renew()
    assert not b.working()
    a.stop()
    b.renew()
    assert (b.working(), b.leading()) == (True, True)


def test_a_lease_is_trusted_locally_only_a_share_of_its_time_to_live(st):
    ttl = 10 if not st.postgresql else 3.0
    a = keeper(st, "a", ttl_s=ttl)
    a.renew()
    st.advance(ttl * 0.75)
    assert (a.working(), a.leading()) == (True, True)
    st.advance(ttl * 0.1)  # no renewal: it stops acting before the store would free the lease
    assert (a.working(), a.leading()) == (False, False)
    assert st.store.leases.holds("shard:0/1", "a")


def test_a_lone_agent_keeps_working_while_its_renewals_fail_on_a_busy_store(st):
    ttl = 10 if not st.postgresql else 1.0
    a = keeper(st, "a", ttl_s=ttl)
    a.renew()
    with st.locked():
        for _ in range(4):  # four renewal periods; past its trusted share and its time to live
            st.advance(ttl * 0.3)
            a.renew()
            assert (a.working(), a.leading()) == (True, True)
    assert a.metrics.registry.get_sample_value("aiops_lease_failures_total") >= 4
    a.renew()  # the store answers again: the lease is still its own (nobody else asked)
    assert (a.working(), a.leading()) == (True, True)
    assert st.store.leases.holds("shard:0/1", "a")


def test_a_holder_that_another_agent_waits_for_stops_trusting_failed_renewals(st):
    ttl = 10 if not st.postgresql else 3.0
    other = st.other_store()
    try:
        a, b = keeper(st, "a", ttl_s=ttl), keeper(st, "b", ttl_s=ttl, store=other)
        a.renew()
        b.renew()  # refused: the store notes that b waits
        a.renew()  # a reads that it is not alone
        with st.locked():
            st.advance(ttl * 0.5)
            a.renew()
            assert a.working()
            st.advance(ttl * 0.4)
            a.renew()
            assert (a.working(), a.leading()) == (False, False)
        st.advance(ttl * 0.2)
        b.renew()
        assert (b.working(), b.leading()) == (True, True)
    finally:
        other.dispose()


def test_agents_of_different_shards_both_work_and_one_leads(st):
    a = keeper(st, "a", ttl_s=60, shard="0/2")
    b = keeper(st, "b", ttl_s=60, shard="1/2")
    a.renew()
    b.renew()
    assert (a.working(), a.leading(), b.working(), b.leading()) == (True, True, True, False)


def test_a_run_is_started_only_under_the_leader_lease_held_in_the_store(st):
    store = st.store
    run = store.create_run(incident_id=None, rule="restart", rule_mode="auto", playbook="restart.yml",
                           playbook_sha256="0" * 64, mode=RunMode.APPLY, status=RunStatus.PENDING,
                           targets=["localhost"], extravars={}, now=T0)
    store.leases.take(LEADER, "b", ttl_s=10, now=T0)
    with pytest.raises(LeaseLostError, match="a no longer holds the leader lease"):
        store.update_run(run.id, RunStatus.RUNNING, now=T0, lease=(LEADER, "a"))
    assert store.get_run(run.id).status is RunStatus.PENDING  # still due, for the leader
    assert store.update_run(run.id, RunStatus.RUNNING, now=T0, lease=(LEADER, "b")).status is RunStatus.RUNNING


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
    clock = ManualMonotonic(100.0)
    health = Health()
    health.start(clock())
    health.wait()
    clock.advance(3600)
    assert health.check(config, at=clock()) == (True, "")
    health.work(clock())
    clock.advance(60)
    assert health.check(config, at=clock()) == (True, "")
    clock.advance(1)
    assert health.check(config, at=clock()) == (False, "the first cycle has not finished for 61s (limit 60s)")
