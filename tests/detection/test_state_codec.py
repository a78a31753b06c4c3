"""Fitted state in the store is plain data: a row someone else wrote (a shared PostgreSQL store's
table is writable by whoever holds its role) can make the agent refit, never run code."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from agent.detection.codec import StateFormatError, decode_state, encode_state
from agent.store import Store
from tests.detection.conftest import T0, cycle_at, detect, minutes, samples, seasonal_values
from tests.detection.test_stage import DAY, NODE, SEASONAL, WEB, value


class Payload:
    """A pickle that touches ``marker`` when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_row_is_never_unpickled_and_its_detector_is_refitted(make_ctx, tmp_path, caplog):
    web, node = seasonal_values(2 * DAY + 1, seed=1), seasonal_values(2 * DAY + 1, seed=2)
    first = make_ctx(SEASONAL)
    detect(first, cycle_at(T0, samples([(WEB, web[:-1]), (NODE, node[:-1])], end=T0)))
    keys = [s.key for s in first.store.load_fitted_states()]
    first.store.close()
    proof, marker = tmp_path / "the-payload-works", tmp_path / "ran-in-the-agent"
    pickle.loads(pickle.dumps(Payload(proof)))
    assert proof.exists()  # the row below would run code in whoever unpickles it
    crafted = b"\x02" + pickle.dumps(Payload(marker))
    store = Store(tmp_path / "state" / "aiops.db")
    with store.transaction() as conn:
        conn.execute("UPDATE detector_state SET state = ?", (crafted,))
    store.close()

    restarted = make_ctx(SEASONAL)
    with caplog.at_level(logging.WARNING, logger="agent.detection.engine"):
        detect(restarted, cycle_at(T0 + minutes(1), samples([(WEB, web), (NODE, node)], end=T0 + minutes(1))))

    assert not marker.exists()
    unusable = [r.getMessage() for r in caplog.records if "event=detect.state_unusable" in r.getMessage()]
    assert len(unusable) == len(keys) >= 1
    assert all('error="detector state format 2 (a pickle from an earlier agent) is not read; the detector is '
               'refitted"' in line for line in unusable)
    assert value(restarted, "aiops_detector_refits_total", detector="seasonal") == len(keys)
    assert {s.key: s.state[:1] for s in restarted.store.load_fitted_states()} == dict.fromkeys(keys, b"\x03")


def blob(nodes: object, payload: bytes = b"") -> bytes:
    text = json.dumps({"state": {"level_": nodes}}).encode()
    return b"\x03" + len(text).to_bytes(4, "big") + text + payload


@pytest.mark.parametrize(("stored", "problem"), [
    (blob({"ndarray": "|O", "shape": [1], "at": 0, "nbytes": 8}, b"\0" * 8),
     "expected a numeric dtype in detector state, found '|O'"),
    (blob({"ndarray": [["a", "O"]], "shape": [1], "at": 0, "nbytes": 8}, b"\0" * 8),
     "expected a numeric dtype in detector state, found \"[['a', 'O']]\""),
    (blob({"ndarray": "V8", "shape": [1], "at": 0, "nbytes": 8}, b"\0" * 8),
     "expected a numeric dtype in detector state, found '|V8'"),
    (blob({"ndarray": "<f8", "shape": [2], "at": 0, "nbytes": 8}, b"\0" * 8),
     "an array of shape [2] and dtype <f8 does not fit its 8 bytes at 0 of 8"),
    (blob({"ndarray": "<f8", "shape": [1], "at": 4, "nbytes": 8}, b"\0" * 8),
     "an array of shape [1] and dtype <f8 does not fit its 8 bytes at 4 of 8"),
    (blob({"ndarray": "<f8", "shape": [-1], "at": 0, "nbytes": 8}, b"\0" * 8),
     "expected an array's shape, offset and size as non-negative integers in detector state"),
    (b"\x03\x00\x00\x10\x00{", "expected 4096 bytes of JSON in detector state, found 1"),
    (b"\x01" + pickle.dumps({"level_": 1.0}), "detector state format 1 (a pickle from an earlier agent) is not read; "
                                             "the detector is refitted"),
], ids=["object", "structured", "void", "short", "past-the-end", "negative-shape", "cut-json", "pickle"])
def test_a_crafted_row_is_refused_with_what_is_wrong(stored, problem):
    with pytest.raises(StateFormatError) as refused:
        decode_state(stored)
    assert str(refused.value) == problem


def test_numbers_arrays_and_text_come_back_as_they_went():
    state = {"level_": np.arange(100.0).tolist(), "names_": ["a", "b"], "n_": 3, "nan_": float("nan"),
             "big_": {"ndarray": "<f8", "shape": [2, 50], "base64": _b64(np.arange(100.0).reshape(2, 50))},
             "flags_": {"ndarray": "|b1", "shape": [3], "data": [True, False, True]}}
    back = decode_state(encode_state(state))
    assert np.isnan(back.pop("nan_")) and back == {k: v for k, v in state.items() if k != "nan_"}


def _b64(array: np.ndarray) -> str:
    import base64

    return base64.b64encode(array.astype("<f8").tobytes()).decode("ascii")


def test_migration_21_deletes_the_pickled_rows_of_earlier_agents(tmp_path):
    path = tmp_path / "aiops.db"
    store = Store(path)
    with store.transaction() as conn:
        for key, state in (("old-1", b"\x01" + pickle.dumps({})), ("old-2", b"\x02" + pickle.dumps({})),
                           ("new", encode_state({"level_": 1.0}))):
            conn.execute("INSERT INTO detector_state (key, detector, subject, params, state, fitted_at) "
                         "VALUES (?, 'seasonal', ?, '{}', ?, 0)", (key, key, state))
        conn.execute("DELETE FROM migrations WHERE number = 21")  # as a store of an earlier agent
    store.close()

    reopened = Store(path)
    assert [s.subject for s in reopened.load_fitted_states()] == ["new"]
    reopened.close()
