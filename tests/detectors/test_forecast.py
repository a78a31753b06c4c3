"""ForecastDetector: catches spikes, dips, level shifts and broken daily patterns; quiet on clean
series; causal; chunked scoring equals one pass; state round-trips through JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors.errors import DetectorError, NotFittedError
from detectors.forecast import ForecastDetector

DAY = 288  # 5-minute points


def daily(days: int = 6, noise: float = 0.3, seed: int = 1) -> pd.Series:
    n = days * DAY
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    values = 50 + 20 * np.sin(2 * np.pi * np.arange(n) / DAY) + rng.normal(0, noise, n)
    return pd.Series(values, index=idx, name="cpu")


def one_pass(series: pd.Series, start: int = 3 * DAY, **params) -> pd.Series:
    detector = ForecastDetector(**params).fit(series.iloc[:start])
    return detector.score(series.iloc[start:]).scores


@pytest.mark.parametrize("change", ["spike", "dip", "level_shift", "peak_clipped"])
def test_injected_anomaly_is_flagged_within_two_hours_of_its_start(change):
    series = daily()
    at = 4 * DAY + 20  # on the rising part of day 5's sine
    if change == "spike":
        series.iloc[at] += 30
    elif change == "dip":
        series.iloc[at] -= 30
    elif change == "level_shift":
        series.iloc[at:] += 15
    else:  # day 5's peak is cut off at 52: the daily pattern breaks
        at = 4 * DAY
        series.iloc[at:at + DAY // 2] = np.minimum(series.iloc[at:at + DAY // 2], 52.0)
    scores = one_pass(series)
    offset = at - 3 * DAY
    assert scores.iloc[offset:offset + 24].max() >= 0.52  # the alarm score: beyond its recent errors
    assert scores.iloc[:offset].max() < 0.52


def test_clean_daily_series_raises_no_hits():
    result = ForecastDetector().fit(daily().iloc[:3 * DAY]).score(daily().iloc[3 * DAY:])
    assert result.hits == []
    assert float(result.scores.max()) < 0.52


def test_hit_carries_expectation_and_direction():
    series = daily()
    series.iloc[4 * DAY + 20] += 30
    hits = ForecastDetector().fit(series.iloc[:3 * DAY].rename('cpu{host="a"}')).score(series.iloc[3 * DAY:].rename('cpu{host="a"}')).hits
    assert [h.ts for h in hits] == [series.index[4 * DAY + 20].to_pydatetime()]
    hit = hits[0]
    assert (hit.series_id, hit.detector, hit.direction.value) == ('cpu{host="a"}', "forecast", "up")
    assert hit.expected == series.iloc[4 * DAY + 19]  # the previous value
    assert hit.explanation == (f"value {hit.value:.6g} (previous {hit.expected:.6g}) broke the pattern of "
                               f"the points before it (score {hit.score:.2f}; chance {hit.chance:.2g})")
    assert 0 < hit.chance < 0.01  # a jump of 30 on a smooth day: rarer than any record before it


def test_appending_future_points_changes_no_past_score():
    series = daily()
    detector = ForecastDetector().fit(series.iloc[:3 * DAY])
    short = detector.score(series.iloc[3 * DAY:5 * DAY]).scores
    longer = detector.score(series.iloc[3 * DAY:]).scores
    pd.testing.assert_series_equal(short, longer.iloc[:len(short)])


def test_walk_forward_in_chunks_equals_one_pass_and_update_equals_refit():
    series = daily()
    series.iloc[5 * DAY + 10] += 25
    whole = one_pass(series, start=100)
    pieces, refit = [], ForecastDetector()
    updated = ForecastDetector().fit(series.iloc[:100])
    for start in range(100, len(series), 250):
        chunk = series.iloc[start:start + 250]
        pieces.append(refit.clone().fit(series.iloc[:start]).score(chunk).scores)
        pd.testing.assert_series_equal(updated.score(chunk).scores, pieces[-1])
        updated.update(chunk)
    pd.testing.assert_series_equal(pd.concat(pieces), whole)


def test_state_round_trips_through_json():
    series = daily()
    fitted = ForecastDetector(window_rows=300).fit(series.iloc[:3 * DAY])
    state = json.loads(json.dumps(fitted.get_state()))
    restored = ForecastDetector(window_rows=300).set_state(state)
    pd.testing.assert_series_equal(restored.score(series.iloc[3 * DAY:]).scores,
                                   fitted.score(series.iloc[3 * DAY:]).scores)
    assert fitted.get_params()["window_rows"] == 300


def test_bad_input_gives_scores_or_clear_errors():
    idx = pd.date_range("2024-01-01", periods=400, freq="5min", tz="UTC")
    nan = pd.Series(np.nan, index=idx)
    assert ForecastDetector().fit(nan.iloc[:200]).score(nan.iloc[200:]).scores.eq(0).all()
    flat = pd.Series(3.0, index=idx)
    assert ForecastDetector().fit(flat.iloc[:200]).score(flat.iloc[200:]).scores.eq(0).all()
    broken = flat.copy()
    broken.iloc[300] = np.inf
    broken.iloc[301] = 9.0
    scores = ForecastDetector().fit(broken.iloc[:200]).score(broken.iloc[200:]).scores
    assert scores.iloc[100] == 0.0 and scores.iloc[101] > 0.9  # Inf is a gap; the jump after it is news
    repeated = pd.Series(np.arange(20.0), index=idx[[0] * 5 + list(range(15))])
    assert len(ForecastDetector().fit(repeated.iloc[:10]).score(repeated.iloc[10:]).scores) == 10
    with pytest.raises(NotFittedError, match="forecast: not fitted: call fit"):
        ForecastDetector().score(flat)
    with pytest.raises(DetectorError, match="forecast: duplicate column names \\['a'\\]"):
        ForecastDetector().fit(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"], index=idx[:1]))
    with pytest.raises(DetectorError, match="forecast: expected a DatetimeIndex, found RangeIndex"):
        ForecastDetector().fit(pd.Series([1.0, 2.0]))
    with pytest.raises(DetectorError, match="forecast: window_rows: expected an int >= 100, found 3"):
        ForecastDetector(window_rows=3).fit(flat)


def test_memory_grows_with_the_points_seen():
    detector = ForecastDetector(window_rows=400, memory_share=0.2, max_window_rows=3200)
    seen = np.array([0, 1999, 2000, 4000, 8000, 20000])
    assert detector._window_per_point(seen).tolist() == [400, 400, 400, 800, 1600, 3200]


def test_a_burst_that_recurs_stops_alarming_once_memory_covers_it():
    n = 12_000
    idx = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(5)
    values = 30 + rng.normal(0, 1, n)
    values[np.arange(500, n, 700)] = 90.0  # the same burst every 700 points
    series = pd.Series(values, index=idx)
    def alarms(**params) -> list[int]:
        hits = ForecastDetector(**params).fit(series.iloc[:100]).score(series.iloc[100:]).hits
        return [series.index.get_loc(pd.Timestamp(h.ts)) for h in hits]

    growing, fixed = alarms(), alarms(memory_share=0.0)
    assert 500 in growing and 500 in fixed  # the first burst is news
    assert max(growing) < 7000  # from 5334 points seen, memory (800 and more) spans the bursts
    assert len([r for r in fixed if r > 7000]) >= 5  # a fixed 400-point memory keeps alarming


def test_each_column_of_a_frame_is_judged_as_its_own_series():
    a, b = daily().rename("a"), daily().rename("b") * 3 + 7
    b.iloc[4 * DAY + 200] += 90
    b.iloc[4 * DAY + 20: 4 * DAY + 22] = np.nan  # b misses two scrapes; a does not
    frame = pd.concat([a, b], axis=1)
    together = ForecastDetector().fit(frame.iloc[:3 * DAY]).score(frame.iloc[3 * DAY:])
    for column in ("a", "b"):
        alone = ForecastDetector().fit(frame[column].iloc[:3 * DAY]).score(frame[column].iloc[3 * DAY:])
        np.testing.assert_array_equal(together.scores[column].to_numpy(), alone.scores.to_numpy())
    assert [(h.series_id, h.ts) for h in together.hits] == [("b", b.index[4 * DAY + 200].to_pydatetime())]
    unknown = ForecastDetector().fit(frame[["a"]].iloc[:3 * DAY]).score(frame.iloc[3 * DAY:]).scores
    assert unknown["b"].isna().all() and unknown["a"].notna().all()


@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_point_by_point_scoring_gives_the_numbers_of_one_pass_exactly(chunk):
    """score + update over chunks: the scores a bulk pass over the whole series gives."""
    rng = np.random.default_rng(21)
    n = 9 * DAY
    idx = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    values = 40 + 10 * np.sin(2 * np.pi * np.arange(n) / DAY) + rng.normal(0, 1, n)
    values = values.round(0)  # ties in the errors, as integer counters give
    values[2 * DAY:2 * DAY + 40] = 45.0  # a flat run
    values[[3 * DAY, 5 * DAY + 7, 8 * DAY]] += [30, -25, 60]
    values[6 * DAY:6 * DAY + 300] += 12  # a level shift
    series = pd.Series(values, index=idx, name="s")
    detector = ForecastDetector(window_rows=200, max_window_rows=800)
    bulk = detector._pass(values, detector._periods(300.0)).scores
    streaming = ForecastDetector(window_rows=200, max_window_rows=800).fit(series.iloc[:150])
    got = []
    for start in range(150, n, chunk):
        part = series.iloc[start:start + chunk]
        got.append(streaming.score(part).scores.to_numpy())
        streaming.update(part)
    np.testing.assert_array_equal(np.concatenate(got), bulk[150:])
    assert (bulk[150:] >= 0.52).sum() >= 3


def test_a_season_is_used_only_where_the_period_test_finds_it():
    cycle = daily(days=4, noise=1.0)
    rng = np.random.default_rng(3)
    noise = pd.Series(50 + rng.normal(0, 1.0, len(cycle)), index=cycle.index, name="noise")
    detector = ForecastDetector()
    fitted = detector.fit(pd.concat([cycle, noise], axis=1))
    assert fitted.found_["cpu"].tolist() == [True, False]  # a day found; a week cannot be tested yet
    assert fitted.found_["noise"].tolist() == [False, False]
    periods = detector._periods(300.0)
    for series in (cycle, noise):
        errors = detector._pass(series.to_numpy(), periods).errors
        assert np.isnan(errors[1, :2 * DAY]).all()  # nothing assumed before two days can be tested
        assert np.isfinite(errors[1, 2 * DAY:]).all()
    # where no day is found, the daily row holds the error of the median of the last 144 points
    values = noise.to_numpy()
    errors = detector._pass(values, periods).errors
    at = 3 * DAY + 5
    assert errors[1, at] == pytest.approx(abs(values[at] - np.median(values[at - 144:at])), rel=1e-6)


def test_the_period_test_holds_its_level_on_noise_and_finds_a_weak_cycle():
    from detectors.forecast import periodic_p_value
    rng = np.random.default_rng(8)
    for seasons in (2, 3, 7):
        noise = rng.normal(0, 1, (4000, seasons, 48))
        assert 0.035 <= (periodic_p_value(noise) < 0.05).mean() <= 0.065
        assert 0.035 <= (periodic_p_value(noise.round(0)) < 0.05).mean() <= 0.065  # ties, as counters give
    weak = rng.normal(0, 1, (1000, 7, 48)) + 0.5 * np.sin(2 * np.pi * np.arange(48) / 48)
    assert (periodic_p_value(weak) < 0.05).mean() > 0.85  # a cycle of half the noise, 7 seasons: 89 %
    bursts = weak + 50 * (rng.random(weak.shape) < 0.02)  # 2 % of points in bursts: ranks barely notice
    assert (periodic_p_value(bursts) < 0.05).mean() > 0.75
    flat, same = np.zeros((1, 7, 48)), np.tile(np.arange(48.0), (1, 7, 1))
    missing = rng.normal(0, 1, (1, 7, 48))
    missing[0, 3, 5] = np.nan
    assert periodic_p_value(flat).tolist() == [1.0] and periodic_p_value(same).tolist() == [0.0]
    assert periodic_p_value(missing).tolist() == [1.0]


def test_columns_at_different_places_in_their_seasons_are_judged_as_alone():
    """Columns judged as one array must agree on where their season tests fall: a column with a
    day and 27 points less history (a whole number of its week's buckets, so the buckets agree)
    crosses its quarter days at other points than its neighbour."""
    a = daily(days=8, noise=1.0).rename("a")
    b = (daily(days=8, noise=1.0, seed=2) * 2).rename("b")
    b.iloc[:DAY + 27] = np.nan
    b.iloc[6 * DAY + 3] += 40
    frame = pd.concat([a, b], axis=1)
    together = ForecastDetector().fit(frame.iloc[:3 * DAY])
    alone = {c: ForecastDetector().fit(frame[c].iloc[:3 * DAY]) for c in ("a", "b")}
    for start in range(3 * DAY, len(frame), 50):
        chunk = frame.iloc[start:start + 50]
        scores = together.score(chunk).scores
        together.update(chunk)
        for c in ("a", "b"):
            np.testing.assert_array_equal(scores[c].to_numpy(), alone[c].score(chunk[c]).scores.to_numpy())
            alone[c].update(chunk[c])
    for c in ("a", "b"):  # the state kept too: errors (NaN where not judged), the tests' slots
        np.testing.assert_array_equal(together.errors_[c], alone[c].errors_[c])
        for kept, own in zip(together.older_[c], alone[c].older_[c]):
            np.testing.assert_array_equal(kept, own)
    assert together.found_["a"][0] and together.found_["b"][0]
    assert together.seen_["a"] - together.seen_["b"] == DAY + 27


def test_state_of_an_older_format_is_refused_so_the_series_is_fitted_again():
    state = ForecastDetector().fit(daily(days=1)).get_state()
    del state["found_"]
    with pytest.raises(ValueError, match="state without found_ .*fit again"):
        ForecastDetector().set_state(state)


def test_kept_errors_live_in_one_block_per_group_and_a_series_left_out_takes_its_own_copy():
    """After a fit, a load or a cycle, a group's kept errors are views of one block, freed at once
    when the group moves on; a series that gets no new point in a cycle is copied out of its
    block, so it keeps no other series' errors alive."""
    frame = pd.concat([daily().rename(c) * (i + 1) for i, c in enumerate("abc")], axis=1)
    detector = ForecastDetector().fit(frame.iloc[:3 * DAY])

    def blocks(d: ForecastDetector) -> dict[str, int | None]:
        return {c: None if a.base is None else id(a.base) for c, a in d.errors_.items()}

    fitted = blocks(detector)
    assert None not in fitted.values() and len(set(fitted.values())) == 1
    kept_c = detector.errors_["c"].copy()
    chunk = frame.iloc[3 * DAY:3 * DAY + 5].copy()
    chunk["c"] = np.nan  # c misses this cycle's scrapes
    detector.score(chunk)
    detector.update(chunk)
    cycled = blocks(detector)
    assert cycled["a"] == cycled["b"] is not None and cycled["a"] != fitted["a"]
    assert cycled["c"] is None
    np.testing.assert_array_equal(detector.errors_["c"], kept_c)
    loaded = ForecastDetector().set_state(json.loads(json.dumps(detector.get_state())))
    assert None not in blocks(loaded).values() and len(set(blocks(loaded).values())) == 1
    for c in "abc":
        np.testing.assert_array_equal(loaded.errors_[c], detector.errors_[c])


def test_an_alarm_does_not_silence_a_far_larger_anomaly_an_hour_after_it():
    """A warning, then 60 points later the incident itself (7 times the series' 99.9th
    percentile): inside the warning's quiet span, but an error more than twice any remembered."""
    rng = np.random.default_rng(11)
    values = rng.normal(0, 1, 3000)
    usual = np.quantile(np.abs(values[:2000]), 0.999)
    values[2500] += 2.5 * usual
    values[2560] += 7 * usual
    series = pd.Series(values, index=pd.date_range("2024-01-01", periods=3000, freq="1min", tz="UTC"), name="lat")
    detector = ForecastDetector().fit(series.iloc[:2000])
    result = detector.score(series.iloc[2000:])
    warning, incident = series.index[2500], series.index[2560]
    assert result.scores[warning] >= detector.alarm_score and result.scores[incident] >= detector.alarm_score
    assert {warning, incident} <= {pd.Timestamp(h.ts) for h in result.hits}
    assert result.chances.idxmin() == incident  # the rarest point of the window
    assert result.scores.iloc[565:655].eq(0).all()  # the quiet span after the incident's alarm
