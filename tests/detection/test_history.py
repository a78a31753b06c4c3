"""Refit history: the source's answer with this cycle's frame merged in last."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent.detection.history import read_history
from agent.flow.samples import Samples

START = pd.Timestamp("2026-11-01", tz="UTC")


def frame(rng: np.random.Generator, minutes: range, columns: list[str], holes: float) -> pd.DataFrame:
    index = pd.DatetimeIndex([START + pd.Timedelta(minutes=m) for m in minutes], name="ts")
    values = rng.normal(size=(len(index), len(columns)))
    values[rng.random(values.shape) < holes] = np.nan
    return pd.DataFrame(values, index=index, columns=columns)


def test_the_cycles_frame_wins_where_it_has_a_value_and_the_source_fills_the_rest():
    rng = np.random.default_rng(3)
    older = frame(rng, range(0, 600, 2), ["a", "b", "c"], holes=0.2)  # every other minute
    live = frame(rng, range(500, 700), ["b", "c", "d"], holes=0.3)  # overlaps the last 100 minutes

    def read(start, end, *, series_ids=None, step_s=None):
        return Samples(values=older, series={})

    got = read_history(read, ["d", "a", "b", "c", "e"], START, START + pd.Timedelta(minutes=650), step_s=60.0,
                       current=Samples(values=live, series={}))
    inside = live[live.index <= START + pd.Timedelta(minutes=650)]
    expected = inside.combine_first(older).reindex(columns=["d", "a", "b", "c", "e"]).sort_index().astype("float64")
    pd.testing.assert_frame_equal(got, expected)
    row = START + pd.Timedelta(minutes=520)
    assert got.loc[row, "c"] == (live.loc[row, "c"] if not np.isnan(live.loc[row, "c"]) else older.loc[row, "c"])
    assert got["e"].isna().all() and len(got) == 300 + 101  # every other minute to 598, then odd ones to 599, 600-650
