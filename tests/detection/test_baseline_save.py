"""``aiops baseline save`` over history the scrape source really collected from an HTTP exporter:
a restart that resets the counters, an upgrade that changes the buckets, a range too short to
judge by, and the time forms every command reads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.config import load_config
from agent.context import Context
from agent.sources import Collector

T0 = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)
LES = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "+Inf"]
NORMAL = [0, 1, 2, 4, 6, 4, 2, 1, 0, 0, 0]  # 20 observations per scrape, centred on 5


def exposition(scrapes: int, les: list[str] = LES, per_bucket: list[int] = NORMAL) -> str:
    """A prometheus-client histogram after ``scrapes`` scrapes' worth of observations."""
    counts = np.cumsum(per_bucket) * scrapes
    lines = ["# TYPE model_input_amount histogram"]
    lines += [f'model_input_amount_bucket{{model="fraud",le="{le}"}} {c}' for le, c in zip(les, counts)]
    lines += [f'model_input_amount_count{{model="fraud"}} {counts[-1]}', 'model_input_amount_sum{model="fraud"} 1']
    return "\n".join(lines) + "\n"


def collected(write_config, tmp_path, exporter, texts: list[str]):
    """Scrape ``exporter`` once a minute from T0, serving each of ``texts`` in turn."""
    path = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\nhttp:\n  enabled: false\n"
                        "sources:\n  scrape:\n    self_metrics: false\n    targets:\n"
                        f"      - name: model\n        url: {exporter.url}/metrics\n"
                        "detectors:\n  rules: []\n  drift:\n    - name: fraud\n      features: [model_input_amount]\n")
    ctx = Context.create(load_config(path))
    collector = Collector(ctx)
    try:
        for minute, text in enumerate(texts):
            exporter.respond(text)
            collector.collect(T0 + timedelta(minutes=minute))
    finally:
        collector.close()
        ctx.store.close()
    return path


def save(path, tmp_path, now: datetime, *args: str):
    return CliRunner().invoke(cli, ["baseline", "save", "--config", str(path), "--state-dir", str(tmp_path / "state"),
                                    "--model", "fraud", *args], obj=Settings(clock=ManualClock(now)))


def test_a_counter_reset_counts_what_came_after_it_as_prometheus_increase_does(write_config, tmp_path,
                                                                             misbehaving_server):
    # 30 scrapes, a restart (the counters start again from zero), 30 more
    texts = [exposition(k + 1) for k in range(30)] + [exposition(k + 1) for k in range(30)]
    path = collected(write_config, tmp_path, misbehaving_server, texts)
    done = save(path, tmp_path, T0 + timedelta(minutes=60), "--from", "2026-03-02T11:00:00Z", "--to", "now")
    assert done.exit_code == 0, done.output
    # 29 increases before, the restart's scrape (the new count is the increase), 29 after
    assert done.output == ("baseline #1 for model fraud: 1 features, 1180 observations, "
                           "2026-03-02T11:00:00+00:00 to 2026-03-02T12:00:00+00:00\n")


def test_an_upgrade_that_changes_the_buckets_leaves_out_the_steps_of_the_old_ones(write_config, tmp_path,
                                                                                misbehaving_server):
    new_les = ["1", "2", "3", "4", "4.5", "5", "6", "7", "8", "9", "10", "+Inf"]
    new_normal = [0, 1, 2, 4, 3, 3, 4, 2, 1, 0, 0, 0]
    texts = [exposition(k + 1) for k in range(30)] + [exposition(k + 1, new_les, new_normal) for k in range(30)]
    path = collected(write_config, tmp_path, misbehaving_server, texts)
    done = save(path, tmp_path, T0 + timedelta(minutes=60), "--from", "1h")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "baseline #1 for model fraud: 1 features, 580 observations, "
        "2026-03-02T11:00:00+00:00 to 2026-03-02T12:00:00+00:00",
        "  left out 29 steps whose buckets were not cumulative or not all there: a counter reset or a change of "
        "bucket bounds (a restart or an upgrade)"]


def test_a_range_with_too_few_observations_is_refused_naming_the_minimum(write_config, tmp_path,
                                                                        misbehaving_server):
    path = collected(write_config, tmp_path, misbehaving_server, [exposition(k + 1) for k in range(20)])
    now = T0 + timedelta(minutes=19)
    done = save(path, tmp_path, now, "--from", "now-1s")
    assert done.exit_code == 1
    assert done.output == ("baseline for model fraud: expected at least 200 observations per feature (the drift "
                           "detector's min_samples), found model_input_amount: 20 between "
                           "2026-03-02T11:18:59+00:00 and 2026-03-02T11:19:00+00:00: save a longer range\n")
    # the same forms as --since elsewhere: 10m back from now
    assert save(path, tmp_path, now, "--since", "10m").exit_code == 0
    assert save(path, tmp_path, now, "--from", "19m", "--until", "now-1m").output.startswith(
        "baseline #2 for model fraud: 1 features, 360 observations, 2026-03-02T11:00:00+00:00 to ")


def test_baselines_are_listed_newest_first_and_shown_by_id_or_model(write_config, tmp_path, misbehaving_server):
    path = collected(write_config, tmp_path, misbehaving_server, [exposition(k + 1) for k in range(40)])
    now = T0 + timedelta(minutes=39)
    assert save(path, tmp_path, now, "--from", "30m").exit_code == 0
    assert save(path, tmp_path, now, "--from", "20m").exit_code == 0

    def run(*args: str):
        return CliRunner().invoke(cli, ["baseline", *args, "--config", str(path)], obj=Settings(clock=ManualClock(now)))

    lines = run("list").output.splitlines()
    assert [line.split()[:2] for line in lines] == [["#2", "fraud"], ["#1", "fraud"]]
    assert lines[0].endswith("(in use)") and not lines[1].endswith("(in use)")
    listed = json.loads(run("list", "--model", "fraud", "--format", "json").output)
    assert [(b["id"], b["observations"]) for b in listed] == [(2, {"model_input_amount": 420.0}),
                                                             (1, {"model_input_amount": 620.0})]
    assert run("show", "1").output.splitlines()[2] == "  model_input_amount: 11 buckets, 620 observations"
    assert json.loads(run("show", "--model", "fraud", "--format", "json").output)["id"] == 2
    neither = run("show")
    assert neither.exit_code == 2 and "give a baseline ID or --model NAME (one of them)" in neither.output
    assert run("show", "7").output == ("Error: no baseline #7; see aiops baseline list, or record one with "
                                       "aiops baseline save --model NAME --from 7d\n")
    assert run("list", "--model", "churn").output == ("no baselines for model churn; record one with "
                                                      "aiops baseline save --model NAME --from 7d\n")
