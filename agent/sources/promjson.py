"""Decoding a query_range answer into arrays without building a Python object per point.

``json.loads`` turns every point into a list, a float and a string (about 150 bytes and most of
the fetch's CPU time). Prometheus writes its answer in one fixed layout, so the fast path reads
the labels with the JSON decoder and hands each ``values`` array to numpy's text parser. Any
answer laid out differently (another key order, whitespace, native histograms) returns None and
the caller decodes it with ``json.loads``: the fast path is an optimisation, never a second parser
that could disagree.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

Series = tuple[dict[str, str], np.ndarray, np.ndarray]

PREFIX = '{"status":"success","data":{"resultType":"matrix","result":['
_METRIC = '{"metric":'
_VALUES = ',"values":['
_DECODER = json.JSONDecoder()


def decode_matrix_fast(text: str) -> tuple[list[Series], list[str]] | None:
    """(labels, timestamps, values) per series and the answer's warnings, or None to fall back."""
    if not text.startswith(PREFIX):
        return None
    pos = len(PREFIX)
    out: list[Series] = []
    if text.startswith("]", pos):
        return out, _warnings(text, pos + 1)
    while True:
        if not text.startswith(_METRIC, pos):
            return None
        labels, pos = _DECODER.raw_decode(text, pos + len(_METRIC))
        if not isinstance(labels, dict) or not text.startswith(_VALUES, pos):
            return None
        start = pos + len(_VALUES)
        if text.startswith("]", start):
            ts = vals = np.empty(0)
            pos = start + 1
        else:
            end = text.find("]]", start)
            if end < 0:
                return None
            parsed = _points(text[start:end + 1])
            if parsed is None:
                return None
            ts, vals = parsed
            pos = end + 2
        if not text.startswith("}", pos):
            return None
        out.append((labels, ts, vals))
        pos += 1
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            return out, _warnings(text, pos + 1)
        else:
            return None


def _points(segment: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``[1700000000,"1.5"],[1700000060,"NaN"]`` → timestamps and values."""
    expected = segment.count("],[") + 1
    flat = np.fromstring(segment.replace('"', "").replace("[", "").replace("]", ""), sep=",")
    if flat.size != 2 * expected:
        return None
    return flat[0::2], flat[1::2].copy()


def _warnings(text: str, pos: int) -> list[str]:
    # what follows the result array: "}" closing data, then perhaps ,"warnings":[...], then "}"
    tail: Any = json.loads('{"data":{' + text[pos:])
    return [str(w) for w in tail.get("warnings") or []]


def decode_matrix_items(result: list[dict]) -> list[Series]:
    """The fallback: ``json.loads``' result items as arrays."""
    out: list[Series] = []
    for item in result:
        points = item.get("values") or []
        ts = np.fromiter((p[0] for p in points), dtype="float64", count=len(points))
        vals = np.array([p[1] for p in points], dtype="float64")
        out.append((dict(item.get("metric") or {}), ts, vals))
    return out
