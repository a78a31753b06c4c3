"""Lifecycle: transitions and refusals, quiet-cycle auto-resolve, gaps, remediation verification,
and the correlate stage as the pipeline calls it."""

from __future__ import annotations

import pandas as pd
import pytest

from agent.context import Context
from agent.errors import TransitionError
from agent.flow.detection import Detection
from agent.flow.incidents import IncidentStatus, Severity
from agent.flow.runs import RunMode, RunStatus
from agent.flow.samples import Samples
from agent.incidents import correlate
from agent.store.incidents import UnknownIncidentError
from tests.incidents.conftest import T0, at, hit

API_LATENCY = 'latency{service="api"}'


def frame(*present: str, gaps: tuple[str, ...] = ()) -> Samples:
    index = pd.date_range(T0, periods=3, freq="1min", tz="UTC", name="ts")
    values = pd.DataFrame({sid: [1.0, 1.0, 1.0] for sid in present}, index=index, dtype="float64")
    return Samples(values=values, series={}, gaps=frozenset(gaps))


@pytest.fixture
def ctx(make_config, tmp_path):
    context = Context.create(make_config("incidents:\n  quiet_cycles: 3\n"), tmp_path / "state")
    yield context
    context.store.close()


def cycle(ctx, minute, hits=(), samples=None):
    seen = Detection(at=at(minute), hits=list(hits), samples=samples if samples is not None else frame())
    return correlate(ctx, seen)


def opened(store):
    return store.open_incident(severity=Severity.WARNING, title="latency high", labels={"service": "api"},
                               started_at=at(0), now=at(1))


def test_transitions_write_events_and_audit_with_actor(store):
    incident = opened(store)
    store.transition_incident(incident.id, IncidentStatus.ACKNOWLEDGED, actor="cli:alice", reason="on it", now=at(2))
    store.transition_incident(incident.id, IncidentStatus.REMEDIATING, actor="agent", reason="rule restart", now=at(3))
    done = store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="api", reason="fixed", now=at(4),
                                     resolution="manual")
    assert (done.acknowledged_at, done.acknowledged_by) == (at(2), "cli:alice")
    assert (done.remediation_started_at, done.resolved_at, done.resolved_by, done.resolution) == (
        at(3), at(4), "api", "manual")
    events = store.incident_events(incident.id)
    assert [(e.kind, e.actor, e.message) for e in events] == [
        ("opened", "agent", "opened: latency high"),
        ("acknowledged", "cli:alice", "open → acknowledged: on it"),
        ("remediating", "agent", "acknowledged → remediating: rule restart"),
        ("resolved", "api", "remediating → resolved: fixed"),
    ]
    assert all(e.details["severity"] == "warning" for e in events)
    audit = [(a.actor, a.action, a.subject) for a in store.audit_entries()]
    assert audit == [("agent", "incident.open", "incident:1"), ("cli:alice", "incident.acknowledged", "incident:1"),
                     ("agent", "incident.remediating", "incident:1"), ("api", "incident.resolved", "incident:1")]
    assert store.verify_audit() is None


@pytest.mark.parametrize(("moves", "refused", "message"), [
    ([IncidentStatus.RESOLVED], IncidentStatus.ACKNOWLEDGED,
     "incident #1 is resolved, cannot move to acknowledged: from resolved it can move to open"),
    ([IncidentStatus.ACKNOWLEDGED], IncidentStatus.ACKNOWLEDGED,
     "incident #1 is acknowledged, cannot move to acknowledged: it already is"),
    ([IncidentStatus.ACKNOWLEDGED], IncidentStatus.OPEN,
     "incident #1 is acknowledged, cannot move to open: from acknowledged it can move to remediating, resolved"),
])
def test_invalid_transitions_are_refused_and_write_nothing(store, moves, refused, message):
    incident = opened(store)
    for move in moves:
        store.transition_incident(incident.id, move, actor="alice", reason="", now=at(2))
    before = (len(store.incident_events(incident.id)), len(list(store.audit_entries())))
    with pytest.raises(TransitionError) as err:
        store.transition_incident(incident.id, refused, actor="bob", reason="", now=at(3))
    assert str(err.value) == message
    assert (len(store.incident_events(incident.id)), len(list(store.audit_entries()))) == before


def test_unknown_incident(store):
    with pytest.raises(UnknownIncidentError) as err:
        store.transition_incident(99, IncidentStatus.ACKNOWLEDGED, actor="alice", reason="", now=at(0))
    assert str(err.value) == "no incident #99"


def test_quiet_cycles_with_data_resolve(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    for minute in (1, 2):
        cycle(ctx, minute, samples=frame(API_LATENCY))
        assert ctx.store.get_incident(1).status is IncidentStatus.OPEN
    [touched] = cycle(ctx, 3, samples=frame(API_LATENCY))
    assert (touched.status, touched.resolution, touched.resolved_by) == (IncidentStatus.RESOLVED, "quiet", "agent")
    last = ctx.store.incident_events(1)[-1]
    assert (last.kind, last.message) == ("resolved", "open → resolved: none of its signals fired for 3 cycles")
    assert ctx.metrics.registry.get_sample_value("aiops_open_incidents") == 0
    assert ctx.metrics.registry.get_sample_value("aiops_incidents_opened_total") == 1


def test_a_gap_never_counts_as_quiet(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    cycle(ctx, 1, samples=frame(API_LATENCY))
    for minute in range(2, 8):  # source down: the series is a gap, or missing from the frame
        cycle(ctx, minute, samples=frame(API_LATENCY, gaps=(API_LATENCY,)) if minute % 2 else frame())
    incident = ctx.store.get_incident(1)
    assert (incident.status, incident.quiet_cycles) == (IncidentStatus.OPEN, 1)
    cycle(ctx, 8, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).status is IncidentStatus.OPEN
    cycle(ctx, 9, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).status is IncidentStatus.RESOLVED


def test_firing_again_restarts_the_quiet_count(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    cycle(ctx, 1, samples=frame(API_LATENCY))
    cycle(ctx, 2, samples=frame(API_LATENCY))
    cycle(ctx, 3, [hit("latency", 3, service="api")], frame(API_LATENCY))
    assert ctx.store.get_incident(1).quiet_cycles == 0
    for minute in (4, 5):
        cycle(ctx, minute, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).status is IncidentStatus.OPEN


def test_a_remediation_that_ran_must_verify_before_auto_resolve(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    ctx.store.create_run(incident_id=1, rule="restart-api", rule_mode="auto", playbook="restart.yml",
                         playbook_sha256="0" * 64, mode=RunMode.APPLY, status=RunStatus.VERIFYING,
                         targets=["api-1"], extravars={}, now=at(0.5))
    for minute in (1, 2, 3, 4):
        cycle(ctx, minute, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).status is IncidentStatus.OPEN
    ctx.store.set_remediation_times(1, verified_at=at(4.5), actor="agent", now=at(4.5))
    [touched] = cycle(ctx, 5, samples=frame(API_LATENCY))
    assert (touched.status, touched.resolution) == (IncidentStatus.RESOLVED, "remediation")


def test_a_check_run_alone_does_not_hold_the_incident_open(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    ctx.store.create_run(incident_id=1, rule="restart-api", rule_mode="suggest", playbook="restart.yml",
                         playbook_sha256="0" * 64, mode=RunMode.CHECK, status=RunStatus.SUCCEEDED,
                         targets=["api-1"], extravars={}, now=at(0.5))
    for minute in (1, 2, 3):
        cycle(ctx, minute, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).resolution == "quiet"


def test_correlate_returns_the_incidents_it_touched(ctx):
    touched = cycle(ctx, 0, [hit("latency", 0, service="api"), hit("queue", 0, service="billing")])
    assert [(i.id, i.status) for i in touched] == [(1, IncidentStatus.OPEN), (2, IncidentStatus.OPEN)]
    assert ctx.metrics.registry.get_sample_value("aiops_open_incidents") == 2
    assert cycle(ctx, 1) == []  # nothing fired, no data: nothing to do


def test_a_series_of_nan_is_a_gap_too(ctx):
    cycle(ctx, 0, [hit("latency", 0, service="api")], frame(API_LATENCY))
    empty = frame(API_LATENCY)
    empty.values[API_LATENCY] = float("nan")
    for minute in (1, 2, 3, 4):
        cycle(ctx, minute, samples=empty)
    assert (ctx.store.get_incident(1).status, ctx.store.get_incident(1).quiet_cycles) == (IncidentStatus.OPEN, 0)


def test_alert_signals_end_only_by_a_resolved_alert(ctx):
    from agent.incidents.alerts import ingest_webhook, parse_webhook
    from agent.incidents.correlator import Correlator
    from tests.incidents.test_alerts_api import PAYLOADS

    correlator = Correlator(ctx.store, ctx.config.incidents, interval_s=60)
    ingest_webhook(ctx.store, correlator, parse_webhook((PAYLOADS / "firing.json").read_bytes()), now=at(1),
                   actor="api")
    for minute in (2, 3, 4, 5):
        cycle(ctx, minute, samples=frame(API_LATENCY))
    assert ctx.store.get_incident(1).status is IncidentStatus.OPEN
