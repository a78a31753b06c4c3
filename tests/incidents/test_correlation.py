"""Correlation: window, shared labels, topology, repeats, flapping, N-of-M, root-cause guess."""

from __future__ import annotations

import pytest

from agent.flow.incidents import IncidentStatus
from agent.incidents.lifecycle import try_resolve
from tests.incidents.conftest import at, hit

TOPOLOGY = """
incidents:
  topology:
    depends_on:
      api: [db]
      web: [api]
    hosts:
      db-1: [db]
"""


@pytest.fixture
def store(any_store):
    """Correlation reads and writes incidents through the store: on both backends."""
    return any_store


def test_same_window_unrelated_labels_open_two_incidents(store, correlator_for):
    correlator = correlator_for()
    placed = correlator.ingest([hit("latency", 0, service="api"), hit("queue_depth", 1, service="billing")],
                               now=at(2))
    assert len(placed.opened) == 2
    titles = sorted(i.title for i in store.list_incidents())
    assert titles == ["latency 10.0x expected on service=api", "queue_depth 10.0x expected on service=billing"]


def test_shared_correlation_label_in_window_joins_one_incident(store, correlator_for):
    correlator = correlator_for()
    correlator.ingest([hit("latency", 0, service="api"), hit("errors", 3, service="api", route="/pay")], now=at(4))
    [incident] = store.list_incidents()
    assert [s.metric for s in incident.signals] == ["latency", "errors"]
    assert incident.title == "latency 10.0x expected on service=api (+1 more signal)"


def test_shared_label_outside_the_window_opens_a_new_incident(store, correlator_for):
    correlator = correlator_for("incidents:\n  window: 5m\n")
    correlator.ingest([hit("latency", 0, service="api")], now=at(1))
    correlator.ingest([hit("errors", 7, service="api")], now=at(8))
    assert len(store.list_incidents()) == 2


def test_linked_by_topology_is_one_incident_with_upstream_root_cause(store, correlator_for):
    correlator = correlator_for(TOPOLOGY)
    # web fires first, then the db it depends on through api: db is the root-cause guess.
    correlator.ingest([hit("http_5xx", 0, service="web"), hit("latency", 1, service="api"),
                       hit("disk_busy", 2, host="db-1:9100")], now=at(3))
    correlator.ingest([hit("replication_lag", 2.5, service="db")], now=at(4))
    [incident] = store.list_incidents()
    assert len(incident.signals) == 4
    assert incident.root_cause == 'disk_busy{host="db-1:9100"}'
    assert incident.root_cause_reason == ("host db-1 is upstream of service api, service db, service web in the "
                                          "topology; its signal first fired at 2026-03-02 12:02:00Z")
    assert incident.labels == {"host": "db-1:9100"}
    assert incident.started_at == at(0)


def test_without_topology_the_earliest_signal_is_the_guess(store, correlator_for):
    correlator = correlator_for()
    correlator.ingest([hit("errors", 2, service="api"), hit("latency", 1, service="api")], now=at(3))
    [incident] = store.list_incidents()
    assert incident.root_cause == 'latency{service="api"}'
    assert incident.root_cause_reason == ("the earliest signal (first fired at 2026-03-02 12:01:00Z); "
                                          "the topology places no other signal upstream of it")


def test_repeats_of_one_series_and_detector_update_never_open(store, correlator_for):
    correlator = correlator_for("incidents:\n  window: 5m\n")
    for minute in (0, 1, 30, 90):  # far outside the window: still the same open incident
        correlator.ingest([hit("latency", minute, service="api", score=minute + 1)], now=at(minute))
    [incident] = store.list_incidents()
    [signal] = incident.signals
    assert (signal.hits, signal.first_at, signal.last_at, signal.peak_score) == (4, at(0), at(90), 91.0)
    kinds = [e.kind for e in store.incident_events(incident.id)]
    assert kinds == ["opened"]


def test_recurrence_within_flap_window_reopens_flapping_not_new(store, correlator_for):
    correlator = correlator_for("incidents:\n  flap_window: 30m\n")
    [first] = correlator.ingest([hit("latency", 0, service="api")], now=at(0)).opened
    assert try_resolve(store, first, now=at(10), reason="quiet")
    placed = correlator.ingest([hit("latency", 20, service="api")], now=at(20))
    assert placed.opened == [] and placed.touched == {first}
    incident = store.get_incident(first)
    assert (incident.status, incident.flapping, incident.reopened) == (IncidentStatus.OPEN, True, 1)
    reopened = store.incident_events(first)[-1]
    assert reopened.kind == "reopened"
    assert reopened.details == {"episode": 2, "flapping": True, "from": "resolved", "reason":
                                'recurred within the flap window: latency', "severity": "warning", "to": "open"}
    assert [e.kind for e in store.incident_events(first)].count("opened") == 1
    one, two = incident.episodes
    assert (one.number, one.started_at, one.detected_at, one.resolved_at, one.flapping) == (1, at(0), at(0), at(10), False)
    assert (two.number, two.started_at, two.detected_at, two.resolved_at, two.flapping) == (2, at(20), at(20), None, True)


def test_recurrence_after_the_flap_window_opens_a_new_incident(store, correlator_for):
    correlator = correlator_for("incidents:\n  flap_window: 30m\n")
    [first] = correlator.ingest([hit("latency", 0, service="api")], now=at(0)).opened
    try_resolve(store, first, now=at(10), reason="quiet")
    placed = correlator.ingest([hit("latency", 45, service="api")], now=at(45))
    assert len(placed.opened) == 1 and placed.opened[0] != first


def test_n_of_m_opens_only_once_it_persists(store, correlator_for):
    correlator = correlator_for("""
incidents:
  persistence:
    - labels: {service: "batch-.*"}
      hits: 3
      cycles: 4
""")
    # interval is 60 s: fires in cycles 0, 1 (pending), skips 2, fires in 3: 3 of the last 4.
    assert correlator.ingest([hit("runtime", 0, service="batch-etl")], now=at(0)).pending == 1
    assert correlator.ingest([hit("runtime", 1, service="batch-etl")], now=at(1)).pending == 1
    assert store.list_incidents() == []
    placed = correlator.ingest([hit("runtime", 3, service="batch-etl")], now=at(3))
    assert len(placed.opened) == 1
    incident = store.get_incident(placed.opened[0])
    assert incident.started_at == at(0)  # the hits that waited count for the start
    assert store.query_one("SELECT count(*) FROM hits WHERE incident_id = ?", (incident.id,))[0] == 3
    # a series the rule does not cover opens at once
    assert len(correlator.ingest([hit("runtime", 3, service="api")], now=at(3)).opened) == 1


def test_n_of_m_scattered_hits_never_open(store, correlator_for):
    correlator = correlator_for("""
incidents:
  persistence:
    - labels: {}
      hits: 2
      cycles: 2
""")
    for minute in (0, 2, 4, 6):
        correlator.ingest([hit("cpu", minute, instance="n1:9100")], now=at(minute))
    assert store.list_incidents() == []


def test_severity_rules_and_escalation(store, correlator_for):
    correlator = correlator_for("""
incidents:
  severity:
    default: info
    rules:
      - labels: {route: "/pay"}
        min_score: 4
        severity: critical
""")
    correlator.ingest([hit("latency", 0, service="api")], now=at(0))
    correlator.ingest([hit("errors", 1, service="api", route="/pay", score=9)], now=at(1))
    [incident] = store.list_incidents()
    assert incident.severity.value == "critical"
    escalated = [e for e in store.incident_events(incident.id) if e.kind == "escalated"]
    assert [e.message for e in escalated] == ["severity info → critical: errors (seasonal) is critical"]
    assert escalated[0].details["severity"] == "critical"


def test_a_batch_is_all_or_nothing(store, correlator_for):
    correlator = correlator_for()
    bad = hit("latency", 0, service="api")
    object.__setattr__(bad, "labels", {"service": "api", 1: "not a label name"})  # cannot be stored
    with pytest.raises(TypeError):
        correlator.ingest([hit("errors", 0, service="billing"), bad], now=at(1))
    assert store.list_incidents() == []
    assert store.query_one("SELECT count(*) FROM hits")[0] == 0
    assert store.query_one("SELECT count(*) FROM audit")[0] == 0


def test_signals_that_fired_together_rank_by_score(store, correlator_for):
    correlator = correlator_for()
    correlator.ingest([hit("errors", 1, service="api", score=6), hit("latency", 1, service="api", score=9)],
                      now=at(2))
    [incident] = store.list_incidents()
    assert incident.root_cause == 'latency{service="api"}'


def test_a_weak_lone_forecast_hit_waits_for_a_second_series(store, correlator_for):
    # a corroboration rule (none by default): forecast hits wait for 2 series, alone at 0.6
    correlator = correlator_for("incidents:\n  corroboration:\n    - detector: forecast\n      series: 2\n"
                                "      alone_score: 0.6\n      within: 5m\n")
    first = correlator.ingest([hit("latency", 0, detector="forecast", score=0.53, service="api", instance="a")],
                              now=at(1))
    assert (first.opened, first.pending, store.list_incidents()) == ([], 1, [])
    # another series of the same service, within the window: one incident holds both
    second = correlator.ingest([hit("errors", 4, detector="forecast", score=0.55, service="api", instance="b")],
                               now=at(5))
    [incident] = store.list_incidents()
    assert second.opened == [incident.id]
    assert sorted(s.metric for s in incident.signals) == ["errors", "latency"]
    assert incident.started_at == at(0)
    # a lone weak hit of an unrelated service never opens anything, nor do two of one service
    # that fire more than `within` (5 min) apart
    correlator.ingest([hit("queue_depth", 6, detector="forecast", score=0.55, service="billing")], now=at(7))
    correlator.ingest([hit("queue_depth", 30, detector="forecast", score=0.55, service="search")], now=at(31))
    correlator.ingest([hit("cpu", 36, detector="forecast", score=0.55, service="search", instance="c")], now=at(37))
    assert len(store.list_incidents()) == 1


def test_a_strong_lone_hit_or_another_detector_opens_at_once(store, correlator_for):
    correlator = correlator_for()
    strong = correlator.ingest([hit("latency", 0, detector="forecast", score=0.61, service="api")], now=at(1))
    threshold = correlator.ingest([hit("p95", 0, detector="slo_p95", score=0.2, service="billing")], now=at(1))
    assert len(strong.opened) == len(threshold.opened) == 1
    # the rule is configurable: three series, no score strong enough alone
    strict = correlator_for("incidents:\n  corroboration:\n    - {detector: forecast, series: 3}\n")
    for minutes, instance in ((10, "a"), (11, "b")):
        strict.ingest([hit("cpu", minutes, detector="forecast", score=0.99, service="db", instance=instance)],
                      now=at(minutes + 1))
    assert len(store.list_incidents()) == 2
    strict.ingest([hit("cpu", 12, detector="forecast", score=0.5, service="db", instance="c")], now=at(13))
    assert len(store.list_incidents()) == 3
    assert len(store.list_incidents()[0].signals) == 3
