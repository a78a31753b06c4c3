"""The scoring half shared by the detectors that judge each new row under the state the rows
before it left (the subspace and group detectors): ``score`` judges the rows of a window newer
than the last one taken in, ``update`` takes them in, reusing the judgement ``score`` just made
of the same window (a cycle scores, then updates, the same frame).

A subclass gives ``_judge(frame, new)`` (the new rows' ``chances`` and the state taking them in
leaves, as a dict), ``_take(step)`` (keep that state) and ``_hit(entity, frame, step, k, row)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from detectors._frame import as_frame
from detectors._tail import unit_scores
from detectors.base import Hit, Scores


class Stepwise:
    """``score`` and ``update`` over ``_judge``, ``_take`` and ``_hit`` (see the module)."""

    name: ClassVar[str]
    alarm_chance: float
    entity_: str
    last_ts_: float
    _pending: tuple[float | None, int, dict[str, Any]] | None = None  # the last score, for update

    if TYPE_CHECKING:  # the detector's own (PlainState, Detector), after this class in its bases
        def _check_fitted(self) -> None: ...

    def _judge(self, frame: Any, new: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _take(self, step: dict[str, Any]) -> None:
        raise NotImplementedError

    def _hit(self, entity: str, frame: Any, step: dict[str, Any], k: int, row: int) -> Hit:
        raise NotImplementedError

    def score(self, window: Any, entity: str | None = None, *, alarm_chance: float | None = None) -> Scores:
        """Scores and chances of the rows of ``window`` newer than the last row taken in (older
        rows: NaN); hits where the chance is at most ``alarm_chance`` (default: the parameter)."""
        self._check_fitted()
        frame = as_frame(window, self.name, what="window")
        new = np.flatnonzero(frame.times > self.last_ts_)
        step = self._judge(frame, new)
        self._pending = (frame.times[new[-1]] if len(new) else None, len(new), step)
        scores = np.full(len(frame.times), np.nan)
        chance = np.full(len(frame.times), np.nan)
        scores[new], chance[new] = unit_scores(step["chances"]), step["chances"]
        level = self.alarm_chance if alarm_chance is None else alarm_chance
        key = entity if entity is not None else self.entity_
        alarms = np.nan_to_num(step["chances"], nan=1.0) <= level  # for all rows at once: a day is 1,440
        hits = [self._hit(key, frame, step, int(k), int(new[k])) for k in np.flatnonzero(alarms)]
        return Scores(scores=pd.Series(scores, index=frame.index, name=key), hits=hits,
                      chances=pd.Series(chance, index=frame.index, name=key))

    def update(self, window: Any) -> Any:
        """Take in the rows of ``window`` newer than the last one taken in (a ``score`` of the
        same window just before is reused)."""
        self._check_fitted()
        frame = as_frame(window, self.name, what="window")
        new = np.flatnonzero(frame.times > self.last_ts_)
        if not len(new):
            return self
        pending = self._pending
        if pending is not None and pending[0] == frame.times[new[-1]] and pending[1] == len(new):
            step = pending[2]
        else:
            step = self._judge(frame, new)
        self._take(step)
        self.last_ts_ = float(frame.times[new[-1]])
        self._pending = None
        return self
