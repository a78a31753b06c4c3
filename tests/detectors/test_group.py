"""The group detector: its chances hold their stated rate on null data, with the group's series
independent or moving together, and it learns point by point as it would in one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from detectors.group import LEVEL, WARM, GroupDetector


def null_chances(points: int, series: int, *, together: float, seed: int) -> pd.DataFrame:
    """Uniform chances (what a calibrated detector gives when nothing is wrong), from normal
    scores that share ``together`` of their variance (a surge that lifts every series)."""
    rng = np.random.default_rng(seed)
    scores = np.sqrt(together) * rng.standard_normal((points, 1)) + np.sqrt(1 - together) * rng.standard_normal(
        (points, series))
    index = pd.date_range("2026-01-01", periods=points, freq="1min", tz="UTC")
    return pd.DataFrame(norm.sf(scores), index=index, columns=[f"s{j}" for j in range(series)])


def streamed_chances(frame: pd.DataFrame, chunk: int = 1000) -> np.ndarray:
    detector = GroupDetector().fit(None, entity="checkout")
    out = []
    for start in range(0, len(frame), chunk):
        window = frame.iloc[start:start + chunk]
        out.append(detector.score(window).chances.to_numpy())
        detector.update(window)
    return np.concatenate(out)


@pytest.mark.parametrize("together", [0.0, 0.5])
def test_chances_hold_their_rate_on_null_data(together: float) -> None:
    chances = streamed_chances(null_chances(20_000, 20, together=together, seed=11))
    judged = chances[np.isfinite(chances)]
    assert len(judged) == 20_000 - WARM
    for level, (low, high) in ((1e-2, (0.75, 1.33)), (1e-3, (0.5, 2.0))):
        rate = np.mean(judged <= level)
        assert low * level <= rate <= high * level, (level, rate)


def test_a_group_gives_no_chance_before_its_first_points_fix_the_tail() -> None:
    frame = null_chances(WARM + 50, 5, together=0.0, seed=2)
    chances = streamed_chances(frame, chunk=7)
    assert np.isnan(chances[:WARM]).all() and np.isfinite(chances[WARM:]).all()


def test_streaming_in_any_chunks_gives_the_same_chances() -> None:
    frame = null_chances(2_000, 6, together=0.3, seed=4)
    np.testing.assert_array_equal(streamed_chances(frame, chunk=1), streamed_chances(frame, chunk=2_000))


def test_a_hit_counts_the_series_beyond_the_level_and_names_the_worst() -> None:
    frame = null_chances(1_200, 10, together=0.0, seed=5)
    frame.iloc[1_100, :7] = LEVEL / np.exp(np.arange(1, 8))  # seven series beyond 2 %, s6 the furthest
    hits = GroupDetector().fit(frame.iloc[:1_000], entity="checkout").score(frame.iloc[1_000:], alarm_chance=1e-4).hits
    assert [h.ts for h in hits] == [frame.index[1_100].to_pydatetime()]
    assert hits[0].entity == "checkout" and hits[0].chance is not None and hits[0].chance <= 1e-4
    assert hits[0].explanation.startswith("7 of its 10 series were beyond their usual 2% at once")
    assert "most off s6 (chance 1.8e-05), s5 (chance 5e-05), s4 (chance 0.00013) and 4 more" in hits[0].explanation
