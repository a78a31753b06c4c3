"""Fitted detector state to bytes and back, for the ``detector_state`` table: plain data only.

A detector's ``get_state()`` is plain data (``detectors._state``): dicts, lists, strings, numbers,
and numeric arrays as ``{"ndarray": dtype, "shape": [...], "base64": ...}``. That is all a stored
row may hold, so reading one back runs no code whatever the row says: in a shared PostgreSQL
store (docs/fleet.md) whoever can write the table must not thereby run code in every agent.

Format 3, the one written::

    b"\\x03" | 4-byte big-endian length N | N bytes of JSON {"state": ...} | the arrays' bytes

In the JSON an array is ``{"ndarray": dtype, "shape": [...], "at": offset, "nbytes": n}``, its
little-endian bytes at ``offset`` of the part after the JSON (stored raw: as base64 text they
would cost a third more). Reading checks every array against its own description: a numeric
dtype (bool, int, unsigned, float), a shape that accounts for exactly its bytes, and bytes inside
the blob; anything else is a ``StateFormatError``. Earlier agents wrote formats 1 and 2, pickles:
those are refused unread (``StateFormatError``) and the detector is refitted, and migration 21
deletes such rows.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors._state import plain

FORMAT = 3
_PICKLED = (1, 2)
_HEAD = 4  # bytes of the JSON's length
_NUMERIC = "biuf"  # bool, signed, unsigned, float: dtypes that hold nothing but their bytes


class StateFormatError(ValueError):
    """Stored state is not in a format this agent reads (or not consistent with itself)."""


def encode_state(state: Mapping[str, Any]) -> bytes:
    """``state`` as ``get_state`` gives it (numpy arrays and scalars are made plain first)."""
    payload: list[bytes] = []
    tree = _out(plain(dict(state)), payload, [0])
    text = json.dumps({"state": tree}, separators=(",", ":")).encode("utf-8")
    return bytes([FORMAT]) + len(text).to_bytes(_HEAD, "big") + text + b"".join(payload)


def decode_state(blob: bytes) -> dict[str, Any]:
    """The plain data ``encode_state`` was given; ``StateFormatError`` for anything else."""
    if not blob:
        raise StateFormatError("expected detector state format 3, found an empty value")
    if blob[0] in _PICKLED:
        raise StateFormatError(f"detector state format {blob[0]} (a pickle from an earlier agent) is not read; "
                               "the detector is refitted")
    if blob[0] != FORMAT:
        raise StateFormatError(f"expected detector state format 3, found {blob[:1]!r}")
    size = int.from_bytes(blob[1:1 + _HEAD], "big")
    start = 1 + _HEAD + size
    if len(blob) < start:
        raise StateFormatError(f"expected {size} bytes of JSON in detector state, found {len(blob) - 1 - _HEAD}")
    try:
        document = json.loads(blob[1 + _HEAD:start].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateFormatError(f"expected JSON in detector state, found {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
        raise StateFormatError("expected a mapping of fitted state in detector state")
    return _in(document["state"], memoryview(blob)[start:])


def _out(value: Any, payload: list[bytes], offset: list[int]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "base64"}:
            raw = base64.b64decode(value["base64"])
            payload.append(raw)
            node = {"ndarray": value["ndarray"], "shape": value["shape"], "at": offset[0], "nbytes": len(raw)}
            offset[0] += len(raw)
            return node
        return {k: _out(v, payload, offset) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_out(v, payload, offset) for v in value]
    return value


def _in(value: Any, payload: memoryview) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "at", "nbytes"}:
            return _array(value, payload)
        return {k: _in(v, payload) for k, v in value.items()}
    if isinstance(value, list):
        return [_in(v, payload) for v in value]
    return value


def _array(node: dict[str, Any], payload: memoryview) -> dict[str, Any]:
    """An array's bytes, checked against its description, in the form ``get_state`` gave it."""
    try:
        if not isinstance(node["ndarray"], str):
            raise TypeError
        dtype = np.dtype(node["ndarray"])
    except (TypeError, ValueError):
        raise StateFormatError(f"expected a numeric dtype in detector state, found {str(node['ndarray'])[:40]!r}") from None
    if dtype.kind not in _NUMERIC or dtype.hasobject:
        raise StateFormatError(f"expected a numeric dtype in detector state, found {dtype.str!r}")
    shape, at, nbytes = node["shape"], node["at"], node["nbytes"]
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)
            and type(at) is int and type(nbytes) is int and 0 <= at and 0 <= nbytes):
        raise StateFormatError("expected an array's shape, offset and size as non-negative integers in detector state")
    if math.prod(shape) * dtype.itemsize != nbytes or at + nbytes > len(payload):
        raise StateFormatError(f"an array of shape {shape} and dtype {dtype.str} does not fit its {nbytes} bytes "
                               f"at {at} of {len(payload)}")
    return {"ndarray": node["ndarray"], "shape": shape,
            "base64": base64.b64encode(payload[at:at + nbytes]).decode("ascii")}
