"""The detector contract and the ``Hit`` every detector emits.

A detector is built with parameters only (``__init__`` stores them under their own names and
does nothing else, so ``get_params`` can read them back from the signature). ``fit(history)``
validates its input, learns state into attributes ending in ``_`` and returns ``self``.
``score(window)`` judges new points only, each by what came before it, and returns a
``Scores``: one score per point (higher = more anomalous) and the hits among them.
``get_state()``/``set_state()`` save and restore fitted state without refitting.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from detectors.errors import NotFittedError


class Direction(StrEnum):
    """Which way a point left normal (for hits) or which ways a detector watches."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """One anomalous point or window of one series, or of one entity for multivariate detectors.

    ``score`` is the detector's own score (higher = more anomalous); ``expected`` and
    ``lower``/``upper`` are the detector's expectation and normal band at ``ts`` where it has
    them. ``explanation`` is one plain sentence an on-call engineer can read.
    """

    series_id: str
    detector: str
    ts: datetime
    value: float
    score: float
    direction: Direction = Direction.BOTH
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    entity: str | None = None
    metric: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    explanation: str = ""
    began_at: datetime | None = None  # a window detector's first anomalous point; None: ``ts`` itself
    onset: str = ""  # how ``began_at`` was found, in words (set where the start is estimated)
    # the chance, under the series' (or entity's) own past, of a point at least this anomalous
    # (lower = rarer); None for detectors that do not estimate it
    chance: float | None = None

    @property
    def first_at(self) -> datetime:
        """Where the anomaly this hit reports began in the data: never after ``ts``."""
        return self.began_at if self.began_at is not None and self.began_at < self.ts else self.ts


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """What ``score`` returns: one score per new point, in order, and the hits among them.

    ``expected``, ``lower`` and ``upper`` are shaped like ``scores``: the detector's expectation
    and normal band at each row, NaN where it has none; None when the detector never has one.
    ``chances`` too: the chance of a point at least as anomalous under the series' own past
    (lower = rarer), NaN while the detector cannot tell yet (see ``detectors._tail``).
    """

    scores: Any  # pandas Series (index = timestamps) or DataFrame for multivariate detectors
    hits: list[Hit]
    expected: Any = None
    lower: Any = None
    upper: Any = None
    chances: Any = None


class Detector:
    """Base class: parameter handling, cloning and the fitted-state check."""

    name: ClassVar[str] = "detector"

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Detector":
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def clone(self) -> "Detector":
        """A new, unfitted detector with the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    @property
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(self.name)

    def unit_scores(self, scores: Any) -> Any:
        """``scores`` of this detector mapped monotonically into [0, 1] (higher = more
        anomalous), so detectors can be compared and a backtest can sweep one threshold. The
        default suits scores that grow from 0 without bound: ``|s| / (|s| + 1)``."""
        magnitude = abs(scores)
        return magnitude / (magnitude + 1.0)

    def anomaly_scores(self, scores: Any) -> Any:
        """``scores`` over the score where this detector's point hits start: 1 or more is
        anomalous (what ``aiops_anomaly_score`` shows); None when its point scores have no such
        line (the default)."""
        return None

    def get_state(self) -> dict[str, Any]:
        """Fitted state as plain data (JSON-able where possible), for the store."""
        self._check_fitted()
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: Mapping[str, Any]) -> "Detector":
        for key, value in state.items():
            if not key.endswith("_"):
                raise ValueError(f"{type(self).__name__}: state key {key!r} is not fitted state")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
