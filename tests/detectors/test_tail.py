"""The tail of past scores: judging a run of points at once gives what judging them one at a
time gives (the subspace and forecast detectors judge in runs)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._tail import Tails, chances, chances_along, fit_tails, take_in


@pytest.mark.parametrize("seed", range(40))
def test_a_run_judged_at_once_gives_each_points_chance_and_the_tail_one_at_a_time_gives(seed):
    rng = np.random.default_rng(seed)
    past = rng.gamma(1.0, size=int(rng.integers(1, 600))) * rng.choice([1.0, 5.0])
    threshold = None if seed % 2 else float(np.quantile(past, 0.9))
    one = fit_tails(past[None, :], threshold=threshold)
    run = Tails.from_arrays({k: v.copy() for k, v in one.as_arrays().items()})
    new = rng.gamma(1.0, size=int(rng.integers(300, 600))) * rng.choice([1.0, 3.0, 10.0])
    if seed % 5 == 0:
        new[::7] = np.nan  # no score at some points
    expected = np.full(len(new), np.nan)
    for k in range(len(new)):
        expected[k] = chances(one, new[None, k:k + 1])[0, 0]
        take_in(one, new[None, k:k + 1])
    got, after = chances_along(new, threshold=float(run.threshold[0]), tails=run)
    assert np.array_equal(got, expected, equal_nan=True) and np.isfinite(got).any()
    for name, value in one.as_arrays().items():
        assert np.array_equal(after.as_arrays()[name], value, equal_nan=True), name
