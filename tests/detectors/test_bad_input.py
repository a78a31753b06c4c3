"""Bad input to every frame-level detector: a clear result or a clear DetectorError, never a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors import Detector, DetectorError, IsolationForestDetector, SeasonalDetector, ThresholdDetector
from tests.detectors.synthetic import index

MAKERS = {
    "seasonal": lambda: SeasonalDetector(),
    "iforest": lambda: IsolationForestDetector(n_estimators=20, time_features=False),
    "threshold": lambda: ThresholdDetector(upper=150.0),
}


def history(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": 100 + rng.uniform(-1, 1, n), "b": 50 + rng.uniform(-1, 1, n)}, index=index(n))


@pytest.fixture(params=sorted(MAKERS))
def make(request):
    return MAKERS[request.param]


def test_duplicate_timestamps_are_refused_with_the_first_one_named(make) -> None:
    frame = history()
    frame.index = frame.index[:1].append(frame.index[:-1])
    detector: Detector = make()
    with pytest.raises(DetectorError) as err:
        detector.fit(frame)
    assert str(err.value) == (
        f"{detector.name}: history: 1 duplicate timestamps (first 2026-03-02T00:00:00+00:00); "
        "aggregate them before fitting or scoring"
    )


def test_irregular_timestamps_and_inf_are_scored(make) -> None:
    frame = history()
    frame.index = frame.index + pd.to_timedelta(np.random.default_rng(1).integers(0, 200, len(frame)), "s")
    detector = make().fit(frame.iloc[:300])
    window = frame.iloc[300:].copy()
    window.iloc[5, 0] = np.inf
    window.iloc[7, 0] = 1000.0
    result = detector.score(window)
    assert len(result.scores) == 100
    assert window.index[7].to_pydatetime() in {h.ts for h in result.hits}
    assert window.index[5].to_pydatetime() not in {h.ts for h in result.hits}


def test_a_window_without_a_datetime_index_is_refused(make) -> None:
    detector = make().fit(history())
    with pytest.raises(DetectorError) as err:
        detector.score(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert str(err.value) == f"{detector.name}: window: expected a DatetimeIndex, found RangeIndex"


def test_non_numeric_values_are_refused(make) -> None:
    frame = history().astype(object)
    frame.iloc[3, 0] = "n/a"
    with pytest.raises(DetectorError) as err:
        make().fit(frame)
    assert str(err.value).endswith("history: values must be numeric (could not convert string to float: 'n/a')")
