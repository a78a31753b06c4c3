"""The root-cause line says why: the topology, the signal that moved first, a change before the
outage, with the evidence; ``unknown`` and what is missing when there is none."""

from __future__ import annotations

from agent.flow.samples import Samples
from agent.incidents.catalog import catalog_of
from agent.incidents.cause import root_cause_line
from agent.incidents.correlator import Correlator
from agent.incidents.onset import with_onsets
from agent.incidents.summary import build
from tests.incidents.conftest import at, hit

TOPOLOGY = """
incidents:
  topology:
    depends_on: {checkout: [db], api: [checkout]}
"""


def incident_of(store, config, hits_by_minute):
    correlator = Correlator(store, config.incidents, interval_s=60)
    opened = []
    for minute, hits in hits_by_minute:
        opened += correlator.ingest(with_onsets(hits, Samples.empty(), interval_s=60), now=at(minute)).opened
    return opened[0]


def test_the_topology_names_the_service_everything_else_needs(store, make_config):
    config = make_config(TOPOLOGY)
    incident_id = incident_of(store, config, [
        (0, [hit("http_errors_ratio", 0, service="api", value=0.3, expected=0.01)]),
        (1, [hit("checkout_latency_seconds", 1, service="checkout"), hit("db_latency_seconds", 1, service="db")])])
    line = root_cause_line(build(store, incident_id, catalog=catalog_of(config)))
    assert line == ("service db: service db is upstream of service api, service checkout in the topology; "
                    "http_errors_ratio moved first, at 11:59:30, 1m 00s before checkout_latency_seconds")


def test_the_first_mover_when_nothing_else_is_known(store, make_config):
    config = make_config("")
    incident_id = incident_of(store, config, [
        (0, [hit("node_disk_io_time_seconds_total", 0, instance="db-1", service="db")]),
        (2, [hit("pg_locks_count", 2, instance="db-1", service="db")])])
    assert root_cause_line(build(store, incident_id, catalog=catalog_of(config))) == (
        "node_disk_io_time_seconds_total on service=db, instance=db-1: node_disk_io_time_seconds_total moved first, "
        "at 11:59:30, 2m 00s before pg_locks_count")


def test_unknown_says_what_is_missing(store, make_config):
    config = make_config(TOPOLOGY)
    incident_id = incident_of(store, config, [(0, [hit("latency_p95", 0, job="demo-model")])])
    assert root_cause_line(build(store, incident_id, catalog=catalog_of(config))) == (
        "unknown: one signal, no change before it, nothing upstream of it in the topology")
