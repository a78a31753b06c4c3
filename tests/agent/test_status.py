"""``aiops status``, ``/status``, ``/api/v1/status`` and ``/healthz``'s warm-up count: what an agent
reports after each cycle, read by any process from the store. Targets are real: Debian's
node_exporter and a port where nothing listens."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from agent.cli.common import Settings
from agent.cli.main import cli
from agent.clock import ManualClock
from agent.context import Context
from agent.pipeline import Pipeline
from tests.agent.test_daemon import Daemon
from tests.conftest import free_port, wait_until

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def config_text(state_dir: object, targets: dict[str, str], refit: str = "") -> str:
    listed = "".join(f"      - name: {name}\n        url: {url}\n" for name, url in targets.items())
    return (f"agent:\n  state_dir: {state_dir}\n  interval: 60s\nhttp:\n  enabled: false\n"
            f"sources:\n  scrape:\n    targets:\n{listed}" + (f"detectors:\n  refit:\n{refit}" if refit else ""))


def status(clock: ManualClock, state_dir: object, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["status", "--state-dir", str(state_dir), *args], obj=Settings(clock=clock))
    return done.exit_code, done.output


@pytest.fixture
def agent(make_config, tmp_path):
    """``agent(targets, refit="")``: a Context and its Pipeline on a ManualClock at T0 (closed after)."""
    made: list[tuple[Context, Pipeline]] = []

    def make(targets: dict[str, str], refit: str = "") -> tuple[Context, Pipeline, ManualClock]:
        clock = ManualClock(T0)
        ctx = Context.create(make_config(config_text(tmp_path / "state", targets, refit)), clock=clock)
        made.append((ctx, Pipeline(ctx)))
        return ctx, made[-1][1], clock

    yield make
    for ctx, pipeline in made:
        pipeline.close()
        ctx.store.close()


def test_status_names_each_target_with_its_url_state_series_and_last_error(agent, node_exporter, tmp_path):
    gone = f"127.0.0.1:{free_port()}"
    ctx, pipeline, clock = agent({"node": node_exporter.url, "gone": f"http://scraper@{gone}/metrics"})
    pipeline.run_cycle()
    clock.advance(30)

    code, out = status(clock, tmp_path / "state", "--format", "json")
    assert code == 0, out
    [shard] = json.loads(out)["agents"]
    node, dead = shard["targets"]
    assert (node["target"], node["url"], node["state"], node["last_success_at"], node["last_error"]) == (
        "node", node_exporter.url, "up", T0.isoformat(), None)
    assert 400 < node["series"] < 700
    assert dead == {"source": "scrape", "target": "gone", "url": f"http://{gone}/metrics", "state": "down",
                    "optional": False, "last_success_at": None, "last_error_at": T0.isoformat(),
                    "last_error_kind": "connection", "last_error": "connection refused", "series": None}
    assert (shard["shard"], shard["role"], shard["age_s"], shard["stale"]) == ("0/1", "leader", 30.0, False)
    assert shard["cycle"]["failed_stages"] == [] and shard["cycle"]["blind"] is False

    code, out = status(clock, tmp_path / "state")
    lines = out.splitlines()
    assert lines[0].startswith("shard 0/1: leader, ") and lines[0].endswith(" reported 30s ago (every 1m 00s)")
    assert lines[1].startswith("  last cycle: 2026-03-02 12:00:00Z, ok, ")
    assert lines[2] == "  source scrape:"
    assert lines[5].split() == ["gone", "down", f"http://{gone}/metrics", "-", "never", "30s", "ago:", "connection:",
                                "connection", "refused"]
    assert "scraper" not in out


def test_a_stale_report_or_a_blind_cycle_makes_status_exit_1(agent, tmp_path):
    ctx, pipeline, clock = agent({"gone": f"http://127.0.0.1:{free_port()}/metrics"})
    cycle = pipeline.run_cycle()
    assert cycle.blind and not cycle.ok
    assert cycle.blind_reason.startswith("every source failed: gone at http://127.0.0.1:")
    code, out = status(clock, tmp_path / "state")
    assert code == 1 and "every source failed (read nothing)" in out
    clock.advance(181)
    code, out = status(clock, tmp_path / "state")
    assert "STALE: nothing for 3m 01s, more than 3 intervals (is it running?)" in out


def test_no_report_yet_says_so(tmp_path, make_config):
    ctx = Context.create(make_config(config_text(tmp_path / "state", {"n": "http://127.0.0.1:1/metrics"})))
    ctx.store.close()
    code, out = status(ManualClock(T0), tmp_path / "state")
    assert (code, out) == (1, "no agent has reported to this store yet: start one (aiops run), or run one cycle "
                              "(aiops once)\n")


def test_warming_up_says_how_many_series_and_when_they_are_first_scored(agent, node_exporter, tmp_path):
    ctx, pipeline, clock = agent({"node": node_exporter.url}, refit="    min_history: 10m\n    min_points: 5\n")
    pipeline.run_cycle()
    pipeline.refit(now=clock())  # as the daemon's refit job: it measures every series' history
    clock.advance(60)
    pipeline.run_cycle()

    forecast, subspace = pipeline.status.warming  # the default rules: every series, and every instance
    assert (forecast.detector, subspace.detector) == ("forecast", "subspace")
    series = forecast.series
    assert series > 300 and forecast.min_history_s == 600
    # gauges have 1 minute of history and need 10: fitted at 12:10, scored from the next cycle
    assert forecast.first_fit_at == T0 + timedelta(minutes=10)
    # the exporter's instance, judged as a whole after a day of history
    assert subspace.series > 300 and subspace.min_history_s == 86400
    both = series + subspace.series  # a series counts once for each detector that waits for it
    assert ctx.metrics.registry.get_sample_value("aiops_series_warming") == both
    code, out = status(clock, tmp_path / "state")
    assert (f"  detectors: 0 signals judged in the last cycle; warming up {both} series: forecast {series} "
            f"series (min_history 10m 00s), first scored in about 10m 00s; subspace {subspace.series} series "
            "(min_history 1d 00h), history not measured yet (at the next refit)") in out

    # refit.max_per_cycle (200) spreads the first fits of node_exporter's ~500 series over 3 refits;
    # scored then, they cannot raise a hit until their own past says how rare a point is
    for _ in range(13):
        pipeline.refit(now=clock())
        clock.advance(60)
        pipeline.run_cycle()
    forecast, subspace = pipeline.status.warming
    assert forecast.series == 0 and forecast.calibrating > 300 and pipeline.status.series_scored > 300
    assert ctx.metrics.registry.get_sample_value("aiops_series_warming") == forecast.calibrating + subspace.series
    code, out = status(clock, tmp_path / "state")
    assert f"forecast {forecast.calibrating} scored, no hit until their own past says how rare a point is" in out


@pytest.mark.slow
def test_a_started_daemon_names_its_source_on_status_after_one_cycle(tmp_path, subprocess_env, node_exporter):
    d = Daemon(tmp_path, subprocess_env, f"sources:\n  scrape:\n    targets:\n      - name: node\n"
                                         f"        url: {node_exporter.url}\n", interval="60s")
    try:
        wait_until(lambda: d.proc.poll() is None and node_exporter.url in _get(d, "/status"), 60,
                   message=f"/status naming {node_exporter.url}")
        page = _get(d, "/status")
        metrics = _get(d, "/metrics")
        assert "aiops_cycles_total 1.0" in metrics  # one cycle, the first
        assert '<td class="up">up</td>' in page
        agents = d.get("/api/v1/status").json()["agents"]
        assert [(t["target"], t["state"]) for t in agents[0]["targets"]] == [("aiops", "up"), ("node", "up")]
        health = d.get("/healthz").json()
        assert health["series_warming"] == agents[0]["series_warming"] > 300  # min_history 1h: all of them
    finally:
        d.stop()


def _get(d: Daemon, path: str) -> str:
    try:
        return d.get(path).text
    except OSError:
        return ""


def test_a_report_is_replaced_per_shard_on_either_store(any_store):
    from agent.flow.status import AgentStatus, CycleStatus, TargetState, TargetStatus, WarmingUp

    target = TargetStatus(source="scrape", target="node", url="http://127.0.0.1:9100/metrics", state=TargetState.UP,
                          last_success_at=T0, series=506)
    first = AgentStatus(shard="0/2", holder="a/1:1", role="leader", updated_at=T0, source="scrape", interval_s=60,
                        cycle=CycleStatus(started_at=T0, duration_s=0.4, series=506, hits=0), targets=(target,),
                        warming=(WarmingUp(detector="forecast", series=480, min_history_s=3600,
                                           first_fit_at=T0 + timedelta(hours=1)),))
    later = AgentStatus(shard="0/2", holder="b/2:2", role="active", updated_at=T0 + timedelta(minutes=1),
                        source="scrape", interval_s=60)
    other = AgentStatus(shard="1/2", holder="c/3:3", role="active", updated_at=T0, source="scrape", interval_s=60)
    for status in (first, other):
        any_store.status.save(status)
    assert any_store.status.all() == [first, other]
    any_store.status.save(later)
    assert any_store.status.all() == [later, other]
