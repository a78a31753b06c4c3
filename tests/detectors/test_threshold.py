"""ThresholdDetector: static bounds and N-of-M SLO breaches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors import DetectorError, Direction, ThresholdDetector
from tests.detectors.synthetic import index


def frame(values: dict[str, list[float]], start: int = 0) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame(values, index=index(start + n)[start:])


def test_static_bounds_hit_each_breaching_point_with_direction() -> None:
    detector = ThresholdDetector(lower=10, upper=90).fit()
    result = detector.score(frame({"cpu": [50, 95, 5, np.nan, np.inf]}))
    assert [(h.value, h.direction, h.lower, h.upper) for h in result.hits] == [
        (95.0, Direction.UP, 10, 90),
        (5.0, Direction.DOWN, 10, 90),
    ]
    assert result.hits[1].explanation == "value 5 below the lower bound 10 in 1 of the last 1 points"
    assert result.scores["cpu"].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_slo_fires_for_n_of_the_last_m_points_across_calls() -> None:
    slo = ThresholdDetector(upper=0.5, for_points=3, of_points=5).fit()
    first = slo.score(frame({"p95": [0.6, 0.4, 0.7]}))
    second = slo.score(frame({"p95": [0.3, 0.8, 0.2, 0.1, 0.1]}, start=3))
    assert first.hits == []
    assert [(h.ts, h.value) for h in second.hits] == [(index(5)[4].to_pydatetime(), 0.8)]
    assert second.hits[0].explanation == "value 0.8 above the upper bound 0.5 in 3 of the last 5 points"
    assert second.scores["p95"].tolist() == pytest.approx([2 / 3, 1.0, 2 / 3, 2 / 3, 1 / 3])


def test_history_seeds_the_window_and_columns_are_independent() -> None:
    history = frame({"a": [0.1, 0.9, 0.9], "b": [0.9, 0.1, 0.1]})
    slo = ThresholdDetector(upper=0.5, for_points=3, of_points=3).fit(history)
    result = slo.score(frame({"a": [0.9], "b": [0.9]}, start=3))
    assert [h.series_id for h in result.hits] == ["a"]  # its two breaches before count
    assert result.scores.iloc[0].tolist() == [1.0, pytest.approx(1 / 3)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "threshold: expected a lower or an upper bound, found neither"),
        ({"lower": 5, "upper": 1}, "threshold: expected lower <= upper, found lower=5 upper=1"),
        ({"upper": 1, "for_points": 4, "of_points": 3},
         "threshold: expected 1 <= for_points <= of_points, found for_points=4 of_points=3"),
    ],
)
def test_bad_parameters_are_refused(params, message) -> None:
    with pytest.raises(DetectorError) as err:
        ThresholdDetector(**params).fit()
    assert str(err.value) == message


def test_a_hit_begins_at_the_first_breach_of_its_window_even_one_carried_from_an_earlier_call():
    idx = pd.date_range("2026-01-01", periods=6, freq="10s", tz="UTC")
    values = pd.Series([0.1, 0.9, 0.2, 0.8, 0.9, 0.95], index=idx, name="p95")
    slo = ThresholdDetector(upper=0.5, for_points=3, of_points=4).fit(values.iloc[:2])
    assert slo.score(values.iloc[2:4]).hits == []  # 2 of 4 so far
    restored = ThresholdDetector(upper=0.5, for_points=3, of_points=4).set_state(slo.get_state())
    first, second = restored.score(values.iloc[4:]).hits
    # The window that fired first is 0.9, 0.2, 0.8, 0.9: the outage began at the 0.9 of 10 s,
    # a point the detector saw two calls (and one restore) ago.
    assert (first.ts, first.began_at, first.first_at) == (idx[4], idx[1], idx[1])
    assert (second.ts, second.began_at) == (idx[5], idx[3])
