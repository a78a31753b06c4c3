"""Playbook runs beside the cycle: detection goes on while a playbook runs, a later cycle picks up
the result and verifies it, a run under way is never started twice, and a stop cancels it."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pandas as pd

from agent.config import load_config
from agent.context import Context
from agent.flow.incidents import IncidentStatus
from agent.flow.runs import RunMode, RunStatus
from agent.pipeline import Pipeline
from remediations.engine import Remediator, worker_limit
from tests.conftest import wait_until
from tests.remediations.conftest import (
    T0,
    cycle,
    later,
    lines,
    manual_context,
    open_incident,
    remediate,
    run_cycle,
    run_pids,
    signal,
)

FIRING = signal()


def sleep_rule(work: Path, sleep_s: int) -> str:
    return f"""
    verify: {{period: 0s, deadline: 10m}}
    limits: {{cooldown: 0s}}
    rules:
      - name: slow-fix
        match: {{labels: {{service: api}}}}
        playbook: sleep.yml
        mode: auto
        vars: {{runs_log: {work / 'runs.log'}, sleep_s: {sleep_s}}}
    """


def hold_rule(work: Path) -> str:
    """The rule's playbook runs until the test creates ``work/release``."""
    return sleep_rule(work, 0).replace("playbook: sleep.yml", "playbook: hold.yml").replace(
        "sleep_s: 0", f"release: {work / 'release'}")


def apply_run(ctx: Context, incident_id: int):
    (run,) = ctx.store.list_runs(incident_id=incident_id, mode=RunMode.APPLY)
    return run


def status_of(ctx: Context, run_id: int) -> RunStatus:
    return ctx.store.get_run(run_id).status


def stop_and_join(ctx: Context) -> None:
    ctx.stopping.set()
    assert ctx.workers.join(timeout_s=60), f"runs still under way: {ctx.workers.under_way()}"


def pipeline_ctx(tmp_path: Path, pbdir: Path, work: Path) -> Context:
    """A whole agent over a CSV source (the real collect and detect stages) and the sleep rule."""
    index = pd.date_range(T0 - pd.Timedelta(hours=2), T0, freq="1min")
    csv = tmp_path / "cpu.csv"
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%d %H:%M:%S"), "value": 50.0}).to_csv(csv, index=False)
    text = (f"agent: {{state_dir: {tmp_path / 'state'}, interval: 1m}}\nhttp: {{enabled: false}}\n"
            f"sources: {{kind: file, file: {{paths: [{csv}], metric: cpu}}}}\n"
            f"remediation:\n  playbook_dir: {pbdir}\n" + textwrap.indent(textwrap.dedent(sleep_rule(work, 600)), "  "))
    (tmp_path / "agent.yaml").write_text(text)
    return manual_context(load_config(tmp_path / "agent.yaml"), tmp_path / "state")


def test_a_cycle_detects_and_completes_while_a_long_playbook_runs(tmp_path, pbdir, work):
    ctx = pipeline_ctx(tmp_path, pbdir, work)
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])
    try:
        remediate(ctx, cycle(T0, firing=[FIRING]))
        wait_until(lambda: lines(work / "runs.log"), 60, message="the playbook to start sleeping")
        run = apply_run(ctx, incident.id)

        detected = ctx.metrics.registry.get_sample_value("aiops_stage_duration_seconds_count", {"stage": "detect"})
        ctx.clock.set(later(1))
        done = Pipeline(ctx).run_cycle(now=later(1))

        assert done.ok and detected is None
        assert len(done.samples) == 1  # the CSV's series was collected ...
        assert ctx.metrics.registry.get_sample_value(
            "aiops_stage_duration_seconds_count", {"stage": "detect"}) == 1.0  # ... and judged
        assert status_of(ctx, run.id) is RunStatus.RUNNING  # the 600 s playbook still sleeps
        assert ctx.workers.under_way() == [f"run:{run.id}"]
    finally:
        stop_and_join(ctx)
        ctx.store.close()


def test_a_later_cycle_picks_up_the_result_verifies_it_and_resolves_the_incident(make_ctx, work):
    ctx = make_ctx(hold_rule(work))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])

    started = remediate(ctx, cycle(T0, firing=[FIRING]))

    (run,) = [r for r in started if r.mode is RunMode.APPLY]
    # handed to a worker: the stage returned while the playbook, held, had yet to end
    assert ctx.workers.under_way() == [f"run:{run.id}"]
    assert run.status in (RunStatus.PENDING, RunStatus.RUNNING)
    (work / "release").touch()
    wait_until(lambda: status_of(ctx, run.id) is RunStatus.VERIFYING, 60, message="the run to be applied")
    wait_until(lambda: not ctx.workers.under_way(), 10, message="the worker to finish")

    picked = remediate(ctx, cycle(later(1), quiet=[FIRING.series_id]))

    assert {r.id: r.status for r in picked if r.mode is RunMode.APPLY} == {run.id: RunStatus.VERIFIED}
    assert lines(work / "runs.log") == [str(run.id)]
    resolved = ctx.store.get_incident(incident.id)
    assert (resolved.status, resolved.resolution) == (IncidentStatus.RESOLVED, "remediation")


def test_a_run_under_way_is_not_started_again_by_the_cycles_that_see_its_incident(make_ctx, work):
    ctx = make_ctx(hold_rule(work))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])

    remediate(ctx, cycle(T0, firing=[FIRING]))
    # the next cycles come while the run is still pending or running: its key is taken
    for minute in (0.1, 0.2):
        remediate(ctx, cycle(later(minute), firing=[FIRING]))
    wait_until(lambda: lines(work / "runs.log"), 60, message="the playbook to start holding")
    remediate(ctx, cycle(later(0.3), firing=[FIRING]))
    assert ctx.workers.under_way()  # still held: that cycle saw the run under way
    (work / "release").touch()
    assert ctx.workers.join(timeout_s=60)

    run = apply_run(ctx, incident.id)
    assert status_of(ctx, run.id) is RunStatus.VERIFYING
    assert lines(work / "runs.log") == [str(run.id)]
    started = [e for e in ctx.store.audit_entries()
               if e.action == "remediation.running" and e.details["reason"] == "apply run started"]
    assert [e.subject for e in started] == [f"run:{run.id}"]


def test_a_worker_goes_on_only_with_a_run_that_is_still_due(make_ctx, work):
    ctx = make_ctx(sleep_rule(work, 0))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])
    run_cycle(ctx, T0, firing=[FIRING])
    run = apply_run(ctx, incident.id)
    # what a cycle listed as pending just before the worker that ran it finished
    stale = dataclasses.replace(run, status=RunStatus.PENDING)

    Remediator(ctx, cycle(later(1), firing=[FIRING]), {}).fork(f"run:{run.id}").execute(stale)

    assert status_of(ctx, run.id) is RunStatus.VERIFYING
    assert lines(work / "runs.log") == [str(run.id)]


def test_a_stop_cancels_the_playbook_under_way_and_records_it_interrupted(make_ctx, work):
    ctx = make_ctx(sleep_rule(work, 600))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])
    remediate(ctx, cycle(T0, firing=[FIRING]))
    wait_until(lambda: lines(work / "runs.log"), 60, message="the playbook to start sleeping")
    run = apply_run(ctx, incident.id)
    assert run_pids(ctx.store, run)

    stop_and_join(ctx)

    run = ctx.store.get_run(run.id)
    assert (run.status, run.reason) == (RunStatus.INTERRUPTED, "the agent was stopping; the run was killed")
    assert run_pids(ctx.store, run) == []
    assert [e.message for e in ctx.store.incident_events(incident.id) if e.kind == "escalated"] == \
        [f"run {run.id} was interrupted because the agent stopped"]


def test_a_stopping_agent_hands_no_new_run_to_a_worker(make_ctx, work):
    ctx = make_ctx(sleep_rule(work, 600))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])
    ctx.stopping.set()

    remediate(ctx, cycle(T0, firing=[FIRING]))

    assert ctx.workers.under_way() == []
    assert apply_run(ctx, incident.id).status is RunStatus.PENDING  # due again when the agent starts


def test_workers_zero_runs_the_playbook_inside_the_stage(make_ctx, work):
    ctx = make_ctx("\n    workers: 0" + sleep_rule(work, 0))
    incident = open_incident(ctx, {"service": "api"}, signals=[FIRING])

    runs = remediate(ctx, cycle(T0, firing=[FIRING]))

    assert [r.status for r in runs] == [RunStatus.VERIFYING]
    assert lines(work / "runs.log") == [str(apply_run(ctx, incident.id).id)]


def test_subreaper_tracking_runs_one_job_at_a_time(make_ctx):
    config = make_ctx("workers: 4\nprocess_tracking: subreaper\n").config.remediation
    assert worker_limit(config) == 1
    assert worker_limit(config.model_copy(update={"workers": 0})) == 0
