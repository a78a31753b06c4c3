"""One entity's series judged together: a row that leaves the subspace its residuals keep to.

An entity (a host, a service) has many series that move together: CPU with load, bytes with
packets, one disk's reads with its writes. Each series is first taken relative to its own recent
level (its value minus the median of its last ``level_rows`` points) and divided by that
residual's spread over the fitting history, so a busy hour is not an anomaly and every series
counts alike. A principal-component model of those residuals, the fewest components that carry
``variance`` of their variance, describes how the entity's series usually move together. A row
is judged by its squared prediction error, the part of it the model cannot explain (the SPE, or
Q statistic, of multivariate process control: Jackson and Mudholkar, Technometrics 1979): a fault
breaks the usual relations between series, or moves series that usually stay still.

How rare a row's SPE is comes from the entity's own past: a peaks-over-threshold tail
(``detectors._tail``) over the fitting history's SPE, fed with each new row. Its chance is what
a budget of false alarms is spent against: one test per entity, however many series it has,
where per-series tests would split the budget in as many parts (38 metrics of a server, 500 of a
node_exporter).

Streaming: the detector keeps the last ``level_rows`` rows, so each new row is judged against
the points before it whatever the cycle brought; ``score`` leaves the state as it was and
``update`` takes the rows in. Columns that did not move in the fitting history are left out of
the model (a per-series detector still watches them); a missing value counts as no deviation.

Scores are ``L / (1 + L)`` with ``L = -log10(chance)``: 0.8 at a chance of 1e-4, higher = rarer.
Hits, at a chance of ``alarm_chance`` or less, are filed under the entity and name the series
that carried most of the row's error, each with how many of its usual spreads it stood from its
recent median.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-01", periods=3000, freq="1min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> load = np.cumsum(rng.normal(0, 1, len(idx)))
>>> frame = pd.DataFrame({"cpu": load + rng.normal(0, 0.3, len(idx)), "requests": 2 * load + rng.normal(0, 0.6, len(idx)),
...                       "disk": rng.normal(5, 0.2, len(idx))}, index=idx)
>>> frame.iloc[2800, 0] += 8.0  # CPU jumps while the requests that drive it do not
>>> det = SubspaceDetector().fit(frame.iloc[:2700], entity="web-1")
>>> [(h.entity, h.ts.strftime("%H:%M")) for h in det.score(frame.iloc[2700:]).hits]
[('web-1', '22:40')]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors._frame import as_frame, to_datetime
from detectors._state import PlainState
from detectors._stepwise import Stepwise
from detectors._tail import Tails, chances_along, fit_tails
from detectors._tail import unit_scores as _unit
from detectors.base import Detector, Direction, Hit
from detectors.errors import DetectorError

TOP_SERIES = 3  # series named in a hit


class SubspaceDetector(Stepwise, PlainState, Detector):
    """Chance of each row of an entity's series under its own residual subspace (lower = rarer)."""

    name: ClassVar[str] = "subspace"

    def __init__(self, level_rows: int = 60, variance: float = 0.8, alarm_chance: float = 1e-4) -> None:
        self.level_rows = level_rows
        self.variance = variance
        self.alarm_chance = alarm_chance

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, history: Any, entity: str | None = None) -> "SubspaceDetector":
        """The residual spreads and subspace of ``history`` (rows x series), the tail of its
        rows' SPE, and its last ``level_rows`` rows."""
        self._check_params()
        frame = as_frame(history, self.name)
        values = frame.block()
        if len(values) < self.level_rows + 2:
            raise DetectorError(self.name, f"history has {len(values)} rows; need more than {self.level_rows + 1}")
        residual = _residuals(values, np.full((0, values.shape[1]), np.nan), self.level_rows)
        spread = np.nanstd(residual, axis=0)
        used = np.flatnonzero(np.nan_to_num(spread) > 0)
        if len(used) < 2:
            raise DetectorError(self.name, f"{len(used)} of {len(frame.columns)} series moved in the history; need 2")
        self.columns_ = list(frame.columns)
        self.used_ = used
        self.spread_ = spread[used]
        scaled = np.nan_to_num(residual[:, used] / self.spread_)
        scaled = scaled[np.isfinite(residual[:, used]).any(axis=1)]
        eigenvalues, vectors = np.linalg.eigh(np.cov(scaled, rowvar=False))
        order = np.argsort(eigenvalues)[::-1]
        share = np.cumsum(np.clip(eigenvalues[order], 0, None)) / max(float(np.clip(eigenvalues, 0, None).sum()), 1e-300)
        kept = int(min(np.searchsorted(share, self.variance) + 1, len(used) - 1))
        self.components_ = vectors[:, order[:kept]]
        spe = _spe(scaled, self.components_)
        tails = fit_tails(spe[None, :])
        self.tail_ = {name: value[0] for name, value in tails.as_arrays().items()}
        self.recent_ = values[-self.level_rows:].copy()
        self.last_ts_ = float(frame.times[-1])
        self.entity_ = entity if entity is not None else ",".join(self.columns_)
        return self

    def _check_params(self) -> None:
        problems = []
        if not isinstance(self.level_rows, int) or isinstance(self.level_rows, bool) or self.level_rows < 1:
            problems.append(f"level_rows: expected an int >= 1, found {self.level_rows!r}")
        if not (isinstance(self.variance, (int, float)) and 0 < self.variance < 1):
            problems.append(f"variance: expected a share in (0, 1), found {self.variance!r}")
        if not (isinstance(self.alarm_chance, (int, float)) and 0 < self.alarm_chance < 1):
            problems.append(f"alarm_chance: expected a chance in (0, 1), found {self.alarm_chance!r}")
        if problems:
            raise DetectorError(self.name, "; ".join(problems))

    # -- scoring ----------------------------------------------------------------------------

    def unit_scores(self, scores: Any) -> Any:
        """Scores are in [0, 1] already."""
        return scores

    def _take(self, step: dict[str, Any]) -> None:
        self.tail_ = step["tail"]
        self.recent_ = step["recent"]

    def _judge(self, frame: Any, new: np.ndarray) -> dict[str, Any]:
        """The new rows' residuals, SPE and chances (each row's chance under the tail of the
        rows before it), and the state taking them in leaves."""
        values = self._matrix(frame)[new]
        residual = _residuals(values, self.recent_, self.level_rows)
        scaled = np.nan_to_num(residual[:, self.used_] / self.spread_)
        spe = _spe(scaled, self.components_)
        tails = Tails.from_arrays({k: np.asarray(v)[None, ...] for k, v in self.tail_.items()})
        # each row judged by the tail of the rows before it (in runs between excesses)
        chance, tails = chances_along(spe, threshold=float(tails.threshold[0]), tails=tails)
        recent = np.vstack([self.recent_, values])[-self.level_rows:]
        return {"residual": residual, "scaled": scaled, "spe": spe, "chances": chance, "recent": recent,
                "tail": {name: value[0] for name, value in tails.as_arrays().items()}}

    def _matrix(self, frame: Any) -> np.ndarray:
        """The window's values in the fitted column order; a column it lacks is missing (NaN)."""
        out = np.full((len(frame.times), len(self.columns_)), np.nan)
        position = {name: j for j, name in enumerate(frame.columns)}
        values = frame.block()
        for j, name in enumerate(self.columns_):
            if name in position:
                out[:, j] = values[:, position[name]]
        return out

    def _hit(self, entity: str, frame: Any, step: dict[str, Any], k: int, row: int) -> Hit:
        ts = frame.times[row]
        scaled, residual = step["scaled"][k], step["residual"][k]
        unexplained = scaled - self.components_ @ (self.components_.T @ scaled)
        share = unexplained ** 2 / max(float(np.sum(unexplained ** 2)), 1e-300)
        parts = []
        for j in np.argsort(-share, kind="stable")[:TOP_SERIES]:
            column = int(self.used_[j])
            if share[j] < 0.05:
                break
            off = residual[column] / self.spread_[j]
            parts.append(f"{self.columns_[column]} {off:+.1f} spreads from its recent median ({share[j]:.0%})")
        chance = float(step["chances"][k])
        text = (f"its series left the way they usually move together (unexplained error {step['spe'][k]:.3g}, "
                f"chance {chance:.2g})")
        text += ": most off " + ", ".join(parts) if parts else ""
        score = float(_unit(np.array([chance]))[0])
        return Hit(series_id=entity, entity=entity, detector=self.name, ts=to_datetime(ts), value=float(step["spe"][k]),
                   score=score, direction=Direction.UP, explanation=text, chance=chance)


def _residuals(values: np.ndarray, before: np.ndarray, rows: int) -> np.ndarray:
    """Each row of ``values`` minus the median of the ``rows`` rows before it (``before``
    first, then earlier rows of ``values``), per column, NaN ignored; NaN where a value or
    every earlier one is missing."""
    stacked = np.vstack([before, values]) if len(before) else values
    offset = len(stacked) - len(values)
    medians = pd.DataFrame(stacked).shift(1).rolling(rows, min_periods=1).median().to_numpy()[offset:]
    return values - medians


def _spe(scaled: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Squared prediction error of each row: its squared distance from the subspace."""
    unexplained = scaled - (scaled @ components) @ components.T
    return np.einsum("ij,ij->i", unexplained, unexplained)


__all__ = ["SubspaceDetector"]
