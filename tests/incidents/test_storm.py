"""A cycle whose hits would open more incidents than ``incidents.max_new_per_cycle``: the rest go
into one storm incident, paged once (real store, real webhook receiver)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.config.remediation import Rule
from agent.context import Context
from agent.flow.detection import Detection
from agent.flow.incidents import IncidentStatus
from agent.incidents import correlate
from agent.incidents.correlator import Correlator
from agent.notify import notify
from remediations.rules import matches
from tests.incidents.conftest import at, hit

STORM_TITLE = "Incident storm: more than 3 new incidents in one cycle"


@pytest.fixture
def storm_ctx(make_config, tmp_path, webhook) -> Iterator[Context]:
    config = make_config(f"""
incidents:
  max_new_per_cycle: 3
notify:
  channels:
    pager:
      type: webhook
      webhook_url: {webhook.url()}
  routes:
    - channels: [pager]
""")
    ctx = Context.create(config, tmp_path / "state")
    yield ctx
    ctx.store.close()


def cycle(minutes: float, hosts: range) -> Detection:
    return Detection(at=at(minutes), hits=[hit("node_load1", minutes, instance=f"host{i:04d}") for i in hosts])


def test_past_the_cap_one_storm_incident_takes_the_rest_and_pages_once(storm_ctx: Context, webhook):
    ctx = storm_ctx
    first = cycle(0, range(40))
    incidents = correlate(ctx, first)
    notify(ctx, first.at)
    opened = [b for b in webhook.bodies() if b["event"] == "opened"]
    assert len(opened) == 4
    assert [b["title"] for b in opened].count(f"{STORM_TITLE} (37 signals held here)") == 1
    [storm] = [i for i in incidents if i.title == STORM_TITLE]
    assert storm.labels == {"aiops_storm": "true"}
    assert len(storm.signals) == 37
    assert ctx.store.count_open_incidents() == 4
    assert ctx.metrics.registry.get_sample_value("aiops_incidents_opened_total") == 4.0
    # A catch-all remediation rule (the usual cause of a storm) must not act on all its hosts.
    catch_all = Rule(name="restart-anything", playbook="restart_service.yml")
    assert [matches(catch_all, i) for i in incidents if i.id != storm.id] == [True, True, True]
    assert matches(catch_all, storm) is False

    # The same series again, and 40 new ones: repeats stay where they are; the new ones open
    # three incidents and join the storm still open, which is not paged again.
    second = cycle(1, range(80))
    correlate(ctx, second)
    notify(ctx, second.at)
    opened = [b for b in webhook.bodies() if b["event"] == "opened"]
    assert len(opened) == 7
    assert [b["title"].startswith(STORM_TITLE) for b in opened].count(True) == 1
    again = ctx.store.get_incident(storm.id)
    assert (again.status, len(again.signals)) == (IncidentStatus.OPEN, 74)
    assert ctx.store.count_open_incidents() == 7


def test_under_the_cap_nothing_changes(storm_ctx: Context, webhook):
    ctx = storm_ctx
    c = cycle(0, range(3))
    incidents = correlate(ctx, c)
    notify(ctx, c.at)
    assert sorted(b["title"] for b in webhook.bodies()) == [
        f"node_load1 10.0x expected on instance=host000{i}" for i in range(3)]
    assert STORM_TITLE not in [i.title for i in incidents]
    assert ctx.store.count_open_incidents() == 3


def test_a_batch_without_a_cap_opens_every_incident(storm_ctx: Context):
    # Alertmanager's webhook batches go through the correlator without max_new: grouped already.
    correlator = Correlator(storm_ctx.store, storm_ctx.config.incidents, interval_s=60)
    placed = correlator.ingest(cycle(0, range(10)).hits, now=at(0))
    assert (len(placed.opened), placed.storm) == (10, None)
    assert storm_ctx.store.count_open_incidents() == 10


def test_a_storm_label_from_outside_makes_no_storm(storm_ctx: Context, webhook):
    # Label values are untrusted: an exporter or an alert cannot mark its incident as a storm
    # (which would keep it from remediation and retitle its page).
    c = Detection(at=at(0), hits=[hit("node_load1", 0, instance="host0001", aiops_storm="true")])
    [incident] = correlate(storm_ctx, c)
    assert incident.labels == {"instance": "host0001"}
    assert matches(Rule(name="restart-anything", playbook="restart_service.yml"), incident) is True
    notify(storm_ctx, c.at)
    assert [b["title"] for b in webhook.bodies()] == ["node_load1 10.0x expected on instance=host0001"]


def test_a_resolved_storm_that_recurs_keeps_its_title_labels_and_key(storm_ctx: Context):
    first = cycle(0, range(10))
    [storm] = [i for i in correlate(storm_ctx, first) if i.labels == {"aiops_storm": "true"}]
    storm_ctx.store.transition_incident(storm.id, IncidentStatus.RESOLVED, actor="test", now=at(1), reason="quiet")
    # One of its series fires again, earlier than the storm began (a catch-up): it reopens the
    # storm, which keeps what makes it one.
    again = Detection(at=at(2), hits=[hit("node_load1", -5, instance="host0009")])
    correlate(storm_ctx, again)
    reopened = storm_ctx.store.get_incident(storm.id)
    assert (reopened.status, reopened.title, reopened.labels) == (IncidentStatus.OPEN, STORM_TITLE,
                                                                  {"aiops_storm": "true"})
    later = cycle(3, range(100, 110))  # a new burst joins it, no second storm
    correlate(storm_ctx, later)
    assert [i for i, _ in storm_ctx.store.incidents_with_keys(["aiops:storm"], active_since=at(0))] == [storm.id]
