"""The replay is the daemon's cycle: same hits as cycles run by hand, no look-ahead, bad rows survived."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from agent.backtest.runner import replay_series
from agent.clock import ManualClock
from agent.config import AgentConfig, load_config
from agent.context import Context
from agent.pipeline import Pipeline

DAY = 288  # 5-minute points


def noisy_daily(days: int, seed: int = 11) -> pd.Series:
    rng = np.random.default_rng(seed)
    n = days * DAY
    idx = pd.date_range("2024-05-06", periods=n, freq="5min", tz="UTC")
    values = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / DAY) + rng.normal(0, 1.5, n)
    return pd.Series(values.round(3), index=idx, name="value")


def test_replay_gives_the_hits_of_the_daemons_own_cycles(tmp_path, write_config):
    series = noisy_daily(4)
    series.iloc[3 * DAY + 100] += 40
    series.iloc[3 * DAY + 220:3 * DAY + 260] -= 25  # a dip that lasts: an error smaller than the spike's
    csv = tmp_path / "cpu.csv"
    pd.DataFrame({"timestamp": series.index.strftime("%Y-%m-%d %H:%M:%S"), "value": series.to_numpy()}).to_csv(
        csv, index=False)
    config = load_config(write_config(f"""
agent: {{state_dir: {tmp_path / 'state'}, interval: 5m}}
http: {{enabled: false}}
sources: {{kind: file, file: {{paths: [{csv}], metric: replay}}}}
"""))
    clock = ManualClock(series.index[0].to_pydatetime())
    ctx = Context.create(config, clock=clock)
    pipeline = Pipeline(ctx)
    by_hand = []
    for ts in series.index[1:]:
        clock.set(ts.to_pydatetime())
        pipeline.refit(now=ts.to_pydatetime())  # the daemon's refit job
        by_hand += [(h.ts, round(h.score, 12)) for h in pipeline.run_cycle(now=ts.to_pydatetime()).hits]
    pipeline.close()
    ctx.store.close()

    replayed = replay_series(series, AgentConfig(), cycle_s=300, name="cpu")
    flagged = [(series.index[i].to_pydatetime(), round(replayed.scores[i], 12)) for i in np.flatnonzero(replayed.hits)]
    assert replayed.failed_cycles == 0
    # the spike is the rarest point of four days (one in 960, within a budget of 0.5 false pages
    # a day at 5-minute points); the dip, after it, is not rare enough to page for this budget
    assert [ts for ts, _ in by_hand] == [series.index[3 * DAY + 100].to_pydatetime()]
    assert flagged == by_hand
    # the detector follows each series point by point between checkpoints: a longer replay
    # cycle changes what a replay costs, not one score
    hourly = replay_series(series, AgentConfig(), cycle_s=3600, name="cpu")
    np.testing.assert_array_equal(hourly.scores, replayed.scores)
    np.testing.assert_array_equal(hourly.hits, replayed.hits)


def test_appending_future_rows_changes_no_earlier_score():
    series = noisy_daily(5, seed=4)
    series.iloc[3 * DAY + 50] *= 2
    whole = replay_series(series, AgentConfig(), cycle_s=3600)
    cut = 3 * DAY + 12 * 5 + 1  # the prefix ends on a cycle boundary (cycles are 12 rows)
    prefix = replay_series(series.iloc[:cut], AgentConfig(), cycle_s=3600)
    np.testing.assert_array_equal(prefix.scores, whole.scores[:cut])
    np.testing.assert_array_equal(prefix.hits, whole.hits[:cut])
    assert whole.hits[3 * DAY + 50] and whole.scores.max() <= 1.0


def test_bad_rows_neither_crash_nor_page():
    series = noisy_daily(5, seed=8)
    values = series.to_numpy().copy()
    values[2 * DAY + 10] = np.nan
    values[2 * DAY + 20] = np.inf
    values[2 * DAY + 21] = -np.inf
    index = series.index.to_list()
    index[2 * DAY + 40:2 * DAY + 44] = [index[2 * DAY + 39]] * 4  # a timestamp repeated five times
    index[2 * DAY + 60] = index[2 * DAY + 50]  # one step backwards
    bad = pd.Series(values, index=pd.DatetimeIndex(index))
    bad = pd.concat([bad.iloc[:3 * DAY], bad.iloc[4 * DAY:]])  # a day missing
    bad.index = pd.DatetimeIndex([*bad.index[:3 * DAY], *(bad.index[3 * DAY:] + timedelta(days=2))])  # 3 days of gap
    run = replay_series(bad, AgentConfig(), cycle_s=3600)
    assert run.failed_cycles == 0
    assert len(run.scores) == len(bad) and np.isfinite(run.scores).all()
    assert not run.hits[2 * DAY + 5:2 * DAY + 66].any()  # the bad rows and those after them
    assert run.scores[2 * DAY + 10] == run.scores[2 * DAY + 20] == 0.0  # not a point: not judged


@pytest.mark.parametrize("rows", [0, 1, 5])
def test_tiny_files_are_replayed_without_scores(rows):
    run = replay_series(noisy_daily(1).iloc[:rows], AgentConfig())
    assert len(run.scores) == rows and not run.scores.any() and not run.hits.any()
