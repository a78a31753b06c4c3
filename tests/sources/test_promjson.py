"""The fast query_range decoder agrees with json.loads, and steps aside when the layout differs."""

from __future__ import annotations

import json

import numpy as np

from agent.sources.promjson import decode_matrix_fast, decode_matrix_items


def compact(result: list[dict], warnings: list[str] | None = None) -> str:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    if warnings:
        body["warnings"] = warnings
    return json.dumps(body, separators=(",", ":"))


RESULT = [
    {"metric": {"__name__": "up", "path": 'odd "]],[" label \\ value'}, "values": [[1700000000, "1"], [1700000060.5, "NaN"]]},
    {"metric": {}, "values": []},
    {"metric": {"le": "+Inf"}, "values": [[1700000000, "+Inf"], [1700000060, "-2.5e-3"]]},
]


def test_fast_path_matches_json_loads_point_for_point():
    fast, warnings = decode_matrix_fast(compact(RESULT, ["partial response"]))
    slow = decode_matrix_items(RESULT)
    assert warnings == ["partial response"]
    assert [labels for labels, _, _ in fast] == [labels for labels, _, _ in slow]
    for (_, ts_f, v_f), (_, ts_s, v_s) in zip(fast, slow):
        np.testing.assert_array_equal(ts_f, ts_s)
        np.testing.assert_array_equal(v_f, v_s)


def test_other_layouts_fall_back():
    assert decode_matrix_fast(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})) is None
    reordered = compact(RESULT).replace('{"metric":{},"values":[]}', '{"values":[],"metric":{}}')
    assert decode_matrix_fast(reordered) is None
    with_histograms = compact([{"metric": {}, "values": [[1, "1"]], "histograms": []}])
    assert decode_matrix_fast(with_histograms) is None
    assert decode_matrix_fast(compact([])) == ([], [])
