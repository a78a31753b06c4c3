"""One title and one ratio in every view, and the agent's own remediation never blamed: a latency
fault six minutes after the agent restarted the service for an earlier incident."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock, to_epoch
from agent.flow.incidents import REMEDIATION_CHANGE, IncidentStatus, Severity, remediation_change
from agent.flow.samples import Samples
from agent.incidents.correlator import Correlator
from agent.incidents.formats import render
from agent.incidents.onset import with_onsets
from agent.incidents.summary import build
from agent.notify.messages import payload_for
from agent.report.model import model_report
from agent.report.period import Period
from detectors.base import Direction, Hit

T0 = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)
LABELS = {"job": "demo-model", "model": "fraud"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def latency(minutes: float, value: float, score: float) -> Hit:
    return Hit(series_id='latency_p95{job="demo-model",model="fraud"}', detector="seasonal", ts=at(minutes),
               value=value, score=score, direction=Direction.UP, expected=0.09642, lower=0.05, upper=0.14,
               metric="latency_p95", labels=LABELS, explanation="value 0.8079 vs expected 0.09642 (8.4x), robust z +552.0")


def earlier_incident_fixed_by_the_agent(store) -> int:
    """#1, a crash the agent fixed by restarting the service at 11:12 (a verified run)."""
    crash = store.open_incident(severity=Severity.CRITICAL, title="up down to 0", labels=LABELS, started_at=at(9),
                                now=at(10))
    with store.transaction() as conn:
        conn.execute("INSERT INTO remediation_runs (id, incident_id, rule, playbook, mode, status, rc, requested_at, "
                     "started_at, ended_at, reason) VALUES (1, ?, 'restart-model-service', 'restart_service.yml', "
                     "'apply', 'verified', 0, ?, ?, ?, 'signals quiet')",
                     (crash.id, to_epoch(at(11)), to_epoch(at(11)), to_epoch(at(12))))
    store.add_change(ts=at(12), kind=REMEDIATION_CHANGE, labels=LABELS, actor="agent", now=at(12),
                     description=remediation_change(playbook="restart_service.yml", rule="restart-model-service",
                                                    run_id=1))
    store.transition_incident(crash.id, IncidentStatus.RESOLVED, actor="agent", reason="verified", now=at(13),
                              resolution="remediation")
    return crash.id


def test_the_agents_restart_is_listed_as_what_it_did_not_as_the_suspect(store, make_config):
    earlier = earlier_incident_fixed_by_the_agent(store)
    correlator = Correlator(store, make_config("").incidents, interval_s=10)
    [incident_id] = correlator.ingest(with_onsets([latency(18, 0.8079, 552.0)], Samples.empty(), interval_s=10),
                                      now=at(18)).opened
    summary = build(store, incident_id)
    assert summary.title == "latency_p95 8.4x expected on model=fraud, job=demo-model"
    assert summary.changes == ()
    text = render(store, incident_id, "text")
    assert "since" not in text.splitlines()[0] and "Suspect changes (nearest first):\n  none\n" in text
    assert ("What the agent did just before (not a suspect):\n  2026-03-02 11:12:00 UTC the agent ran "
            f"restart_service.yml (rule restart-model-service, run 1) for incident #{earlier}: verified\n") in text
    assert "Root cause: unknown: one signal, no change before it, no topology configured" in text
    # the stored title (the audit's, the list's) says the same
    assert store.get_incident(incident_id).title == summary.title
    # a person's deploy in the same window is a suspect again
    store.add_change(ts=at(15), kind="deploy", labels={"job": "demo-model", "version": "v7"}, actor="ci",
                     description="demo-model v7", now=at(15))
    assert build(store, incident_id).title == "latency_p95 8.4x expected on model=fraud, job=demo-model since deploy v7"


def test_every_view_gives_the_same_title_and_ratio_from_the_peak(api_for, write_config, tmp_path):
    api = api_for()
    store = api.ctx.store
    earlier_incident_fixed_by_the_agent(store)
    correlator = Correlator(store, api.ctx.config.incidents, interval_s=10)
    [incident_id] = correlator.ingest(with_onsets([latency(18, 0.8079, 552.0)], Samples.empty(), interval_s=10),
                                      now=at(18)).opened
    # later points: one worse (the peak), then one nearer normal (the newest)
    correlator.ingest([latency(18.5, 0.9546, 640.0)], now=at(18.5))
    correlator.ingest([latency(19, 0.3, 150.0)], now=at(19))
    title = "latency_p95 9.9x expected on model=fraud, job=demo-model"

    page = api.get(f"/incidents/{incident_id}").text
    listed = {i["id"]: i["title"] for i in api.get("/api/v1/incidents").json()}
    one = api.get(f"/api/v1/incidents/{incident_id}").json()
    config = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\n")
    cli_list = CliRunner().invoke(cli, ["--config", str(config), "incidents", "list", "--json"],
                                  catch_exceptions=False, obj=Settings(clock=ManualClock(at(30))))
    opened = next(e for e in store.incident_events(incident_id) if e.kind == "opened")
    message = payload_for(store, opened, store.get_incident(incident_id), base_url=None, catalog=None)
    report = model_report(store, "fraud", Period(since=at(0), until=at(60)), now=at(60))
    summary = json.loads(render(store, incident_id, "json"))

    assert f"<h1>#{incident_id} {title}</h1>" in page
    assert listed[incident_id] == one["title"] == title
    assert {i["id"]: i["title"] for i in json.loads(cli_list.output)}[incident_id] == title
    assert message["title"] == title and message["text"].startswith(f"#{incident_id} WARNING  {title}\n")
    assert {i["id"]: i["title"] for i in report.incidents}[incident_id] == title
    top = summary["signals"][0]
    assert (top["observed"], top["expected"], top["deviation"]) == (0.9546, 0.09642, "9.9x expected")
    assert top["peak_at"] == "2026-03-02T11:18:30+00:00"
