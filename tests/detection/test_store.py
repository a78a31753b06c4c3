"""DetectorStateStore on a real SQLite file: fitted state, baselines, audit entries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.detection.codec import StateFormatError, decode_state, encode_state
from agent.store import Store
from agent.store.detectors import Baseline, FittedState
from detectors._state import unplain
from tests.detection.conftest import T0, minutes


def state(subject: str, at=T0, points: int = 10) -> FittedState:
    return FittedState(detector="seasonal", subject=subject, params={"fingerprint": "f", "columns": ["a"]},
                       state=encode_state({"level_": np.arange(3.0)}), fitted_at=at, points=points)


def test_fitted_states_replace_by_detector_and_subject_with_one_audit_entry_per_batch(store: Store, tmp_path):
    store.save_fitted_states([state("slice-0001"), state("slice-0002")], now=T0)
    store.save_fitted_states([state("slice-0001", at=T0 + minutes(5), points=12)], now=T0 + minutes(5))

    reopened = Store(tmp_path / "aiops.db")
    loaded = {s.subject: s for s in reopened.load_fitted_states()}
    assert sorted(loaded) == ["slice-0001", "slice-0002"]
    assert (loaded["slice-0001"].fitted_at, loaded["slice-0001"].points) == (T0 + minutes(5), 12)
    assert unplain(decode_state(loaded["slice-0002"].state))["level_"].tolist() == [0.0, 1.0, 2.0]
    assert reopened.fitted_state("seasonal", "slice-0002") == loaded["slice-0002"]
    entries = [(e.action, dict(e.details)) for e in reopened.audit_entries()]
    assert entries[-2:] == [("detector.fitted", {"fitted": {"seasonal": 2}, "subjects": 2}),
                            ("detector.fitted", {"fitted": {"seasonal": 1}, "subjects": 1})]
    reopened.close()


def test_the_newest_baseline_of_a_model_wins(store: Store):
    for day in (1, 2):
        store.save_baseline(Baseline(model="fraud", from_at=T0, to_at=T0 + minutes(day), created_by="cli:ops",
                                     created_at=T0 + minutes(10 * day), data={"features": {"x": {"le": ["inf"]}}}))
    latest = store.latest_baseline("fraud")
    assert (latest.id, latest.to_at, latest.created_by) == (2, T0 + minutes(2), "cli:ops")
    assert store.latest_baseline("churn") is None


def test_state_in_an_unknown_format_is_refused():
    with pytest.raises(StateFormatError, match=r"expected detector state format 3, found b'\{'"):
        decode_state(b'{"json": 1}')


def test_arrays_are_stored_as_bytes_and_come_back_as_the_detector_gave_them():
    import pickle

    from detectors.forecast import ForecastDetector

    idx = pd.date_range("2024-01-01", periods=600, freq="5min", tz="UTC")
    series = pd.Series(np.sin(np.arange(600) / 10.0), index=idx, name="cpu")
    detector = ForecastDetector().fit(series.iloc[:500])
    state = detector.get_state()
    blob = encode_state(state)
    assert blob[:1] == b"\x03" and b"pickle" not in blob
    assert decode_state(blob) == state
    assert len(blob) < 0.8 * len(pickle.dumps(state))  # base64 text would cost a third more
    restored = ForecastDetector().set_state(decode_state(blob))
    pd.testing.assert_series_equal(restored.score(series.iloc[500:]).scores, detector.score(series.iloc[500:]).scores)
