"""Fitted state as plain data: numpy arrays become ``{"ndarray": dtype, "shape", ...}`` dicts.

The result of ``plain(...)`` holds only dicts, lists, str, int, float, bool and None, so it goes
through ``json`` and ``pickle`` alike; ``unplain`` turns it back into arrays. Numeric arrays
travel as the base64 of their bytes (``"base64"``): a state of 10,000 series is millions of
values, and as Python floats in lists it would take four times their memory while it is saved.
Small or non-numeric arrays travel as a list (``"data"``); both forms are read back.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

_BYTES_FROM = 64  # arrays this long or longer travel as bytes


def plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        head = {"ndarray": value.dtype.str, "shape": list(value.shape)}
        if value.dtype.kind in "fiub" and value.size >= _BYTES_FROM:
            raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            return {**head, "ndarray": value.dtype.newbyteorder("<").str, "base64": base64.b64encode(raw).decode("ascii")}
        return {**head, "data": value.ravel().tolist()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "base64"}:
            raw = base64.b64decode(value["base64"])
            return np.frombuffer(raw, dtype=np.dtype(value["ndarray"])).reshape(value["shape"]).copy()
        if set(value) == {"ndarray", "shape", "data"}:
            return np.asarray(value["data"], dtype=np.dtype(value["ndarray"])).reshape(value["shape"])
        return {k: unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unplain(v) for v in value]
    return value


class PlainState:
    """Mixin: ``get_state``/``set_state`` through ``plain``/``unplain`` (JSON- and pickle-able)."""

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = plain(super().get_state())  # type: ignore[misc]
        return state

    def set_state(self, state: Any) -> Any:
        return super().set_state(unplain(dict(state)))  # type: ignore[misc]
