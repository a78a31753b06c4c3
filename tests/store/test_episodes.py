"""Episodes: each outage of an incident with its own times, and stores from before they existed."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.flow.incidents import IncidentStatus, Severity
from agent.store import Store

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)
# Written by the agent's store API before episodes existed (commit f240b2b), at T0:
# #1 one outage, acknowledged by alice, remediated and verified; #2 three outages (two flapping
# reopens, the second acknowledged by bob and resolved by hand, the third still open); #3 open.
OLD_STORE = Path(__file__).resolve().parent.parent / "fixtures" / "stores" / "main-f240b2b.sqlite"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("incidents", "incident_events", "incident_signals", "hits", "audit")}
    finally:
        conn.close()


def times(episode):
    return (episode.number, episode.started_at, episode.detected_at, episode.acknowledged_at,
            episode.acknowledged_by, episode.remediation_started_at, episode.remediation_verified_at,
            episode.resolved_at, episode.resolution, episode.flapping)


def test_a_store_from_before_episodes_gets_each_outage_as_an_episode_and_loses_nothing(tmp_path):
    path = tmp_path / "aiops.db"
    shutil.copy(OLD_STORE, path)
    before = counts(path)
    store = Store(path)
    try:
        assert 31 in {r[0] for r in store.query("SELECT number FROM migrations")}
        one, two, three = (store.get_incident(i) for i in (1, 2, 3))
        assert [times(e) for e in one.episodes] == [
            (1, at(0), at(20), at(80), "alice", at(90), at(150), at(160), "remediation", False)]
        assert [times(e) for e in two.episodes] == [
            (1, at(1000), at(1030), None, None, None, None, at(1200), "quiet", False),
            (2, at(1290), at(1300), at(1360), "bob", None, None, at(1500), "manual", True),
            (3, at(1700), at(1710), None, None, None, None, None, None, True)]
        assert [times(e) for e in three.episodes] == [
            (1, at(5000), at(5060), None, None, None, None, None, None, False)]
        assert [(e.mttd_s, e.mtta_s, e.mttr_s) for e in two.episodes] == [
            (30.0, None, 200.0), (10.0, 60.0, 210.0), (10.0, None, None)]
        # The incident row keeps its first outage's start and its current outage's state.
        assert (two.started_at, two.detected_at, two.status, two.reopened) == (at(1000), at(1030), IncidentStatus.OPEN, 2)
        assert store.verify_audit() is None
    finally:
        store.close()
    assert counts(path) == before


def test_a_reopen_starts_an_episode_that_owns_its_own_acknowledgement_and_remediation(store):
    incident = store.open_incident(severity=Severity.CRITICAL, title="latency up", labels={"service": "api"},
                                   started_at=at(0), now=at(15), keys=["service=api"])
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="alice", reason="", now=at(40))
    store.set_remediation_times(incident.id, started_at=at(50), actor="agent", now=at(50))
    store.set_remediation_times(incident.id, verified_at=at(110), actor="agent", now=at(110))
    store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="agent", reason="quiet",
                              resolution="remediation", now=at(120))
    assert store.remediation_outcome(incident.id) == (True, True)

    # The recurrence's first anomalous point is reported before the last outage ended: what came
    # before the resolution belongs to that outage, so the new episode starts at it.
    reopened = store.transition_incident(incident.id, IncidentStatus.OPEN, actor="agent", reason="recurred",
                                         now=at(200), flapping=True, started_at=at(100))
    assert store.remediation_outcome(incident.id) == (False, False)
    assert (reopened.acknowledged_at, reopened.remediation_started_at, reopened.remediation_verified_at) == (
        None, None, None)
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="bob", reason="", now=at(230))
    store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="bob", reason="fixed", now=at(300))
    first, second = store.get_incident(incident.id).episodes
    assert times(first) == (1, at(0), at(15), at(40), "alice", at(50), at(110), at(120), "remediation", False)
    assert times(second) == (2, at(120), at(200), at(230), "bob", None, None, at(300), "manual", True)


def test_a_signal_that_began_earlier_moves_the_first_episode_start(store):
    incident = store.open_incident(severity=Severity.WARNING, title="drift", labels={"model": "fraud"},
                                   started_at=at(60), now=at(80))
    store.update_incident(incident.id, now=at(90), started_at=at(30))
    [episode] = store.get_incident(incident.id).episodes
    assert (episode.started_at, episode.mttd_s) == (at(30), 50.0)
