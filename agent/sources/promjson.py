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
from collections.abc import Callable
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


class LayoutError(ValueError):
    """The answer does not begin as Prometheus writes one: read it whole instead (bounded)."""


class TooLarge(ValueError):
    """One series of the answer is larger than a series can be."""


class MatrixStream:
    """A query_range answer read piece by piece as it arrives, so memory holds one series' text
    and the series kept, never the whole answer (500,000 series are about a gigabyte of JSON).

    ``keep(labels)`` is asked for each series as soon as its labels are read; a series it refuses
    is stepped over without parsing its points and counted in ``skipped`` (the source's
    ``series_limit``, applied while reading). Items are read by the fast path's layout, one that
    differs (other key order, whitespace, a histogram) by the JSON decoder, one item at a time. An
    answer whose beginning differs (an error, an HTML page) raises ``LayoutError`` from ``feed``
    before anything was taken from it: the caller reads it whole, bounded.
    """

    def __init__(self, keep: Callable[[dict[str, str]], bool], *, max_series_chars: int) -> None:
        self.keep = keep
        self.max_series_chars = max_series_chars
        self.series: list[Series] = []
        self.skipped = 0
        self._buf = ""
        self._pos = 0
        self._started = False
        self._tail: str | None = None  # what follows the result array, once reached

    def feed(self, text: str) -> None:
        if self._tail is not None:  # the result has ended: the rest is "}" and perhaps warnings
            self._tail += text
            if len(self._tail) > self.max_series_chars:
                raise TooLarge(f"more than {self.max_series_chars} characters after the result")
            return
        self._buf += text
        if not self._started:
            if len(self._buf) < len(PREFIX):
                if not PREFIX.startswith(self._buf):
                    raise LayoutError("not Prometheus' layout")
                return
            if not self._buf.startswith(PREFIX):
                raise LayoutError("not Prometheus' layout")
            self._started, self._pos = True, len(PREFIX)
        while self._tail is None and self._item():
            pass
        if self._tail is None and self._pos:  # drop what was read: the buffer holds one item at most
            self._buf, self._pos = self._buf[self._pos:], 0
        if self._tail is None and len(self._buf) - self._pos > self.max_series_chars:
            raise TooLarge(f"a series of more than {self.max_series_chars} characters")

    @property
    def pending(self) -> str:
        """The text received and not yet taken: all of it, when ``feed`` raised LayoutError."""
        return self._buf[self._pos:]

    def finish(self) -> list[str]:
        """The answer's warnings; ValueError when it ended before its last series did."""
        if self._tail is None:
            raise ValueError("the answer ended inside its result")
        return _warnings(self._tail, 0)

    def _item(self) -> bool:
        """Reads the next item (or the end of the result) if it is all there; False to wait."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return False
        if buf[pos] == ",":
            pos = self._pos = pos + 1
        if buf.startswith("]", pos):
            self._tail = buf[pos + 1:]
            return False
        read = self._fast(buf, pos)
        if read is None:
            read = self._decoded(buf, pos)
        if read is None:
            return False
        self._pos = read
        return True

    def _fast(self, buf: str, pos: int) -> int | None:
        if not buf.startswith(_METRIC, pos):
            return None
        try:
            labels, at = _DECODER.raw_decode(buf, pos + len(_METRIC))
        except ValueError:
            return None
        if not isinstance(labels, dict) or not buf.startswith(_VALUES, at):
            return None
        start = at + len(_VALUES)
        end = start if buf.startswith("]", start) else buf.find("]]", start)
        if end < 0:
            return None
        close = end + (1 if end == start else 2)
        if not buf.startswith("}", close):
            return None
        if not self.keep(labels):
            self.skipped += 1
        elif end == start:
            self.series.append((labels, np.empty(0), np.empty(0)))
        else:
            parsed = _points(buf[start:end + 1])
            if parsed is None:  # points in another form: the JSON decoder reads this one
                item, _ = _DECODER.raw_decode(buf, pos)
                self.series += decode_matrix_items([item])
            else:
                self.series.append((labels, *parsed))
        return close + 1

    def _decoded(self, buf: str, pos: int) -> int | None:
        try:
            item, end = _DECODER.raw_decode(buf, pos)
        except ValueError:
            return None  # not all there yet (or not JSON: finish() or the size bound says so)
        if not isinstance(item, dict):
            raise ValueError(f"expected a series object, found {type(item).__name__}")
        if self.keep(dict(item.get("metric") or {})):
            self.series += decode_matrix_items([item])
        else:
            self.skipped += 1
        return end
