"""Fitted detector state to bytes and back, for the ``detector_state`` table.

State is pickled: it holds numpy arrays, pandas objects and, for the isolation forest, a fitted
scikit-learn model, none of which JSON keeps. The store file is the agent's own (mode 0600), so
reading back what the agent wrote there trusts nothing the store does not already hold. A
version byte lets a later format coexist with this one.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

_V1 = b"\x01"


class StateFormatError(ValueError):
    """Stored state was written in a format this agent does not read."""


def encode_state(state: Mapping[str, Any]) -> bytes:
    return _V1 + pickle.dumps(dict(state), protocol=pickle.HIGHEST_PROTOCOL)


def decode_state(blob: bytes) -> dict[str, Any]:
    if not blob or blob[:1] != _V1:
        raise StateFormatError(f"expected detector state format 1, found {blob[:1]!r}")
    state = pickle.loads(blob[1:])
    if not isinstance(state, dict):
        raise StateFormatError(f"expected a mapping of fitted state, found {type(state).__name__}")
    return state
