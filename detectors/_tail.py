"""How rare a score is for the series that produced it: a peaks-over-threshold tail.

Extreme-value theory (Pickands, Balkema and de Haan) says that, above a high enough threshold
``t``, the excesses of almost any distribution follow a generalised Pareto distribution (GPD).
So the chance of a score at least ``v > t`` is ``share * (1 + shape * (v - t) / scale) ** (-1 /
shape)``, with ``share`` the part of the points above ``t``: the SPOT detector's estimate
(Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory", KDD 2017). It reaches
chances far smaller than one over the points seen, which a plain rank cannot: a budget of one
false alarm a month among 38 metrics at one point a minute asks for about 1e-6.

The threshold is the score's ``1 - SHARE`` quantile when the tail is fitted; the GPD is fitted
to the last ``KEEP`` excesses by probability-weighted moments (Hosking and Wallis,
Technometrics 1987), which is closed-form, needs no optimiser and so runs for thousands of
series at once. New scores are taken in as they come: the count of points and of excesses
grows, and an excess joins the ring of the last ``KEEP`` (the tail follows the series without
a refit). Scores below the threshold get a chance between 1 and ``share``, linear in the score:
only the tail is estimated, and only the tail is ever compared with a small chance.

Until ``MIN_EXCESSES`` excesses have been seen the GPD cannot be trusted, and a score above the
threshold gets the plain rank chance instead: ``(k + 1) / (n + 1)`` with ``k`` the earlier
scores at least as high among the ``n`` seen, the conformal p-value, valid whatever the
distribution but never below one over the points seen. Before ``MIN_POINTS`` scores no chance
is given at all.

Columns are series; everything is an array over them, so a group of series costs a few array
operations. ``Tails`` is plain arrays (``as_arrays``/``from_arrays``) for the detectors' state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARE = 0.02  # the part of the scores above the threshold: the top 2 %, SPOT's usual level
KEEP = 128  # excesses kept per series: enough for the fit, and a series' state stays small (0.5 KB)
MIN_EXCESSES = 10  # fewer excesses than this: the rank chance, not the GPD
MIN_POINTS = 100  # no chance at all before this many scores have been seen
FLOOR = 1e-12  # the smallest chance given: beyond a bounded tail's end, "never seen"
MAX_SHAPE = 0.45  # probability-weighted moments need shape < 1/2
MIN_SHAPE = -0.5  # the shortest tail fitted, unless the caller knows the tail cannot end


@dataclass(slots=True)
class Tails:
    """Per column: threshold, points seen, excesses seen, the ring of the last ``KEEP``
    excesses (NaN where empty) and the next slot of the ring, and the GPD fitted to the ring."""

    threshold: np.ndarray
    seen: np.ndarray
    above: np.ndarray
    ring: np.ndarray
    slot: np.ndarray
    shape: np.ndarray
    scale: np.ndarray

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Tails":
        return cls(**{name: np.asarray(arrays[name]) for name in cls.__slots__})

    def take(self, rows: np.ndarray | list[int]) -> "Tails":
        return Tails(**{name: getattr(self, name)[rows] for name in self.__slots__})

    @property
    def ready(self) -> np.ndarray:
        """Columns whose tail gives chances: enough points seen."""
        return self.seen >= MIN_POINTS

    @property
    def fitted(self) -> np.ndarray:
        """Columns whose GPD is used: enough excesses seen."""
        return np.count_nonzero(np.isfinite(self.ring), axis=1) >= MIN_EXCESSES


def fit_tails(scores: np.ndarray, *, threshold: float | None = None, min_shape: float = MIN_SHAPE,
              min_scale: float = 0.0) -> Tails:
    """Tails of each row of ``scores`` (columns x points in order; NaN: no score at that point),
    above ``threshold`` (None: each row's ``1 - SHARE`` quantile). The state is exactly what
    ``take_in`` of the same scores, one at a time, would leave. ``min_shape`` and ``min_scale``
    are for scores whose tail is known to be at least as heavy as an exponential of that scale:
    a few excesses that bunch then never suggest a lighter one."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    count = scores.shape[0]
    seen = np.count_nonzero(np.isfinite(scores), axis=1).astype(np.float64)
    if threshold is None:
        with np.errstate(all="ignore"):
            limits = np.nan_to_num(_quantile_rows(scores, 1.0 - SHARE), nan=np.inf)
    else:
        limits = np.full(count, float(threshold))
    excess = scores - limits[:, None]
    over = np.isfinite(excess) & (excess > 0)
    ring = np.full((count, KEEP), np.nan, dtype=np.float32)
    slot = np.zeros(count, dtype=np.int64)
    for c in range(count):
        values = excess[c, over[c]]
        total = len(values)
        kept = values[-KEEP:]
        ring[c, (np.arange(total - len(kept), total)) % KEEP] = kept  # where take_in would have put them
        slot[c] = total % KEEP
    tails = Tails(threshold=limits, seen=seen, above=over.sum(axis=1).astype(np.float64), ring=ring, slot=slot,
                  shape=np.zeros(count), scale=np.ones(count))
    _refit(tails, np.ones(count, dtype=bool), min_shape, min_scale)
    return tails


def chances(tails: Tails, scores: np.ndarray) -> np.ndarray:
    """The chance of a score at least each of ``scores`` (columns x points) under each
    column's tail; NaN where the score is NaN or the column's tail is not ready."""
    scores = np.asarray(scores, dtype=np.float64)
    share = np.where(tails.seen > 0, tails.above / np.maximum(tails.seen, 1.0), 1.0)
    out = _chance(scores, tails.threshold[:, None], share[:, None], tails.shape[:, None], tails.scale[:, None],
                  tails.ready[:, None])
    early = ~tails.fitted
    if early.any():
        rank = _rank_chance(tails.ring[early], tails.seen[early], scores[early] - tails.threshold[early, None])
        out[early] = np.where((scores[early] > tails.threshold[early, None]) & np.isfinite(out[early]), rank,
                              out[early])
    return out


def _rank_chance(ring: np.ndarray, seen: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """``(k + 1) / (n + 1)``: ``k`` of the kept excesses at least ``excess``, ``n`` points seen
    (columns x points). Used while the ring still holds every excess seen."""
    higher = np.count_nonzero(ring[:, None, :] >= excess[:, :, None], axis=2)
    return (higher + 1.0) / (seen[:, None] + 1.0)


def _chance(scores: np.ndarray, t: np.ndarray, share: np.ndarray, shape: np.ndarray, scale: np.ndarray,
            ready: np.ndarray) -> np.ndarray:
    z = np.maximum(scores - t, 0.0) / scale
    with np.errstate(all="ignore"):
        bounded = np.where(1.0 + shape * z > 0, (1.0 + shape * z) ** (-1.0 / np.where(shape == 0, 1.0, shape)), 0.0)
        tail = np.where(np.abs(shape) < 1e-9, np.exp(-z), bounded)
        below = 1.0 - (1.0 - share) * np.clip(scores / np.where(t > 0, t, np.inf), 0.0, 1.0)
    out = np.where(scores > t, np.maximum(share * tail, FLOOR), np.where(t > 0, below, share))
    return np.where(np.isfinite(scores) & ready, out, np.nan)


def take_in(tails: Tails, scores: np.ndarray, *, min_shape: float = MIN_SHAPE, min_scale: float = 0.0) -> None:
    """Count ``scores`` (columns x points, in order) into the tails, in place: every finite
    score is a point seen, those above the threshold join the ring of excesses."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    tails.seen += finite.sum(axis=1)
    excess = scores - tails.threshold[:, None]
    over = finite & (excess > 0)
    if not over.any():
        return
    changed = over.any(axis=1)
    for c in np.flatnonzero(changed):
        for value in excess[c, over[c]]:
            tails.ring[c, tails.slot[c]] = value
            tails.slot[c] = (tails.slot[c] + 1) % KEEP
    tails.above += over.sum(axis=1)
    _refit(tails, changed, min_shape, min_scale)


def chances_along(scores: np.ndarray, *, threshold: float, tails: Tails | None = None) -> tuple[np.ndarray, Tails]:
    """Each score's chance under the tail of the scores before it (one series, in order), as
    ``chances`` then ``take_in`` one point at a time would give, from ``tails`` (one column,
    taken over; None: nothing seen before); and the tail after them all. The fitted tail
    changes only at an excess, so points are judged in runs between excesses."""
    scores = np.asarray(scores, dtype=np.float64)
    tails = fit_tails(np.full((1, 0), np.nan), threshold=threshold) if tails is None else tails
    out = np.full(len(scores), np.nan)
    finite = np.isfinite(scores)
    seen_before = tails.seen[0] + np.cumsum(finite) - finite  # points seen before each point
    events = np.flatnonzero(finite & (scores > threshold))
    start = 0
    for end in [*events.tolist(), len(scores) - 1]:
        if end < start:
            continue
        run = slice(start, end + 1)  # the excess at ``end`` is judged before it is taken in
        seen = seen_before[run].astype(np.float64)
        share = np.where(seen > 0, tails.above[0] / np.maximum(seen, 1.0), 1.0)
        out[run] = _chance(scores[run], tails.threshold[0], share, tails.shape[0], tails.scale[0], seen >= MIN_POINTS)
        if not tails.fitted[0]:
            excess = scores[run] - tails.threshold[0]
            higher = np.count_nonzero(tails.ring[0][None, :] >= excess[:, None], axis=1)
            out[run] = np.where((excess > 0) & np.isfinite(out[run]), (higher + 1.0) / (seen + 1.0), out[run])
        take_in(tails, scores[None, run])
        start = end + 1
    return out, tails


def _refit(tails: Tails, rows: np.ndarray, min_shape: float = MIN_SHAPE, min_scale: float = 0.0) -> None:
    """The GPD of each chosen row's ring, by probability-weighted moments: with the excesses
    in ascending order ``y_1..y_n``, ``a0 = mean(y)`` and ``a1 = mean(y_i * (n - i) / (n - 1))``
    give ``shape = 2 - a0 / (a0 - 2 a1)`` and ``scale = 2 a0 a1 / (a0 - 2 a1)`` (Hosking and
    Wallis' ``k`` is ``-shape``). Too few excesses: an exponential tail with their mean."""
    if not rows.any():
        return
    ring = tails.ring[rows].astype(np.float64)
    ordered = np.sort(ring, axis=1)  # NaN last
    n = np.count_nonzero(np.isfinite(ordered), axis=1)
    i = np.arange(1, ordered.shape[1] + 1)[None, :]
    values = np.where(np.isfinite(ordered), ordered, 0.0)
    with np.errstate(all="ignore"):
        a0 = values.sum(axis=1) / np.maximum(n, 1)
        weights = np.where(i <= n[:, None], (n[:, None] - i) / np.maximum(n[:, None] - 1, 1), 0.0)
        a1 = (values * weights).sum(axis=1) / np.maximum(n, 1)
        gap = a0 - 2.0 * a1
        shape = np.where(gap > 0, 2.0 - a0 / gap, 0.0)
        scale = np.where(gap > 0, 2.0 * a0 * a1 / gap, a0)
    usable = (n >= MIN_EXCESSES) & (gap > 0) & (scale > 0)
    shape = np.where(usable, np.clip(shape, min_shape, MAX_SHAPE), 0.0)
    scale = np.where(usable, scale, np.maximum(a0, 1e-12))
    tails.shape[rows] = shape
    tails.scale[rows] = np.maximum(np.nan_to_num(scale, nan=1e-12), max(min_scale, 1e-12))


def unit_scores(chance: np.ndarray) -> np.ndarray:
    """Chances as scores in [0, 1]: ``L / (1 + L)`` with ``L = -log10(chance)`` (0.8 at 1e-4;
    higher = rarer); NaN stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rarity = -np.log10(np.clip(chance, 1e-300, 1.0))
    return rarity / (1.0 + rarity)


def _quantile_rows(values: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile of each row's finite values (NaN for a row without any)."""
    ordered = np.sort(values, axis=1)
    n = np.count_nonzero(np.isfinite(values), axis=1)
    position = np.clip(q * (n - 1), 0, None)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(n - 1, 0))
    rows = np.arange(len(values))
    frac = position - low
    out = ordered[rows, low] * (1 - frac) + ordered[rows, high] * frac
    return np.where(n > 0, out, np.nan)
