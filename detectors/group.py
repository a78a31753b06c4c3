"""The series of one group (a service) judged together: many of them unusual at the same point.

A fault in a service moves many of its series at once, one or more on every host that runs it,
each by a little. Spread over fifty hosts it is rare on none of them at the share of a page
budget one series gets, and each host's own tests see only their host. Judged together it is
plain. This detector judges no values: its input is, per point and per series of the group,
the chance the series' own detector gave the point under the series' own past
(``Scores.chances``). A series whose chance is at most ``LEVEL`` brings ``log(LEVEL / chance)``,
how far into its own tail it went; the others bring nothing. The group's evidence at a point is
the sum: the truncated product of p-values (Zaykin et al., Genetic Epidemiology 2002) on a log
scale, which grows with how many series are unusual at once and with how unusual each is.

Series of a group are not independent (a traffic surge lifts them all), so no distribution of
the sum is assumed: how rare a point's evidence is comes from the group's own past, a
peaks-over-threshold tail (``detectors._tail``) of the points before it, as for the subspace
detector. Nothing about the group is known before its series are judged, so it learns from
nothing, point by point: the first ``WARM`` points with evidence fix the tail's threshold (their
top ``SHARE``) and the excesses above it, and from then on each point gets its chance and is
taken in. ``WARM`` is the fewest points whose top ``SHARE`` holds the ``MIN_EXCESSES`` excesses a
fitted tail needs (500: 42 hours at 5-minute points, 8 hours at 1-minute ones): before that,
only a rank chance could be given, never small enough to page.

The evidence has no upper end, and its tail is at least exponential of scale 1: under no fault
a series' chance is uniform (that is what a calibrated chance means), and ``log(LEVEL /
chance)`` of a uniform chance below ``LEVEL`` is exponential with mean 1; a sum of such terms,
independent or not, has a tail no lighter than one of them. So the fitted tail's shape is kept
at 0 or above and its scale at 1 or above: the few excesses of the first days, bunched by chance,
never suggest a lighter tail that would make an ordinary point look rare (with both free, a
clean group of 24 series paged on two series beyond 2 %, at a chance of 1e-4 its own past did
not support). Where the series' chances are conservative the floor makes the group's test more
conservative too; where they are not, the excesses show a heavier tail and the fit follows.

Why ``LEVEL`` is ``SHARE`` (2 %): below that a per-series chance is not a tail estimate (the
tails give a placeholder between 1 and their threshold's share), so only the part of a series'
chance the tail model stands for counts.

Scores are ``L / (1 + L)`` with ``L = -log10(chance)``, as the subspace detector's. Hits, at a
chance of ``alarm_chance`` or less, are filed under the group and say how many of its series
were beyond ``LEVEL`` and which carried most of the evidence.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-01", periods=2000, freq="5min", tz="UTC")
>>> rng = np.random.default_rng(0)
>>> chances = pd.DataFrame(rng.uniform(size=(2000, 20)), index=idx, columns=[f"s{i}" for i in range(20)])
>>> chances.iloc[1900, :12] = 1e-3  # twelve series a little unusual at once
>>> det = GroupDetector().fit(chances.iloc[:1800], entity="checkout")
>>> [(h.entity, h.ts.strftime("%d %H:%M")) for h in det.score(chances.iloc[1800:]).hits]
[('checkout', '07 14:20')]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._frame import to_datetime
from detectors._state import PlainState
from detectors._stepwise import Stepwise
from detectors._tail import MIN_EXCESSES, SHARE, Tails, chances, fit_tails, take_in
from detectors._tail import unit_scores as _unit
from detectors.base import Detector, Direction, Hit
from detectors.errors import DetectorError

LEVEL = SHARE  # a series counts at a point when its chance there is at most this
WARM = int(np.ceil(MIN_EXCESSES / SHARE))  # points before the group's tail is fitted
TOP_SERIES = 3  # series named in a hit
# the lightest tail the evidence can have: one series' term alone is exponential of scale 1
LIGHTEST = {"min_shape": 0.0, "min_scale": 1.0}


class GroupDetector(Stepwise, PlainState, Detector):
    """Chance of each point's combined evidence of a group's series under the group's own past."""

    name: ClassVar[str] = "group"

    def __init__(self, alarm_chance: float = 1e-4) -> None:
        self.alarm_chance = alarm_chance

    def fit(self, history: Any = None, entity: str | None = None) -> "GroupDetector":
        """Start from nothing, then take in ``history`` (points x series of chances; None:
        nothing known yet) as if it had come point by point."""
        if not (isinstance(self.alarm_chance, (int, float)) and 0 < self.alarm_chance < 1):
            raise DetectorError(self.name, f"alarm_chance: expected a chance in (0, 1), found {self.alarm_chance!r}")
        self.warm_ = np.zeros(0)
        self.tail_: dict[str, np.ndarray] = {}
        self.last_ts_ = float("-inf")
        self.entity_ = entity or self.name
        if history is not None and len(history):
            self.update(history)
        return self

    def unit_scores(self, scores: Any) -> Any:
        """Scores are in [0, 1] already."""
        return scores

    def _take(self, step: dict[str, Any]) -> None:
        self.warm_, self.tail_ = step["warm"], step["tail"]

    @property
    def warming(self) -> bool:
        """Whether the group's tail still waits for its first ``WARM`` points."""
        self._check_fitted()
        return not self.tail_

    def _judge(self, frame: Any, new: np.ndarray) -> dict[str, Any]:
        """The new points' evidence and chances (each under the tail of the points before it),
        and the state taking them in leaves."""
        terms = _terms(frame.block()[new])
        evidence = np.where(np.isfinite(terms).any(axis=1), np.nansum(terms, axis=1), np.nan)
        warm = self.warm_.copy()
        tails = Tails.from_arrays({k: np.asarray(v)[None, ...] for k, v in self.tail_.items()}) if self.tail_ else None
        chance = np.full(len(new), np.nan)
        for k, value in enumerate(evidence):
            if not np.isfinite(value):
                continue
            if tails is None:
                warm = np.append(warm, value)
                if len(warm) >= WARM:
                    tails, warm = fit_tails(warm[None, :], **LIGHTEST), np.zeros(0)
                continue
            chance[k] = chances(tails, evidence[None, k:k + 1])[0, 0]
            take_in(tails, evidence[None, k:k + 1], **LIGHTEST)
        tail = {name: value[0] for name, value in tails.as_arrays().items()} if tails is not None else {}
        return {"terms": terms, "evidence": evidence, "chances": chance, "warm": warm, "tail": tail}

    def _hit(self, entity: str, frame: Any, step: dict[str, Any], k: int, row: int) -> Hit:
        terms = step["terms"][k]
        counted = np.flatnonzero(np.nan_to_num(terms) > 0)
        present = int(np.count_nonzero(np.isfinite(terms)))
        parts = [f"{frame.columns[j]} (chance {LEVEL * np.exp(-terms[j]):.2g})"
                 for j in counted[np.argsort(-terms[counted], kind="stable")][:TOP_SERIES]]
        more = len(counted) - len(parts)
        chance = float(step["chances"][k])
        text = (f"{len(counted)} of its {present} series were beyond their usual {LEVEL:.0%} at once "
                f"(combined evidence {step['evidence'][k]:.3g}, chance {chance:.2g})")
        if parts:
            text += ": most off " + ", ".join(parts) + (f" and {more} more" if more else "")
        # The change came after the group's point before, which was judged: midway between the two.
        ts = to_datetime(frame.times[row])
        before = frame.times[row - 1] if row else self.last_ts_
        began = to_datetime((before + frame.times[row]) / 2) if np.isfinite(before) else None
        onset = (f"midway between {to_datetime(before):%H:%M:%S}, the group's last point before it, and "
                 f"{ts:%H:%M:%S}, its first anomalous point") if began is not None else ""
        return Hit(series_id=entity, entity=entity, detector=self.name, ts=ts, value=float(step["evidence"][k]),
                   score=float(_unit(np.array([chance]))[0]), direction=Direction.BOTH, explanation=text,
                   chance=chance, began_at=began, onset=onset)


def _terms(chance: np.ndarray) -> np.ndarray:
    """Per point and series, ``log(LEVEL / chance)`` where the chance is at most ``LEVEL``, 0
    where it is more, NaN where there is none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        beyond = np.log(LEVEL / np.clip(chance, 1e-300, 1.0))
    return np.where(np.isfinite(chance), np.maximum(beyond, 0.0), np.nan)


__all__ = ["GroupDetector"]
