"""On both backends: a signal keeps the figures of its peak hit and the words of its earliest start;
dashboards read incidents' marks; Alertmanager channels read and record what they pushed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from agent.flow.incidents import IncidentStatus, Severity
from agent.store.pushed import Pushed
from detectors.base import Direction, Hit

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def latency(seconds: float, value: float, score: float, onset: str = "") -> Hit:
    return Hit(series_id="latency", detector="seasonal", ts=at(seconds), value=value, score=score,
               direction=Direction.UP, expected=0.1, lower=0.05, upper=0.15, metric="latency_p95",
               labels={"job": "api"}, began_at=at(seconds - 5) if onset else None, onset=onset)


def test_a_signal_keeps_its_peak_and_its_earliest_start(store):
    incident = store.open_incident(severity=Severity.WARNING, title="t", labels={"job": "api"}, started_at=at(-5),
                                   now=at(0))
    store.record_hits([latency(0, 0.8, 50.0, "midway before 12:00:00")], incident_id=incident.id, now=at(0))
    store.record_repeats([(incident.id, latency(10, 0.9, 60.0)), (incident.id, latency(20, 0.3, 10.0))], now=at(20))
    store.record_hits([replace(latency(30, 0.2, 5.0, "an earlier start"), began_at=at(-30))],
                      incident_id=incident.id, now=at(30))
    [signal] = store.incident_signals(incident.id)
    assert (signal.peak_at, signal.peak_value, signal.peak_score) == (at(10), 0.9, 60.0)
    assert (signal.peak_expected, signal.peak_lower, signal.peak_upper) == (0.1, 0.05, 0.15)
    assert (signal.last_value, signal.hits) == (0.2, 4)
    assert (signal.first_at, signal.onset) == (at(-30), "an earlier start")
    assert store.onset_at(incident.id, at(-5)) == "midway before 12:00:00"


def test_repeats_on_several_incidents_move_each_ones_last_signal_and_they_load_together(store):
    incidents = [store.open_incident(severity=Severity.WARNING, title=f"t{k}", labels={"job": f"api{k}"},
                                     started_at=at(-5), now=at(0)) for k in range(3)]
    for incident in incidents:
        store.record_hits([latency(0, 0.8, 50.0)], incident_id=incident.id, now=at(0))
    first, second, third = (i.id for i in incidents)
    # the second's latest hit is older than what it already holds: its last signal stays put
    store.update_incident(second, quiet_cycles=2, now=at(0))
    store.record_repeats([(first, latency(10, 0.9, 60.0)), (first, latency(40, 0.3, 10.0)),
                          (second, latency(-20, 0.5, 20.0)), (third, latency(25, 0.4, 15.0))], now=at(40))
    loaded = store.get_incidents([third, 999, first, second, first])
    assert [i.id for i in loaded] == [third, first, second]  # the order asked, missing and twice left out
    assert [i.last_signal_at for i in loaded] == [at(25), at(40), at(0)]
    assert all(i.quiet_cycles == 0 and i.updated_at == at(40) for i in loaded)
    assert loaded == [store.get_incident(i) for i in (third, first, second)]
    assert store.get_incidents([]) == []


def test_marks_and_pushed_alerts(store):
    first = store.open_incident(severity=Severity.WARNING, title="a", labels={"job": "api"}, started_at=at(0),
                                now=at(10))
    second = store.open_incident(severity=Severity.CRITICAL, title="b", labels={"job": "db"}, started_at=at(5),
                                 now=at(10))
    store.transition_incident(first.id, IncidentStatus.RESOLVED, actor="agent", reason="quiet", now=at(60),
                              resolution="quiet")
    marks = store.incident_marks(resolved_since=at(30), limit=10)
    assert [(m.id, m.status, m.started_at, m.resolved_at) for m in marks] == [
        (second.id, IncidentStatus.OPEN, at(5), None), (first.id, IncidentStatus.RESOLVED, at(0), at(60))]
    assert store.incident_marks(resolved_since=at(61), limit=10)[0].id == second.id

    store.pushed.record("am", [(first.id, Pushed(labels={"job": "api"}, episode=1, pushed_at=at(20), resolved=False))])
    states = {s.incident_id: s for s in store.pushed.states("am")}
    assert set(states) == {first.id, second.id}  # resolved but still firing there, and open
    assert states[first.id].pushed == Pushed(labels={"job": "api"}, episode=1, pushed_at=at(20), resolved=False)
    assert states[second.id].pushed is None and states[second.id].started_at == at(5)
    store.pushed.record("am", [(first.id, Pushed(labels={"job": "api"}, episode=1, pushed_at=at(61), resolved=True))])
    assert [s.incident_id for s in store.pushed.states("am")] == [second.id]
    assert store.pushed.get("am", first.id).resolved
