"""The NAB score of a detector's anomaly scores, computed the way NAB's sweeper does.

Per file, every row after the probation period is either inside a labelled window or outside
all of them. A detection (score >= threshold) inside a window earns ``A_TP * s(y) / s(-1)``, only
the earliest one per window counting; ``y`` is the row's position against the window's right
edge in window lengths. A window without detection costs ``A_FN``. A detection outside windows
costs ``A_FP * s(y)`` with ``y`` its distance past the preceding window (in that window's length
minus one, as NAB computes it), or the full ``A_FP`` when no window precedes it. ``s`` is the
scaled sigmoid ``2 / (1 + exp(5 y)) - 1`` (-1 beyond ``y = 3``). One threshold per profile is
chosen for the whole corpus by sweeping every distinct score; the raw score is then normalised
so that a detector that never fires scores 0 and a perfect one 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROBATION_SHARE = 0.15
PROBATION_MAX_ROWS = 750
OUTSIDE = -1  # row outside every window
PROBATION = -2  # row in the unscored warm-up
NEVER = 1.1  # the threshold of a detector that never fires (scores are in [0, 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """Weights of one NAB application profile."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: tuple[Profile, ...] = (
    Profile(name="standard", a_tp=1.0, a_fp=0.11, a_fn=1.0),
    Profile(name="reward_low_FP_rate", a_tp=1.0, a_fp=0.22, a_fn=1.0),
    Profile(name="reward_low_FN_rate", a_tp=1.0, a_fp=0.11, a_fn=2.0),
)


def probation_rows(rows: int) -> int:
    """Rows at the start of a file that are seen but not scored: 15 %, at most 750."""
    return int(min(math.floor(PROBATION_SHARE * rows), PROBATION_MAX_ROWS))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's ``2 / (1 + exp(5 y)) - 1``, exactly -1 for ``y > 3``."""
    y = np.asarray(y, dtype="float64")
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, value)


MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True, slots=True)
class RowLabels:
    """What each row of one file would be worth if detected.

    ``window``: index of the window the row is in, ``OUTSIDE`` or ``PROBATION``.
    ``tp``: for rows in a window, ``s(y) / s(-1)`` (1 at the window's first row).
    ``fp``: for rows outside windows, ``s(y)`` (negative; -1 far from any window).
    ``inside``: rows inside a window, probation included (the ``label`` column of results).
    ``windows``: how many windows have at least one scored row.
    """

    window: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    inside: np.ndarray
    windows: int


class WindowError(ValueError):
    """A window edge is not a timestamp of the file."""


def label_rows(timestamps: Sequence | pd.DatetimeIndex, windows: Sequence[tuple]) -> RowLabels:
    """Label the rows of one file (in file order) against its windows, as NAB's sweeper does:
    a window is entered at the first row (from the current one on) carrying its start, left at
    the first row carrying its end; its width runs between the first rows carrying each edge."""
    ts = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
    n = len(ts)
    window = np.full(n, OUTSIDE, dtype=np.int64)
    tp = np.zeros(n)
    fp = np.full(n, -1.0)
    rows = np.arange(n)
    scan = 0
    for k, (start, end) in enumerate(windows):
        start_ns, end_ns = _ns(start), _ns(end)
        entries = np.flatnonzero(ts[scan:] == start_ns)
        if len(entries) == 0:
            break  # NAB waits for this window's start forever: no later window is entered
        entry = scan + int(entries[0])
        right = _first(ts, end_ns, end)
        width = float(right - _first(ts, start_ns, start) + 1)
        exits = np.flatnonzero(ts[entry:] == end_ns)
        exit_ = entry + int(exits[0]) if len(exits) else n - 1
        inside = slice(entry, exit_ + 1)
        window[inside] = k
        tp[inside] = scaled_sigmoid(-(right - rows[inside] + 1) / width) / MAX_TP
        after = slice(exit_ + 1, n)
        with np.errstate(divide="ignore"):
            distance = np.abs(right - rows[after]) / (width - 1.0) if width > 1 else np.full(n - exit_ - 1, np.inf)
        fp[after] = scaled_sigmoid(distance)
        scan = exit_ + 1
    inside = window >= 0
    window[: probation_rows(n)] = PROBATION
    scored = {int(w) for w in np.unique(window) if w >= 0}
    return RowLabels(window=window, tp=tp, fp=fp, inside=inside, windows=len(scored))


def _ns(value: object) -> int:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def _first(ts: np.ndarray, value_ns: int, shown: object) -> int:
    hits = np.flatnonzero(ts == value_ns)
    if len(hits) == 0:
        raise WindowError(f"window edge {shown} is not a timestamp of the file")
    return int(hits[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileScore:
    """The outcome of one profile at its chosen threshold.

    ``precision`` = detected windows / (detected windows + false-positive rows);
    ``recall`` = detected windows / windows.
    """

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    windows: int
    detected: int
    false_positives: int

    @property
    def recall(self) -> float:
        return self.detected / self.windows if self.windows else 0.0

    @property
    def precision(self) -> float:
        found = self.detected + self.false_positives
        return self.detected / found if found else 0.0


Run = tuple[RowLabels, np.ndarray]


def evaluate(runs: Sequence[Run], profile: Profile, threshold: float) -> ProfileScore:
    """Score ``runs`` (labels and scores of each file) at one threshold."""
    raw, detected, false_positives, windows = 0.0, 0, 0, 0
    for labels, scores in runs:
        hit = _clean(scores) >= threshold
        outside = (labels.window == OUTSIDE) & hit
        false_positives += int(outside.sum())
        raw += profile.a_fp * float(labels.fp[outside].sum())
        windows += labels.windows
        for k in np.unique(labels.window[labels.window >= 0]):
            rows = np.flatnonzero((labels.window == k) & hit)
            if len(rows):
                detected += 1
                raw += profile.a_tp * float(labels.tp[rows[0]])
            else:
                raw -= profile.a_fn
    return _outcome(profile, threshold, raw, windows, detected, false_positives)


def optimise(runs: Sequence[Run], profile: Profile) -> ProfileScore:
    """The best raw score over every distinct score value used as threshold (NAB keeps the
    highest threshold among equals), evaluated in one sorted, cumulative pass."""
    values, deltas = [], []
    windows = 0
    for labels, scores in runs:
        scores = _clean(scores)
        windows += labels.windows
        outside = labels.window == OUTSIDE
        values.append(scores[outside])
        deltas.append(profile.a_fp * labels.fp[outside])
        for k in np.unique(labels.window[labels.window >= 0]):
            rows = np.flatnonzero(labels.window == k)
            v, d = _window_events(scores[rows], profile.a_tp * labels.tp[rows], -profile.a_fn)
            values.append(v)
            deltas.append(d)
    value = np.concatenate(values) if values else np.zeros(0)
    delta = np.concatenate(deltas) if deltas else np.zeros(0)
    null = -profile.a_fn * windows
    best_threshold, best_raw = NEVER, null
    if len(value):
        order = np.argsort(-value, kind="stable")
        value, total = value[order], null + np.cumsum(delta[order])
        last_of_group = np.append(value[1:] != value[:-1], True)
        candidates, raws = value[last_of_group], total[last_of_group]
        i = int(np.argmax(raws))
        if raws[i] > best_raw:
            best_threshold, best_raw = float(candidates[i]), float(raws[i])
    return evaluate(runs, profile, best_threshold)


def _window_events(scores: np.ndarray, rewards: np.ndarray, miss: float) -> tuple[np.ndarray, np.ndarray]:
    """As the threshold falls, a window's worth changes only at rows whose score beats every
    earlier row's: when the threshold reaches such a row, it becomes the earliest detection.
    These rows' scores rise with their position, so the sweep meets them last to first.
    Returns their scores and the change in the window's worth at each."""
    before = np.maximum.accumulate(np.concatenate(([-np.inf], scores[:-1])))
    record = scores > before
    worth = rewards[record]
    return scores[record], worth - np.append(worth[1:], miss)


def _clean(scores: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(scores, dtype="float64"), nan=0.0)


def _outcome(profile: Profile, threshold: float, raw: float, windows: int, detected: int,
             false_positives: int) -> ProfileScore:
    null, perfect = -profile.a_fn * windows, profile.a_tp * windows
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return ProfileScore(profile=profile.name, threshold=threshold, raw=raw, null=null, perfect=perfect,
                        score=score, windows=windows, detected=detected, false_positives=false_positives)


def score_runs(runs: Sequence[Run], profiles: Sequence[Profile] = PROFILES, *,
               threshold: float | None = None) -> dict[str, ProfileScore]:
    """Each profile's outcome over ``runs`` at ``threshold``, or at its best threshold when
    none is given, keyed by profile name."""
    if threshold is not None:
        return {p.name: evaluate(runs, p, threshold) for p in profiles}
    return {p.name: optimise(runs, p) for p in profiles}


def lofo_runs(runs: Sequence[tuple[str, RowLabels, np.ndarray]],
              profiles: Sequence[Profile] = PROFILES) -> dict[str, ProfileScore]:
    """Leave one folder out: for each folder, the threshold is swept on the other folders only
    and the folder is scored at it; the folders' raw scores add up and are normalised on all
    windows. What a threshold chosen on other data earns on data it never saw. With a single
    folder there is nothing to leave out: the result is empty."""
    folders = sorted({folder for folder, _, _ in runs})
    if len(folders) < 2:
        return {}
    out = {}
    for profile in profiles:
        raw, windows, detected, false_positives = 0.0, 0, 0, 0
        for folder in folders:
            rest = [(labels, scores) for f, labels, scores in runs if f != folder]
            held = [(labels, scores) for f, labels, scores in runs if f == folder]
            outcome = evaluate(held, profile, optimise(rest, profile).threshold)
            raw += outcome.raw
            windows += outcome.windows
            detected += outcome.detected
            false_positives += outcome.false_positives
        out[profile.name] = _outcome(profile, float("nan"), raw, windows, detected, false_positives)
    return out
