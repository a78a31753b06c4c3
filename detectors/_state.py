"""Fitted state as plain data: numpy arrays become ``{"ndarray": dtype, "shape", "data"}`` dicts.

The result of ``plain(...)`` holds only dicts, lists, str, int, float, bool and None, so it goes
through ``json`` and ``pickle`` alike; ``unplain`` turns it back into arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"ndarray": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "data"}:
            return np.asarray(value["data"], dtype=np.dtype(value["ndarray"])).reshape(value["shape"])
        return {k: unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unplain(v) for v in value]
    return value


class PlainState:
    """Mixin: ``get_state``/``set_state`` through ``plain``/``unplain`` (JSON- and pickle-able)."""

    def get_state(self) -> dict[str, Any]:
        return plain(super().get_state())  # type: ignore[misc]

    def set_state(self, state: Any) -> Any:
        return super().set_state(unplain(dict(state)))  # type: ignore[misc]
