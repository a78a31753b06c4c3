"""Input checks shared by the frame-level detectors: one place turns user data into arrays.

A frame is a pandas DataFrame with a DatetimeIndex (UTC; naive timestamps are taken as UTC) and
one float column per series_id, NaN for gaps; a Series is one column named by its name.
Non-finite values (+-Inf) are treated as gaps. Duplicate timestamps are refused, unsorted ones
are sorted (irregular spacing is fine: detectors work from timestamps, not positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from detectors.errors import DetectorError


@dataclass(frozen=True, slots=True)
class Frame:
    """Checked input: epoch seconds per row (sorted, unique), column names, and the data.

    Values are converted a block of columns at a time (``block``) so a 10,000-column history is
    never copied whole.
    """

    times: np.ndarray
    columns: list[str]
    data: pd.DataFrame
    detector: str
    what: str

    @property
    def index(self) -> pd.DatetimeIndex:
        index = pd.DatetimeIndex(self.data.index)
        return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")

    def block(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Values of columns ``start:stop`` as float64 (rows x columns), non-finite as NaN."""
        part = self.data.iloc[:, start:stop]
        try:
            values = part.to_numpy(dtype=np.float64, copy=True, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DetectorError(self.detector, f"{self.what}: values must be numeric ({exc})") from None
        values[~np.isfinite(values)] = np.nan
        return values


def as_frame(data: object, detector: str, *, what: str = "history") -> Frame:
    if isinstance(data, pd.Series):
        data = data.to_frame(name=str(data.name) if data.name is not None else "value")
    if not isinstance(data, pd.DataFrame):
        raise DetectorError(detector, f"{what}: expected a pandas DataFrame or Series, found {type(data).__name__}")
    if not isinstance(data.index, pd.DatetimeIndex):
        raise DetectorError(
            detector, f"{what}: expected a DatetimeIndex, found {type(data.index).__name__}"
        )
    times = epoch_seconds(data.index)
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        order = np.argsort(times, kind="stable")
        times = times[order]
        data = data.iloc[order]
        dup = np.flatnonzero(np.diff(times) == 0)
        if len(dup):
            first = pd.Timestamp(times[dup[0]], unit="s", tz="UTC")
            raise DetectorError(
                detector,
                f"{what}: {len(dup)} duplicate timestamps (first {first.isoformat()}); "
                "aggregate them before fitting or scoring",
            )
    if data.columns.has_duplicates:
        raise DetectorError(detector, f"{what}: duplicate column names {sorted(set(data.columns[data.columns.duplicated()]))}")
    columns = [str(c) for c in data.columns]
    return Frame(times=times, columns=columns, data=data, detector=detector, what=what)


def epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    if index.tz is None:
        index = index.tz_localize("UTC")
    return index.as_unit("ns").asi8.astype(np.float64) / 1e9


def to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(float(epoch_s), tz=timezone.utc)


def duration_s(value: str | float | int | None, detector: str, param: str) -> float | None:
    """Seconds from a number of seconds or a pandas duration string such as ``"5min"``/``"1D"``."""
    if value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, (int, float)) else pd.Timedelta(value).total_seconds()
    except (TypeError, ValueError):
        raise DetectorError(detector, f"{param}: expected seconds or a duration like '5min', found {value!r}") from None
    if not seconds > 0:
        raise DetectorError(detector, f"{param}: expected a positive duration, found {value!r}")
    return seconds


def resolution_s(times: np.ndarray) -> float:
    """The usual spacing of the timestamps (median gap); 60 s when there is only one point."""
    if len(times) < 2:
        return 60.0
    return float(np.median(np.diff(times)))
