"""Fitted detector state to bytes and back, for the ``detector_state`` table.

State is pickled: it holds numpy arrays, pandas objects and, for the isolation forest, a fitted
scikit-learn model, none of which JSON keeps. The store file is the agent's own (mode 0600), so
reading back what the agent wrote there trusts nothing the store does not already hold. A
version byte lets a later format coexist with this one.

Detectors give their arrays as base64 text (``detectors._state``), so that ``get_state()`` is
JSON; stored as text that costs a third more than the arrays themselves. Format 2 keeps those
arrays as the raw bytes in the pickle and turns them back into base64 on the way out; format 1
is still read.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Mapping
from typing import Any

_V1 = b"\x01"
_V2 = b"\x02"


class StateFormatError(ValueError):
    """Stored state was written in a format this agent does not read."""


def encode_state(state: Mapping[str, Any]) -> bytes:
    return _V2 + pickle.dumps(_to_bytes(dict(state)), protocol=pickle.HIGHEST_PROTOCOL)


def decode_state(blob: bytes) -> dict[str, Any]:
    if not blob or blob[:1] not in (_V1, _V2):
        raise StateFormatError(f"expected detector state format 1 or 2, found {blob[:1]!r}")
    state = pickle.loads(blob[1:])
    if not isinstance(state, dict):
        raise StateFormatError(f"expected a mapping of fitted state, found {type(state).__name__}")
    return _to_base64(state) if blob[:1] == _V2 else state


def _to_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "base64"}:
            return {"ndarray": value["ndarray"], "shape": value["shape"], "bytes": base64.b64decode(value["base64"])}
        return {k: _to_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_bytes(v) for v in value]
    return value


def _to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "shape", "bytes"}:
            return {"ndarray": value["ndarray"], "shape": value["shape"],
                    "base64": base64.b64encode(value["bytes"]).decode("ascii")}
        return {k: _to_base64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_base64(v) for v in value]
    return value
