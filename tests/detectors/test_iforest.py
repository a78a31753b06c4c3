"""IsolationForestDetector: multivariate anomalies, calibration, explanations, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from detectors import DetectorError, IsolationForestDetector
from tests.detectors.synthetic import index


@pytest.fixture(scope="module")
def web() -> pd.DataFrame:
    """Requests drive CPU; memory is independent. 6,000 points at 5 minutes."""
    rng = np.random.default_rng(0)
    n = 6000
    load = rng.uniform(10, 90, n)
    return pd.DataFrame(
        {"requests": load, "cpu": load + rng.normal(0, 2, n), "memory": rng.normal(50, 5, n)}, index=index(n)
    )


@pytest.fixture(scope="module")
def fitted(web) -> IsolationForestDetector:
    return IsolationForestDetector(time_features=False, target_fpr=0.01, seed=1).fit(web.iloc[:5000], entity="web-1")


def test_a_broken_correlation_no_single_series_shows_is_hit_and_explained(fitted, web) -> None:
    odd = pd.DataFrame({"requests": [80.0, 50.0], "cpu": [20.0, 51.0], "memory": [50.0, 50.0]},
                       index=web.index[-2:] + pd.Timedelta("1h"))
    for column in ("requests", "cpu"):  # each value is inside its usual range
        assert web[column].quantile(0.05) < odd[column].iloc[0] < web[column].quantile(0.95)
    result = fitted.score(odd)
    assert [(h.series_id, h.entity, h.ts) for h in result.hits] == [("web-1", "web-1", odd.index[0].to_pydatetime())]
    hit = result.hits[0]
    assert hit.detector == "iforest" and hit.upper == fitted.threshold_ and hit.score > fitted.threshold_
    assert hit.explanation.startswith(f"isolation score {hit.score:.3f} above {fitted.threshold_:.3f} (target FPR 0.01): "
                                      "most unusual ")
    assert "requests 80 (z +" in hit.explanation and "cpu 20 (z -" in hit.explanation
    assert "memory" not in hit.explanation
    assert hit.explanation.endswith("; each is within its usual range, their combination is not")


def test_threshold_is_calibrated_to_the_target_false_positive_rate(fitted, web) -> None:
    fresh = fitted.score(web.iloc[5000:])
    rate = len(fresh.hits) / 1000
    assert 0.001 <= rate <= 0.04  # target 0.01
    assert fresh.scores.name == "web-1" and len(fresh.scores) == 1000


def test_forest_kept_as_arrays_scores_like_scikit_learn(fitted, web) -> None:
    x = web.to_numpy()[:500]
    rotated = fitted._rotate(x)
    forest = IsolationForest(n_estimators=100, random_state=1).fit(fitted._rotate(web.to_numpy()[:5000]))
    inside = np.all(np.abs(rotated) <= fitted.envelope_, axis=1)  # no envelope term there
    assert np.allclose(fitted._scores(x)[inside], -forest.score_samples(rotated)[inside])


def test_far_outside_the_training_range_scores_near_one(fitted, web) -> None:
    far = pd.DataFrame({"requests": [50.0], "cpu": [50.0], "memory": [500.0]}, index=web.index[-1:])
    hit = fitted.score(far).hits[0]
    assert hit.score > 0.99
    assert hit.explanation.split(": most unusual ")[1].startswith("memory 500 (z +")


def test_entity_comes_from_score_then_fit_then_feature_names(fitted, web) -> None:
    odd = pd.DataFrame({"requests": [50.0], "cpu": [50.0], "memory": [500.0]}, index=web.index[-1:])
    assert fitted.score(odd, entity="web-2").hits[0].series_id == "web-2"
    unnamed = IsolationForestDetector(features=["memory", "cpu"], time_features=False).fit(web.iloc[:500])
    assert unnamed.entity_ == "memory,cpu"


def test_time_features_flag_busy_at_an_unusual_hour() -> None:
    n = 14 * 288
    idx = index(n)
    hour = idx.hour.to_numpy()
    rng = np.random.default_rng(4)
    busy = np.where((hour >= 8) & (hour < 20), 80.0, 10.0) + rng.uniform(-3, 3, n)
    detector = IsolationForestDetector(target_fpr=0.005, seed=0).fit(pd.DataFrame({"requests": busy}, index=idx))
    night = pd.DataFrame({"requests": [80.0, 10.0]}, index=pd.DatetimeIndex(["2026-03-16 03:00", "2026-03-16 04:00"], tz="UTC"))
    hits = detector.score(night).hits
    assert [h.ts.hour for h in hits] == [3]
    assert "hour_of_day 3 (z" in hits[0].explanation


def test_missing_values_are_filled_and_an_empty_row_scores_nan(fitted, web) -> None:
    window = pd.DataFrame({"requests": [np.nan, 40.0], "cpu": [np.nan, np.inf], "memory": [np.nan, 50.0]},
                          index=web.index[-2:])
    scores = fitted.score(window).scores
    assert np.isnan(scores.iloc[0]) and 0 < scores.iloc[1] < 1


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (pd.DataFrame({"a": np.ones(49)}, index=index(49)), "iforest: history has 49 rows with data; need at least 50"),
        (pd.DataFrame({"a": np.full(80, np.nan)}, index=index(80)), "iforest: history has 0 rows with data; need at least 50"),
    ],
)
def test_too_little_history_is_refused(history, message) -> None:
    with pytest.raises(DetectorError) as err:
        IsolationForestDetector().fit(history)
    assert str(err.value) == message


def test_constant_features_fit_and_score_without_hits() -> None:
    history = pd.DataFrame({"a": np.ones(300), "b": np.full(300, 2.0)}, index=index(300))
    detector = IsolationForestDetector(time_features=False).fit(history)
    assert detector.score(history.iloc[-5:]).hits == []


def test_missing_feature_in_window_is_refused(fitted, web) -> None:
    with pytest.raises(DetectorError) as err:
        fitted.score(web[["requests", "cpu"]].iloc[:3])
    assert str(err.value) == "iforest: missing feature columns ['memory']; found ['requests', 'cpu']"
