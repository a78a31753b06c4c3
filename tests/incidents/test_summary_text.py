"""The summary's exact words for the demo's drift incident and for a latency incident: title,
status with MTTD and MTTR, what the agent did in the order it ran, the next step, then signals,
suspects and timeline, with no figure said twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.clock import to_epoch
from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunMode, RunStatus
from agent.flow.samples import Samples
from agent.incidents.correlator import Correlator
from agent.incidents.formats import render
from agent.incidents.onset import with_onsets
from agent.incidents.summary import run_outcome
from agent.store.outbox import RunOutcome
from detectors.base import Direction, Hit

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
FRAUD = {"model": "fraud"}
DRIFT_WORDS = ("4 of 4 features drifted (100%, alert at 50%): amount PSI 0.28 (ks p=1.2e-09), "
               "age PSI 0.27 (ks p=3e-08), tenure PSI 0.26 (ks p=1e-07), demo_prediction_score PSI 0.25 "
               "(ks p=2e-06); PSI threshold 0.25")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ansible_output(report: str) -> str:
    return ("PLAY [Roll a model back] *****\n\nTASK [Point current at it] *****\nchanged: [localhost]\n\n"
            "TASK [Report] *****\nok: [localhost] => {\n    \"msg\": \"" + report.replace("→", "\\u2192") + "\"\n}\n\n"
            "PLAY RECAP *****\nlocalhost : ok=6 changed=2 unreachable=0 failed=0\n")


def add_run(store, incident_id: int, *, run_id: int, rule: str, playbook: str, mode: str, status: str,
            started: float, ended: float, output: str = "", reason: str = "") -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO remediation_runs (id, incident_id, rule, playbook, mode, status, rc, requested_at, "
            "started_at, ended_at, reason, output) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (run_id, incident_id, rule, playbook, mode, status, to_epoch(at(started - 1)), to_epoch(at(started)),
             to_epoch(at(ended)), reason, output))


class Correlation:
    """The correlate stage as the pipeline runs it: starts estimated, then hits placed (a 10 s cycle)."""

    def __init__(self, store, make_config) -> None:
        self.correlator = Correlator(store, make_config("").incidents, interval_s=10)

    def ingest(self, hits, *, now):
        return self.correlator.ingest(with_onsets(hits, Samples.empty(), interval_s=10), now=now)


def correlator(store, make_config) -> Correlation:
    return Correlation(store, make_config)


def test_the_demo_drift_incident_reads_in_thirty_seconds(store, make_config):
    store.add_change(ts=at(0), kind="model_rollout", labels={**FRAUD, "job": "demo-model", "version": "v3"},
                     description="roll out fraud model v3 (new feature preprocessing)", actor="demo", now=at(0))
    drift = Hit(series_id='model_drift{model="fraud"}', detector="drift", ts=at(20), value=1.0, score=1.0,
                direction=Direction.UP, expected=0.0, upper=0.5, entity="fraud", metric="model_drift",
                labels=FRAUD, explanation=DRIFT_WORDS, began_at=at(5))
    [incident_id] = correlator(store, make_config).ingest([drift], now=at(20)).opened
    # The apply run is requested first and waits for its check run: it runs second.
    add_run(store, incident_id, run_id=2, rule="rollback-model", playbook="rollback_model.yml", mode="apply",
            status="verified", started=24, ended=26, output=ansible_output("rolled back fraud v3 → v2"),
            reason="signals quiet for 10s")
    add_run(store, incident_id, run_id=3, rule="rollback-model", playbook="rollback_model.yml", mode="check",
            status="succeeded", started=21, ended=23, output=ansible_output("rolled back fraud v3 → v2"))
    store.transition_incident(incident_id, IncidentStatus.REMEDIATING, actor="agent", reason="rollback-model",
                              now=at(24))
    store.set_remediation_times(incident_id, started_at=at(24), actor="agent", now=at(24))
    store.set_remediation_times(incident_id, verified_at=at(86), actor="agent", now=at(86))
    store.transition_incident(incident_id, IncidentStatus.RESOLVED, actor="agent", reason="remediation verified",
                              resolution="remediation", now=at(90))

    assert render(store, incident_id, "text") == f"""\
#{incident_id} WARNING  fraud model: 4 of 4 features drifted (PSI up to 0.28) since rollout v3
Status:   resolved (remediation) · began 2026-11-24 03:00:05 UTC, detected 03:00:20 (MTTD 15s), resolved 03:01:30 (MTTR 1m 25s)
Done:     03:00:21 checked rollback_model.yml in check mode (rule rollback-model): ok
          03:00:24 rolled back fraud v3 → v2 with rollback_model.yml (rule rollback-model); verified 1m 00s later

Root cause: rollout v3 by demo: it came 5s before the outage began, on model=fraud

Signals (most anomalous first):
  1. model_drift {{model=fraud}} [drift]
     drifted: amount PSI 0.28, age PSI 0.27, tenure PSI 0.26, demo_prediction_score PSI 0.25 (threshold PSI 0.25, lower when the second test agrees); 1 hit at 03:00:20, began 03:00:05

Suspect changes (nearest first):
  2026-11-24 03:00:00 UTC model_rollout {{job=demo-model, model=fraud, version=v3}}: roll out fraud model v3 (new feature preprocessing) (by demo)

Timeline:
  2026-11-24 03:00:05 UTC began: the change point of the drifted features' data (03:00:05), where their distribution left the baseline
  2026-11-24 03:00:20 UTC opened by agent
  2026-11-24 03:00:24 UTC remediating by agent: open → remediating: rollback-model
  2026-11-24 03:00:24 UTC remediation by agent: remediation started
  2026-11-24 03:01:26 UTC remediation by agent: remediation verified
  2026-11-24 03:01:30 UTC resolved by agent: remediating → resolved: remediation verified
"""


def test_a_latency_incident_the_playbook_did_not_fix_says_what_to_do_next(store, make_config):
    store.add_change(ts=at(-600), kind="deploy", labels={"service": "checkout", "version": "v12"},
                     description="checkout v12", actor="ci", now=at(-600))
    labels = {"service": "checkout", "instance": "web-1", "team": "payments"}
    latency = Hit(series_id='http_request_duration_p95_seconds{instance="web-1",service="checkout"}',
                  detector="forecast", ts=at(15), value=0.84, score=9.0, direction=Direction.UP, expected=0.2,
                  lower=0.1, upper=0.3, metric="http_request_duration_p95_seconds", labels=labels,
                  explanation="0.84 above the forecast band 0.1..0.3")
    errors = Hit(series_id='http_errors_ratio{instance="web-1",service="checkout"}', detector="forecast",
                 ts=at(25), value=0.05, score=3.0, direction=Direction.UP, expected=0.04, lower=0.03, upper=0.045,
                 metric="http_errors_ratio", labels=labels, explanation="0.05 above the forecast band 0.03..0.045")
    placed = correlator(store, make_config).ingest([latency], now=at(20))
    [incident_id] = placed.opened
    correlator(store, make_config).ingest([errors], now=at(30))
    add_run(store, incident_id, run_id=7, rule="restart-checkout", playbook="restart_service.yml", mode="apply",
            status="not_fixed", started=32, ended=40, output=ansible_output("restarted checkout"),
            reason="http_request_duration_p95_seconds still above its band after 3m 00s")
    store.transition_incident(incident_id, IncidentStatus.ACKNOWLEDGED, actor="cli:alice", reason="", now=at(200))

    assert render(store, incident_id, "text", prometheus_url="http://prom:9090") == f"""\
#{incident_id} WARNING  http_request_duration_p95_seconds 4.2x expected on service=checkout, instance=web-1 since deploy v12 (+1 more signal)
Status:   acknowledged · began 2026-11-24 03:00:10 UTC, detected 03:00:20 (MTTD 10s), acknowledged 03:03:20 by cli:alice (MTTA 3m 00s)
Done:     03:00:32 restarted checkout with restart_service.yml (rule restart-checkout); did not fix it: http_request_duration_p95_seconds still above its band after 3m 00s
Next:     restart_service.yml did not fix it; fix it by hand: look at the top signal's graph and the deploy v12 (ci); the run's output: aiops remediation show 7
Labels:   team=payments

Root cause: deploy v12 by ci: it came 10m 10s before the outage began, on service=checkout; http_request_duration_p95_seconds moved first, at 03:00:10, 10s before http_errors_ratio

Signals (most anomalous first):
  1. http_request_duration_p95_seconds {{instance=web-1, service=checkout, team=payments}} [forecast]
     840 ms at 03:00:15 vs expected 200 ms (6.4x the usual spread); 1 hit at 03:00:15, began 03:00:10
     graph: http://prom:9090/graph?g0.expr=http_request_duration_p95_seconds%7Binstance%3D%22web-1%22%2Cservice%3D%22checkout%22%2Cteam%3D%22payments%22%7D&g0.tab=0&g0.range_input=2h&g0.end_input=2026-11-24%2003%3A30%3A15
  2. http_errors_ratio {{instance=web-1, service=checkout, team=payments}} [forecast]
     5 % at 03:00:25 vs expected 4 % (+25% vs expected; 1.3x the usual spread); 1 hit at 03:00:25, began 03:00:20
     graph: http://prom:9090/graph?g0.expr=http_errors_ratio%7Binstance%3D%22web-1%22%2Cservice%3D%22checkout%22%2Cteam%3D%22payments%22%7D&g0.tab=0&g0.range_input=2h&g0.end_input=2026-11-24%2003%3A30%3A25

Suspect changes (nearest first):
  2026-11-24 02:50:00 UTC deploy {{service=checkout, version=v12}}: checkout v12 (by ci)

Timeline:
  2026-11-24 03:00:10 UTC began: half a cycle before 03:00:15, its first anomalous point (no earlier point to compare it with)
  2026-11-24 03:00:20 UTC opened by agent
  2026-11-24 03:00:30 UTC signal_added by agent: signal added: http_errors_ratio (forecast)
  2026-11-24 03:03:20 UTC acknowledged by cli:alice: open → acknowledged
"""


def test_the_drift_page_plots_the_drift_rate_and_each_features_psi_not_a_zero_one_line(store, make_config):
    drift = Hit(series_id='model_drift{model="fraud"}', detector="drift", ts=at(20), value=1.0, score=1.0,
                direction=Direction.UP, expected=0.0, upper=0.5, entity="fraud", metric="model_drift",
                labels=FRAUD, explanation=DRIFT_WORDS, began_at=at(5))
    [incident_id] = correlator(store, make_config).ingest([drift], now=at(20)).opened
    for k, rate in enumerate([0.0, 0.25, 0.5, 1.0]):  # what the drift stage keeps each cycle
        store.record_derived('model_drift{model="fraud"}', to_epoch(at(k * 10 - 10)), rate)
    page = render(store, incident_id, "html")
    assert page.count('<figure class="plot">') == 1
    assert ('model_drift {model=fraud}: the drift rate against the alert share; the PSI of each drifted '
            'feature') in page
    for feature in ("amount", "age", "tenure", "demo_prediction…"):  # the bars are named, not numbered
        assert f'class="name" fill="#1b1f24">{feature}</text>' in page
    assert "observed 1" not in page and "expected 0" not in page
    markdown = render(store, incident_id, "markdown")
    assert markdown.splitlines()[0] == f"# #{incident_id} fraud model\\: 4 of 4 features drifted (PSI up to 0.28)"


def test_a_run_held_back_says_so_instead_of_claiming_progress(store, make_config):
    hit = Hit(series_id='up{job="api"}', detector="threshold", ts=at(10), value=0.0, score=1.0,
              direction=Direction.DOWN, expected=1.0, metric="up", labels={"job": "api"}, explanation="up is 0")
    [incident_id] = correlator(store, make_config).ingest([hit], now=at(10)).opened
    with store.transaction() as conn:
        conn.execute("INSERT INTO remediation_runs (id, incident_id, rule, playbook, mode, status, requested_at) "
                     "VALUES (4, ?, 'restart-api', 'restart_service.yml', 'apply', 'pending', ?)",
                     (incident_id, to_epoch(at(11))))
    next_line = [line for line in render(store, incident_id, "text").splitlines() if line.startswith("Next:")]
    assert next_line == ["Next:     restart_service.yml (run #4) has not started: a rate limit, the breaker or a busy "
                         "worker can hold it; why: aiops audit export --since 1h | grep run:4; or fix it by hand: "
                         "look at the top signal"]


def test_every_run_status_and_mode_has_words():
    """A status added to RunStatus without words for the summary fails here, not in a page."""
    for mode in RunMode:
        for status in RunStatus:
            run = RunOutcome(id=1, rule="r", playbook="p.yml", mode=mode, status=status, rc=None,
                             requested_at=T0, started_at=T0, ended_at=T0)
            assert run_outcome(run).startswith(("checked p.yml", "ran p.yml", "undid it with p.yml")), (mode, status)
    failed = RunOutcome(id=1, rule="r", playbook="p.yml", mode=RunMode.APPLY, status=RunStatus.TIMEOUT, rc=254,
                        requested_at=T0, started_at=T0, ended_at=T0, reason="killed at 60s")
    assert run_outcome(failed) == "ran p.yml (rule r); timed out (rc 254): killed at 60s"
