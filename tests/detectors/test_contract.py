"""One suite every detector passes: the contract of ``detectors.base``.

Clone, parameters untouched by fit, NotFittedError, state as plain data through JSON and pickle,
same seed same scores, no look-ahead (scoring a prefix gives the prefix of the scores), and
well-formed hits. Each detector brings a small history and a window with anomalies in it.
"""

from __future__ import annotations

import copy
import importlib
import json
import pickle
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

import detectors
from detectors import (
    Detector,
    DriftDetector,
    IsolationForestDetector,
    NotFittedError,
    SeasonalDetector,
    ThresholdDetector,
)
from tests.detectors.synthetic import index, seasonal_frame, split


@dataclass
class Case:
    make: Callable[[], Detector]
    history: Any
    window: Any
    pointwise: bool = True  # scores one value per window row (drift judges the window whole)
    score_kwargs: dict[str, Any] = field(default_factory=dict)


def seasonal_case() -> Case:
    history, future = split(seasonal_frame(days=4, columns=2), history_days=3)
    window = future.iloc[:80].copy()
    window.iloc[20, 0] += 80
    window.iloc[40:75, 1] = np.nan
    return Case(lambda: SeasonalDetector(flatline_points=20), history, window)


def iforest_case() -> Case:
    rng = np.random.default_rng(0)
    load = rng.uniform(10, 90, 700)
    frame = pd.DataFrame({"requests": load, "cpu": load + rng.normal(0, 2, 700)}, index=index(700))
    window = frame.iloc[600:].copy()
    window.iloc[30] = [85.0, 15.0]
    return Case(lambda: IsolationForestDetector(n_estimators=30, seed=7), frame.iloc[:600], window)


def threshold_case() -> Case:
    values = np.r_[np.full(10, 0.2), [0.9, 0.1, 0.9, 0.9, 0.1, 0.2, 0.95, 0.97, 0.2]]
    frame = pd.DataFrame({"p95": values, "p99": values * 2}, index=index(len(values)))
    return Case(lambda: ThresholdDetector(upper=0.5, for_points=2, of_points=3), frame.iloc[:10], frame.iloc[10:])


def drift_case() -> Case:
    rng = np.random.default_rng(1)
    baseline = {"a": rng.normal(0, 1, 1000), "b": rng.choice(["x", "y"], 1000)}
    window = {"a": pd.Series(rng.normal(1, 1, 500), index=index(500)), "b": rng.choice(["x", "y"], 500, p=[0.9, 0.1])}
    return Case(lambda: DriftDetector(categorical=("b",)), baseline, window, pointwise=False)


def forecast_case() -> Case:
    from detectors.forecast import ForecastDetector

    idx = index(600)
    values = pd.Series(np.sin(np.arange(600) / 10.0), index=idx, name="s")
    values.iloc[500] = 8.0
    return Case(lambda: ForecastDetector(), values.iloc[:400], values.iloc[400:])


def subspace_case() -> Case:
    from detectors.subspace import SubspaceDetector

    rng = np.random.default_rng(3)
    load = np.cumsum(rng.normal(0, 1, 900))
    frame = pd.DataFrame({"cpu": load + rng.normal(0, 0.3, 900), "requests": 2 * load + rng.normal(0, 0.6, 900),
                          "disk": rng.normal(5, 0.2, 900)}, index=index(900))
    window = frame.iloc[800:].copy()
    window.iloc[40, 0] += 9.0  # CPU moves without the requests that drive it
    return Case(lambda: SubspaceDetector(), frame.iloc[:800], window)


def group_case() -> Case:
    from detectors.group import GroupDetector

    rng = np.random.default_rng(5)
    chances = pd.DataFrame(rng.uniform(size=(900, 8)), index=index(900), columns=[f"s{i}" for i in range(8)])
    window = chances.iloc[800:].copy()
    window.iloc[50, :6] = 1e-4  # six of eight series a little unusual at once
    return Case(lambda: GroupDetector(), chances.iloc[:800], window)


CASES = {
    "group": group_case,
    "seasonal": seasonal_case,
    "subspace": subspace_case,
    "iforest": iforest_case,
    "threshold": threshold_case,
    "drift": drift_case,
    "forecast": forecast_case,
}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request) -> Case:
    return CASES[request.param]()


def fitted(case: Case) -> Detector:
    return case.make().fit(copy.deepcopy(case.history))


def twin(detector: Detector) -> Detector:
    return detector.clone().set_state(copy.deepcopy(detector.get_state()))


def assert_same(a, b) -> None:
    if isinstance(a.scores, pd.DataFrame):
        pd.testing.assert_frame_equal(a.scores, b.scores)
    else:
        pd.testing.assert_series_equal(a.scores, b.scores)
    assert repr(a.hits) == repr(b.hits)  # repr: a NaN value (no data) compares equal to itself


def test_every_detector_class_is_covered() -> None:
    classes = set()
    for module in pkgutil.iter_modules(detectors.__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"detectors.{module.name}")
        classes |= {
            obj.name for obj in vars(loaded).values()
            if isinstance(obj, type) and issubclass(obj, Detector) and obj is not Detector
            and obj.__module__ == loaded.__name__
        }
    assert classes == set(CASES)


def test_clone_is_unfitted_with_the_same_params(case: Case) -> None:
    detector = fitted(case)
    clone = detector.clone()
    assert type(clone) is type(detector) and clone is not detector
    assert clone.get_params() == detector.get_params()
    assert not clone.is_fitted and detector.is_fitted


def test_fit_returns_self_and_leaves_params_untouched(case: Case) -> None:
    detector = case.make()
    before = copy.deepcopy(detector.get_params())
    assert detector.fit(copy.deepcopy(case.history)) is detector
    assert detector.get_params() == before


def test_unfitted_detector_raises_not_fitted(case: Case) -> None:
    detector = case.make()
    with pytest.raises(NotFittedError) as err:
        detector.score(case.window, **case.score_kwargs)
    assert str(err.value) == f"{detector.name}: not fitted: call fit(history) first"
    with pytest.raises(NotFittedError):
        detector.get_state()


def _assert_plain(value: Any, path: str = "state") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path}: key {key!r} is not a str"
            _assert_plain(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_plain(item, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{path}: {type(value).__name__}"


def test_state_is_plain_data_and_round_trips_through_json_and_pickle(case: Case) -> None:
    detector = fitted(case)
    state = detector.get_state()
    _assert_plain(state)
    from_json = detector.clone().set_state(json.loads(json.dumps(state)))
    from_pickle = detector.clone().set_state(pickle.loads(pickle.dumps(state)))
    expected = twin(detector).score(case.window, **case.score_kwargs)
    assert expected.hits, "the contract window must contain hits"
    assert_same(expected, from_json.score(case.window, **case.score_kwargs))
    assert_same(expected, from_pickle.score(case.window, **case.score_kwargs))


def test_same_seed_same_scores(case: Case) -> None:
    first = fitted(case).score(case.window, **case.score_kwargs)
    second = fitted(case).score(case.window, **case.score_kwargs)
    assert_same(first, second)


def test_no_look_ahead(case: Case) -> None:
    detector = fitted(case)
    whole = twin(detector).score(case.window, **case.score_kwargs)
    if not case.pointwise:
        # A window is judged whole and scoring leaves nothing behind: the same window, scored
        # after another one, gets the same result.
        again = twin(detector)
        again.score(case.history, ts=pd.Timestamp("2026-01-01", tz="UTC"))
        assert_same(whole, again.score(case.window, **case.score_kwargs))
        return
    for cut in (1, len(case.window) // 3, len(case.window) - 1):
        prefix = twin(detector).score(case.window.iloc[:cut], **case.score_kwargs)
        pd.testing.assert_frame_equal(pd.DataFrame(prefix.scores), pd.DataFrame(whole.scores).iloc[:cut])
        cut_ts = case.window.index[cut]
        assert repr(prefix.hits) == repr([h for h in whole.hits if h.ts < cut_ts])


def test_hits_are_well_formed(case: Case) -> None:
    detector = fitted(case)
    hits = detector.score(case.window, **case.score_kwargs).hits
    assert hits
    for hit in hits:
        assert hit.detector == detector.name
        assert hit.ts.tzinfo is not None and hit.ts.utcoffset() == timezone.utc.utcoffset(None)
        assert hit.series_id and hit.explanation
        assert hit.metric == "" and dict(hit.labels) == {}
        assert isinstance(hit.score, float) and hit.score == hit.score
