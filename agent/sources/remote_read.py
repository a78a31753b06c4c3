"""Prometheus' remote-read protocol: a plain selector's raw samples, placed on a query_range grid.

``POST /api/v1/read`` takes a snappy-compressed protobuf ``ReadRequest`` and (response type
SAMPLES) answers a snappy-compressed ``ReadResponse`` of raw samples. The server skips PromQL
evaluation and JSON, so the fetch of a plain selector costs a fraction of ``query_range``. What
query_range does for a selector is then done here, the same way: each grid point takes the last
sample at or before it, no older than the lookback delta, and none if that sample is a staleness
marker.

Only the few messages of ``prompb/remote.proto`` and ``types.proto`` the agent uses are declared,
built from descriptors at import (wire-compatible with Prometheus' own; nothing is generated or
downloaded). ``selector(expr)`` parses only the plain ``metric{label="value", ...}`` form; any
other expression returns None and stays with query_range: a second PromQL parser that could
disagree with the server's is not wanted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

import cramjam
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

CONTENT_TYPE = "application/x-protobuf"
# Prometheus marks a series gone (target down, series no longer exported) with this NaN.
STALE_NAN_BITS = np.uint64(0x7FF0000000000002)


class MatchType(IntEnum):
    EQ = 0
    NEQ = 1
    RE = 2
    NRE = 3


_OPS = {"=": MatchType.EQ, "!=": MatchType.NEQ, "=~": MatchType.RE, "!~": MatchType.NRE}


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    name: str
    type: MatchType
    value: str


# -- the messages ------------------------------------------------------------------------------

def _messages() -> dict[str, type]:
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="aiops_prompb_remote.proto", package="prometheus", syntax="proto3")

    def declare(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, type_, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=type_, label=label)
            if type_name:
                field.type_name = type_name

    one, many = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    declare("Label", ("name", 1, F.TYPE_STRING, one, ""), ("value", 2, F.TYPE_STRING, one, ""))
    declare("Sample", ("value", 1, F.TYPE_DOUBLE, one, ""), ("timestamp", 2, F.TYPE_INT64, one, ""))
    declare("TimeSeries", ("labels", 1, F.TYPE_MESSAGE, many, ".prometheus.Label"),
            ("samples", 2, F.TYPE_MESSAGE, many, ".prometheus.Sample"))
    # A TimeSeries read for its labels alone: the samples stay unparsed bytes.
    declare("LabelsOnly", ("labels", 1, F.TYPE_MESSAGE, many, ".prometheus.Label"))
    declare("LabelMatcher", ("type", 1, F.TYPE_INT32, one, ""), ("name", 2, F.TYPE_STRING, one, ""),
            ("value", 3, F.TYPE_STRING, one, ""))
    declare("Query", ("start_timestamp_ms", 1, F.TYPE_INT64, one, ""), ("end_timestamp_ms", 2, F.TYPE_INT64, one, ""),
            ("matchers", 3, F.TYPE_MESSAGE, many, ".prometheus.LabelMatcher"))
    # accepted_response_types is an enum on the wire (SAMPLES = 0): an int32 encodes the same.
    declare("ReadRequest", ("queries", 1, F.TYPE_MESSAGE, many, ".prometheus.Query"),
            ("accepted_response_types", 2, F.TYPE_INT32, many, ""))
    # Each TimeSeries is kept as its wire bytes (the same encoding as a nested message): its
    # samples are read with numpy below instead of becoming one parsed message each.
    declare("QueryResult", ("timeseries", 1, F.TYPE_BYTES, many, ""))
    declare("ReadResponse", ("results", 1, F.TYPE_MESSAGE, many, ".prometheus.QueryResult"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{m.name}"))
            for m in file.message_type}


_MESSAGES = _messages()
ReadRequest = _MESSAGES["ReadRequest"]
ReadResponse = _MESSAGES["ReadResponse"]
TimeSeries = _MESSAGES["TimeSeries"]
_LabelsOnly = _MESSAGES["LabelsOnly"]


class DecodeError(ValueError):
    """The body is not a snappy-compressed ReadResponse."""


def encode_request(matchers: list[Matcher], start_ms: int, end_ms: int) -> bytes:
    """One query over ``[start_ms, end_ms]``, asking for raw samples, snappy-compressed."""
    request = ReadRequest()
    request.accepted_response_types.append(0)  # SAMPLES
    query = request.queries.add(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms)
    for m in matchers:
        query.matchers.add(type=int(m.type), name=m.name, value=m.value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


RawSeries = tuple[dict[str, str], np.ndarray, np.ndarray]  # labels, timestamps (ms, int64), values


def decoded_size(body: bytes) -> int:
    """The size a snappy block says it decompresses to (its leading varint), read without
    decompressing it; 0 when the body is too short to say."""
    size = shift = 0
    for byte in body[:5]:
        size |= (byte & 0x7F) << shift
        if byte < 0x80:
            return size
        shift += 7
    return 0


def decode_response(body: bytes) -> list[RawSeries]:
    """Every series of the first query's result with its raw samples, in the server's order."""
    try:
        raw = cramjam.snappy.decompress_raw(body)
    except Exception as exc:  # cramjam raises its own DecompressionError, not exported by name
        raise DecodeError(f"not snappy-compressed ({exc})") from None
    response = ReadResponse()
    try:
        response.ParseFromString(memoryview(raw))
        del raw
        out: list[RawSeries] = []
        for wire in response.results[0].timeseries if response.results else ():
            labels = _LabelsOnly.FromString(wire).labels
            arrays = _samples_fast(wire, sum(_field_size(label.ByteSize()) for label in labels))
            if arrays is None:
                series = TimeSeries.FromString(wire)
                arrays = (np.fromiter((s.timestamp for s in series.samples), dtype="int64", count=len(series.samples)),
                          np.fromiter((s.value for s in series.samples), dtype="float64", count=len(series.samples)))
            out.append(({label.name: label.value for label in labels}, *arrays))
    except message.DecodeError as exc:
        raise DecodeError(f"not a ReadResponse ({exc})") from None
    return out


def _samples_fast(wire: bytes, labels_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The samples of a TimeSeries read straight off its wire bytes with numpy, or None.

    A parsed message per sample is most of the decode's time and memory. On the wire, after the
    labels, a sample is ``0x12 len 0x09 <8-byte double> 0x10 <varint ms>``: when every sample has
    that one layout and length (the usual case; a 0.0 value, left out by proto3, a timestamp of
    another varint length or any other field breaks it), the bytes form an (n, length) array checked
    byte by byte before it is read. Anything else returns None and protobuf reads the series."""
    rest = np.frombuffer(wire, dtype="uint8", offset=labels_size)
    if len(rest) == 0:
        return np.empty(0, dtype="int64"), np.empty(0, dtype="float64")
    record = int(rest[1]) + 2 if len(rest) > 1 else 0
    if not 13 <= record <= 21 or len(rest) % record:  # varints of 1 to 9 bytes
        return None
    rows = rest.reshape(-1, record)
    varint = rows[:, 12:].astype("uint64")
    ok = ((rows[:, 0] == 0x12).all() and (rows[:, 1] == record - 2).all() and (rows[:, 2] == 0x09).all()
          and (rows[:, 11] == 0x10).all() and (varint[:, :-1] >= 0x80).all() and (varint[:, -1] < 0x80).all())
    if not ok:
        return None
    values = np.ascontiguousarray(rows[:, 3:11]).view("<f8").ravel().astype("float64")
    shifts = np.arange(varint.shape[1], dtype="uint64") * np.uint64(7)
    ts = ((varint & np.uint64(0x7F)) << shifts).sum(axis=1, dtype="uint64").astype("int64")
    return ts, values


def _field_size(payload: int) -> int:
    """Bytes of a length-delimited field with a one-byte tag and ``payload`` bytes."""
    return 1 + max(1, (payload.bit_length() + 6) // 7) + payload


def on_grid(ts_ms: np.ndarray, values: np.ndarray, grid_ms: np.ndarray, lookback_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """query_range's value of a plain selector at each grid point: the last sample at or before it
    and at most ``lookback_ms`` older, none when that sample is a staleness marker. Returns the
    grid points that have a value (ms) and their values."""
    last = np.searchsorted(ts_ms, grid_ms, side="right") - 1
    found = last >= 0
    last = np.where(found, last, 0)
    if len(ts_ms):
        found &= ts_ms[last] >= grid_ms - lookback_ms
        found &= values.view("uint64")[last] != STALE_NAN_BITS
    else:
        found[:] = False
    return grid_ms[found], values[last[found]]


# -- plain selectors ---------------------------------------------------------------------------

_METRIC = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)")
_LABEL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")
# A quoted string with only the escapes that mean the same in PromQL, Go and here.
_STRING = re.compile(r'"((?:[^"\\\n]|\\["\\])*)"|\'((?:[^\'\\\n]|\\[\'\\])*)\'|`([^`]*)`')
_ESCAPE = re.compile(r"\\(.)")
_OPEN = re.compile(r"\s*\{")
_CLOSE = re.compile(r"\s*\}")
_COMMA = re.compile(r"\s*,")
# Words PromQL reads as something other than a metric name when they stand alone.
_NOT_A_METRIC = {"nan", "inf", "on", "by", "without", "ignoring", "group_left", "group_right", "offset", "bool",
                 "and", "or", "unless", "atan2"}


def selector(expr: str) -> list[Matcher] | None:
    """The matchers of ``expr`` when it is a plain instant selector (``up``,
    ``http_requests_total{job="api", code=~"5.."}``), else None."""
    matchers: list[Matcher] = []
    metric = _METRIC.match(expr)
    pos = 0
    if metric:
        if metric.group(1).lower() in _NOT_A_METRIC:
            return None
        matchers.append(Matcher(name="__name__", type=MatchType.EQ, value=metric.group(1)))
        pos = metric.end()
    brace = _OPEN.match(expr, pos)
    if brace:
        pos = brace.end()
        end = _CLOSE.match(expr, pos)
        while not end:
            label = _LABEL.match(expr, pos)
            string = label and _STRING.match(expr, label.end())
            if not string:
                return None
            if label.group(1) == "__name__" and metric:
                return None  # PromQL refuses a metric name set twice
            quoted = next(g for g in string.groups() if g is not None)
            value = quoted if string.group(3) is not None else _ESCAPE.sub(r"\1", quoted)
            matchers.append(Matcher(name=label.group(1), type=_OPS[label.group(2)], value=value))
            end = _CLOSE.match(expr, string.end())
            comma = _COMMA.match(expr, string.end())
            if not end and not comma:
                return None
            pos = comma.end() if comma else pos
            end = end or _CLOSE.match(expr, pos)
        pos = end.end()
    if expr[pos:].strip() or not matchers:
        return None
    # PromQL refuses a selector whose every matcher matches the empty label: query_range says so.
    if not any(m.type == MatchType.EQ and m.value for m in matchers):
        return None
    return matchers
