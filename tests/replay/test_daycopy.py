"""Refit history served from the replay's copy of what it read gives the detectors exactly what
the Prometheus queries give (a real Prometheus backfilled by promtool)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from agent.clock import ManualClock
from agent.config import load_config
from agent.context import Context
from agent.detection.history import read_history
from agent.pipeline import Pipeline
from agent.replay.daycopy import DayCopy, grid_fits
from agent.replay.run import run_replay
from agent.store import Store
from tests.fixtures.prometheus import Family, needs_prometheus, openmetrics
from tests.replay.history import fleet

START = pd.Timestamp("2026-11-01", tz="UTC")
DAY = pd.Timedelta(days=1)
FAULT = START + pd.Timedelta(days=2, hours=10)


def config_file(tmp_path: Path, url: str) -> Path:
    """Two queries: a plain selector (remote read) and an expression (query_range)."""
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(f"""
        agent:
          state_dir: {tmp_path / "state"}
        sources:
          kind: prometheus
          prometheus:
            url: {url}
            queries:
              - {{name: node, expr: '{{job="node",__name__=~"cpu|latency|requests"}}', step: 60s}}
              - {{name: memory, expr: 'memory * 1', step: 30s}}
        """))
    return path


def ragged_families() -> tuple[list[Family], list[str]]:
    """Three days of two hosts, one series missing an afternoon and one first seen on day 2."""
    history = fleet(START, days=3, hosts=2)
    families = history.families()
    cpu = families[0]
    labels, ts, values = cpu.series[0]
    keep = (ts < (START + pd.Timedelta(hours=30)).timestamp()) | (ts > (START + pd.Timedelta(hours=34)).timestamp())
    late = ts >= (START + pd.Timedelta(hours=40)).timestamp()
    other_labels, _, other_values = cpu.series[1]
    cpu.series[:] = [(labels, ts[keep], values[keep]), (other_labels, ts[late], other_values[late])]
    return families, [s.series_id for s in history.series]


@needs_prometheus
def test_refit_history_from_the_copy_is_what_the_queries_give(tmp_path, prometheus_factory):
    families, ids = ragged_families()
    server = prometheus_factory(backfill_text=openmetrics(families))
    config = load_config(config_file(tmp_path, server.url))
    ctx = Context.create(config, clock=ManualClock(START.to_pydatetime()))
    pipeline = Pipeline(ctx, report=False)
    try:
        through = pipeline.collector.history
        copy = DayCopy.open(tmp_path / "copy", through)
        for day in range(1, 3):  # the copy holds days 1 and 2; day 0 and day 3 only the server
            lo, hi = START + day * DAY, START + (day + 1) * DAY
            copy.keep(pipeline.collector.source.fetch(lo, hi), lo, hi)
        wanted = [*ids, 'cpu{instance="web-9",job="node"}']
        held = [(START + DAY + pd.Timedelta(seconds=37), START + pd.Timedelta(hours=60), 60.0),
                (START + 2 * DAY, START + 3 * DAY, 120.0)]
        partly = [(START + pd.Timedelta(hours=20), START + pd.Timedelta(hours=80), 60.0),
                  (START - 2 * DAY, START - DAY, 60.0)]
        for start, end, step in held + partly:
            mine = read_history(copy, wanted, start.to_pydatetime(), end.to_pydatetime(), step_s=step)
            theirs = read_history(through, wanted, start.to_pydatetime(), end.to_pydatetime(), step_s=step)
            pd.testing.assert_frame_equal(mine, theirs, check_freq=False)
            if start == START + DAY + pd.Timedelta(seconds=37):
                assert copy.from_source == 0 and mine.notna().sum().sum() > 0
                assert mine.iloc[:, 0].isna().sum() > 3 * 60  # the afternoon the series was missing
        assert copy.from_source == 3  # day 0, day 3, and the range before the data
        assert theirs.empty and mine.empty
    finally:
        pipeline.close()
        ctx.store.close()


def test_the_copy_serves_a_refit_step_only_when_each_query_is_evaluated_on_its_grid():
    assert grid_fits(60.0, [60.0, 30.0, 15.0]) and grid_fits(300.0, [60.0])
    assert not grid_fits(60.0, [120.0]) and not grid_fits(60.0, [45.0])


@needs_prometheus
def test_a_replay_opens_the_same_incidents_with_the_copy_as_with_refits_through_prometheus(
        tmp_path, prometheus_factory):
    history = fleet(START, days=3, hosts=3, fault_at=FAULT)
    server = prometheus_factory(backfill_text=openmetrics(history.families()))
    config = load_config(config_file(tmp_path, server.url))
    start, end = START + 2 * DAY, START + 3 * DAY

    def incidents(refit_copy: bool) -> list[tuple]:
        replayed = run_replay(config, start, end, tmp_path / f"work-{refit_copy}", refit_copy=refit_copy)
        store = Store(replayed.state_dir / "aiops.db")
        try:
            return [(i.title, i.started_at, i.detected_at, i.resolved_at, len(i.episodes), len(i.signals))
                    for i in store.list_incidents()]
        finally:
            store.close()

    copied = incidents(True)
    assert copied == incidents(False)
    assert any(i[1] <= (FAULT + pd.Timedelta(minutes=5)).to_pydatetime() for i in copied)
    kept = sorted(p.name for p in (tmp_path / "work-True" / "history").iterdir())
    assert len(kept) == 8 + 1 and np.all([not name.startswith(".") for name in kept])  # the week before, the day
