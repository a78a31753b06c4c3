"""SeasonalDetector on synthetic series with known anomalies."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from detectors import DetectorError, Direction, SeasonalDetector
from tests.detectors.synthetic import DAY, index, seasonal_frame, split


@pytest.fixture(scope="module")
def fitted() -> tuple[SeasonalDetector, pd.DataFrame]:
    history, future = split(seasonal_frame(days=5), history_days=4)
    return SeasonalDetector().fit(history), future


def fresh(fitted) -> tuple[SeasonalDetector, pd.DataFrame]:
    detector, future = fitted
    return detector.clone().set_state(detector.get_state()), future.copy()


def test_daily_period_is_detected_and_noise_gets_none() -> None:
    frame = seasonal_frame(days=4, columns=2)
    frame["noise"] = 50 + np.random.default_rng(3).uniform(-1, 1, len(frame))
    detector = SeasonalDetector().fit(frame)
    assert detector.periods_ == {"s0": [86400.0], "s1": [86400.0], "noise": []}
    assert detector.width_s_ == 300.0


def test_weekly_period_is_added_when_weekends_differ() -> None:
    n = 21 * 24  # three weeks of hourly points
    idx = index(n, step=pd.Timedelta("1h"))
    daily = 10 * np.sin(2 * np.pi * np.arange(n) / 24)
    weekend = np.where(idx.day_of_week >= 5, -30.0, 0.0)
    series = pd.Series(100 + daily + weekend + np.random.default_rng(0).uniform(-1, 1, n), index=idx, name="web")
    assert SeasonalDetector().fit(series).periods_ == {"web": [86400.0, 604800.0]}


def test_no_hits_on_clean_seasonal_series(fitted) -> None:
    detector, future = fresh(fitted)
    result = detector.score(future)
    assert result.hits == []
    assert result.scores.shape == future.shape
    assert float(result.scores.max().max()) < 3.5  # noise is bounded: z stays well below 4


def test_spike_is_hit_with_expectation_and_bounds(fitted) -> None:
    detector, future = fresh(fitted)
    at = future.index[100]
    truth = future.loc[at, "s1"]
    future.loc[at, "s1"] = truth + 60
    hits = detector.score(future).hits
    assert [(h.series_id, h.ts, h.direction) for h in hits] == [("s1", at.to_pydatetime(), Direction.UP)]
    hit = hits[0]
    assert hit.detector == "seasonal"
    assert abs(hit.expected - truth) < 2.0
    assert hit.lower < hit.expected < hit.upper < hit.value
    z = (hit.value - hit.expected) / detector.scale_[1]
    assert hit.explanation == (
        f"value {hit.value:.4g} vs expected {hit.expected:.4g} ({hit.value / hit.expected:.1f}x), robust z {z:+.1f}"
    )


def test_dip_is_hit_downwards_and_direction_up_ignores_it(fitted) -> None:
    detector, future = fresh(fitted)
    up_only = SeasonalDetector(direction="up").set_state(detector.get_state())
    at = future.index[50]
    future.loc[at, "s0"] -= 50
    hits = detector.score(future).hits
    assert [(h.series_id, h.ts, h.direction) for h in hits] == [("s0", at.to_pydatetime(), Direction.DOWN)]
    assert up_only.score(future).hits == []


def test_level_shift_below_the_point_threshold_is_caught_by_cusum(fitted) -> None:
    detector, future = fresh(fitted)
    detector.set_params(min_rel_dev=0.0)  # the shift is small in relative terms too
    shift = 3.0 * detector.scale_[0]  # z about 3: no single point crosses 4
    future.iloc[60:, 0] += shift
    hits = detector.score(future).hits
    assert hits, "a sustained shift must be hit"
    assert {(h.series_id, h.direction) for h in hits} == {("s0", Direction.UP)}
    shifts = [h for h in hits if h.explanation.endswith("(level shift)")]
    assert shifts and shifts[0].explanation.startswith("sustained rise: value ")
    delay = future.index.get_loc(pd.Timestamp(shifts[0].ts)) - 60
    assert 0 <= delay <= 12


def test_broken_seasonal_pattern_is_hit(fitted) -> None:
    detector, future = fresh(fitted)
    peak = slice(DAY // 8, 3 * DAY // 8)  # around the daily maximum the peak does not come
    future.iloc[peak, 2] = 300.0 + np.random.default_rng(5).uniform(-1, 1, DAY // 4)
    hits = detector.score(future).hits
    assert hits and {(h.series_id, h.direction) for h in hits} == {("s2", Direction.DOWN)}


def test_flatline_and_stopped_signal(fitted) -> None:
    detector, future = fresh(fitted)
    future.iloc[10:50, 0] = 123.0
    future.iloc[10:50, 1] = np.nan
    hits = detector.score(future).hits
    stuck = [h for h in hits if h.series_id == "s0" and "stuck" in h.explanation]
    gone = [h for h in hits if h.series_id == "s1"]
    assert [h.ts for h in stuck] == [future.index[39].to_pydatetime()]
    assert stuck[0].explanation == "value stuck at 123 for 30 points (longest run in history 1)"
    assert [h.ts for h in gone] == [future.index[39].to_pydatetime()]
    assert gone[0].explanation == "no data for 30 points in a row (history had data 100.0% of the time)"


def test_small_relative_deviation_does_not_page() -> None:
    idx = index(3 * DAY)
    calm = pd.Series(1000 + np.random.default_rng(0).uniform(-0.01, 0.01, len(idx)), index=idx, name="calm")
    detector = SeasonalDetector().fit(calm)
    new = pd.Series([1030.0, 1100.0], index=idx[-1] + pd.to_timedelta([5, 10], "min"), name="calm")
    hits = detector.score(new).hits
    assert [h.value for h in hits] == [1100.0]  # 3% off is below min_rel_dev=5%, 10% is not


def test_streaming_in_pieces_equals_one_window(fitted) -> None:
    whole, future = fresh(fitted)
    pieces, _ = fresh(fitted)
    future.iloc[60:, 0] += 3.0 * whole.scale_[0]
    future.iloc[100:140, 1] = np.nan
    one = whole.score(future)
    parts = [pieces.score(future.iloc[i:i + 7]) for i in range(0, len(future), 7)]
    pd.testing.assert_frame_equal(one.scores, pd.concat([p.scores for p in parts]))
    assert one.hits  # the shift and the gap are found either way
    assert repr(one.hits) == repr([h for p in parts for h in p.hits])  # repr: NaN values compare equal


def test_rescoring_an_overlap_does_not_advance_counters(fitted) -> None:
    detector, future = fresh(fitted)
    future.iloc[:, 1] = np.nan
    first = detector.score(future.iloc[:20])
    again = detector.score(future.iloc[:20])
    assert first.scores["s1"].iloc[-1] == pytest.approx(4.0 * 20 / 30)
    assert again.scores["s1"].isna().all()  # judged as points again: a gap has no point score
    pd.testing.assert_frame_equal(first.scores[["s0", "s2"]], again.scores[["s0", "s2"]])
    assert detector.missing_run_[1] == 20


def test_history_shorter_than_one_period_falls_back_to_level_and_trend() -> None:
    idx = index(100)
    series = pd.Series(50 + np.random.default_rng(1).uniform(-1, 1, 100), index=idx, name="young")
    detector = SeasonalDetector(periods=["1D"]).fit(series)
    assert detector.periods_ == {"young": []}
    assert abs(detector.level_[0] - 50) < 0.5
    new = pd.Series([50.5, 80.0], index=idx[-1] + pd.to_timedelta([5, 10], "min"), name="young")
    assert [h.value for h in detector.score(new).hits] == [80.0]


def test_constant_series_hits_on_any_real_change() -> None:
    idx = index(2 * DAY)
    detector = SeasonalDetector().fit(pd.Series(7.0, index=idx, name="c"))
    new = pd.Series([7.0, 9.0], index=idx[-1] + pd.to_timedelta([5, 10], "min"), name="c")
    result = detector.score(new)
    assert [h.value for h in result.hits] == [9.0]
    assert result.hits[0].explanation == "value 9 vs expected 7 (1.3x), robust z beyond +1000"
    assert result.scores["c"].iloc[0] == 0.0  # always constant: staying constant is no flatline


def test_all_nan_history_is_refused() -> None:
    frame = pd.DataFrame({"a": np.nan, "b": np.inf}, index=index(50))
    with pytest.raises(DetectorError) as err:
        SeasonalDetector().fit(frame)
    assert str(err.value) == "seasonal: history has no finite values (all NaN or Inf)"


def test_an_all_nan_column_scores_nan_and_unknown_columns_too(fitted) -> None:
    history = seasonal_frame(days=3, columns=1)
    history["dead"] = np.nan
    detector = SeasonalDetector().fit(history)
    new = pd.DataFrame({"s0": [110.0], "dead": [5.0], "other": [1.0]}, index=[history.index[-1] + pd.Timedelta("5min")])
    scores = detector.score(new).scores
    assert list(scores.columns) == ["s0", "dead", "other"]
    assert scores[["dead", "other"]].isna().all().all()


def test_duplicate_timestamps_are_refused() -> None:
    idx = index(10).append(index(1))
    with pytest.raises(DetectorError) as err:
        SeasonalDetector().fit(pd.Series(1.0, index=idx, name="d"))
    assert str(err.value) == (
        "seasonal: history: 1 duplicate timestamps (first 2026-03-02T00:00:00+00:00); "
        "aggregate them before fitting or scoring"
    )


def test_irregular_unsorted_timestamps_and_inf_are_handled() -> None:
    rng = np.random.default_rng(2)
    frame = seasonal_frame(days=3, columns=1)
    jitter = pd.to_timedelta(rng.integers(0, 120, len(frame)), "s")
    frame.index = frame.index + jitter
    frame.iloc[5, 0] = np.inf
    shuffled = frame.sample(frac=1.0, random_state=1)
    detector = SeasonalDetector().fit(shuffled)
    assert detector.periods_ == {"s0": [86400.0]}
    new = pd.Series([np.inf, 500.0], index=frame.index[-1] + pd.to_timedelta([5, 10], "min"), name="s0")
    result = detector.score(new)
    assert result.scores["s0"].iloc[0] == pytest.approx(4.0 / 30)  # a gap: 1 of 30 towards "stopped"
    assert [h.value for h in result.hits] == [500.0]


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (pd.Series([1.0, 2.0]), "seasonal: history: expected a DatetimeIndex, found RangeIndex"),
        ([1.0, 2.0], "seasonal: history: expected a pandas DataFrame or Series, found list"),
        (pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")), "seasonal: history is empty: expected at least one row and one column"),
    ],
)
def test_unusable_history_gets_a_clear_error(history, message) -> None:
    with pytest.raises(DetectorError) as err:
        SeasonalDetector().fit(history)
    assert str(err.value) == message


def test_bad_parameters_get_a_clear_error() -> None:
    frame = seasonal_frame(days=1, columns=1)
    with pytest.raises(DetectorError) as err:
        SeasonalDetector(direction="sideways").fit(frame)
    assert str(err.value) == "seasonal: direction: expected up, down or both, found 'sideways'"
    with pytest.raises(DetectorError) as err:
        SeasonalDetector(periods=["daily"]).fit(frame)
    assert str(err.value) == "seasonal: periods: expected seconds or a duration like '5min', found 'daily'"
    assert re.match(r"SeasonalDetector\(periods=None, direction='both'", repr(SeasonalDetector()))
