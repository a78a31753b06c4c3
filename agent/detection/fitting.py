"""Fitting in the daemon: which subjects a cycle refits, and the refit itself.

Each configured detector groups its series into subjects (see ``specs``). A subject is fitted
on first sight once its history suffices (until then it is skipped without a word), and
refitted when its turn comes: subjects are spread over the cycles of one refit interval by a
stable hash, and a cycle fits at most ``refit.max_per_cycle`` series, so no cycle pays for all.
A refit reads history that leaves out incident windows and past hits (``baselines``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING

import pandas as pd

from agent.clock import to_epoch
from agent.detection.baselines import mask_for_fit
from agent.detection.codec import encode_state
from agent.detection.history import HistoryReader, read_history
from agent.detection.specs import Grouping, Spec, stable_bucket
from agent.flow.samples import Samples, series_id
from agent.log import kv
from agent.store.detectors import Exclusions, FittedState
from detectors.base import Detector

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Unit:
    """One fitted detector and the series (columns) it was fitted on."""

    spec: Spec
    subject: str
    detector: Detector
    columns: tuple[str, ...]
    fitted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    spec: Spec
    subject: str
    series: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.name, self.subject)

    @property
    def entity_id(self) -> str:
        """The pseudo-series an entity's hits are filed under: ``<detector>{<label>="<entity>"}``."""
        return series_id(self.spec.name, {self.spec.entity_label: self.subject})


class Why(IntEnum):
    """Why a subject is fitted this cycle; lower goes first when the budget is short.
    CHECKPOINT: a streaming subject's turn: its state is saved, nothing is refitted."""

    FIRST_SIGHT = 0
    OVERDUE = 1
    TURN = 2
    CHECKPOINT = 3


@dataclass(slots=True)
class Schedule:
    """Remembers when a series whose history was short may be tried again."""

    not_before: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def waiting(self, spec: Spec, sid: str, now: datetime) -> bool:
        at = self.not_before.get((spec.name, sid))
        return at is not None and now < at


def due(subjects: Sequence[Subject], units: dict[tuple[str, str], Unit], schedule: Schedule, *,
        now: datetime, interval_s: float, refit_s: float) -> list[tuple[Why, Subject]]:
    """Subjects to fit this cycle, most urgent first (not yet cut to the budget)."""
    out: list[tuple[Why, Subject]] = []
    cycle_no = int(to_epoch(now) // max(interval_s, 1e-9))
    waits = schedule.not_before
    for subj in subjects:
        unit = units.get(subj.key)
        name = subj.spec.name  # Schedule.waiting inlined: this runs for every series every cycle
        fresh = [s for s in subj.series if (at := waits.get((name, s))) is None or now >= at] if waits else subj.series
        if not fresh:
            continue  # short history or a failed fit: wait until the series may be tried again
        if unit is None or not set(unit.columns).issuperset(fresh):
            out.append((Why.FIRST_SIGHT, subj))
            continue
        if not subj.spec.needs_history and not subj.spec.checkpoints:
            continue  # nothing to learn: fitted once, kept
        age_s = (now - unit.fitted_at).total_seconds()
        if age_s >= 1.5 * refit_s and subj.spec.needs_history:  # nothing to refit from otherwise
            out.append((Why.OVERDUE, subj))
        elif age_s >= 0.5 * refit_s and _turn(subj) == cycle_no % subj.spec.cycles:
            out.append((Why.CHECKPOINT if subj.spec.checkpoints else Why.TURN, subj))
    out.sort(key=lambda pair: pair[0])
    return out


def _turn(subj: Subject) -> int:
    """The cycle of the refit interval (0 .. cycles-1) in which ``subj`` is refitted: slices
    spread evenly over the interval, entities and models by a stable hash."""
    spec = subj.spec
    if spec.grouping is Grouping.SLICE and subj.subject.startswith("slice-"):
        return int(subj.subject[len("slice-"):]) * spec.cycles // max(spec.slices, 1)
    return stable_bucket(f"{spec.name}|{subj.subject}", spec.cycles)


def within_budget(plan: list[tuple[Why, Subject]], budget: int) -> list[tuple[Why, Subject]]:
    """The first subjects whose series fit in ``budget`` (always at least one subject);
    detectors that learn nothing from history cost nothing."""
    chosen, spent = [], 0
    for why, subj in plan:
        cost = len(subj.series) if subj.spec.needs_history and why is not Why.CHECKPOINT else 0
        if chosen and spent + cost > budget and cost:
            continue
        chosen.append((why, subj))
        spent += cost
    return chosen


def sufficient(frame: pd.DataFrame, *, min_points: int, min_history_s: float) -> tuple[list[str], dict[str, float]]:
    """Columns with enough history, and for the others how many seconds are still missing."""
    ok, short = [], {}
    for column in frame.columns:
        points = frame[column].dropna()
        span = (points.index[-1] - points.index[0]).total_seconds() if len(points) else 0.0
        if len(points) >= min_points and span >= min_history_s:
            ok.append(column)
        else:
            short[column] = max(min_history_s - span, 0.0)
    return ok, short


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """What this cycle's refits learn from: values and what to leave out, read once for all."""

    frame: pd.DataFrame
    exclusions: Mapping[str, Exclusions]


def read_refit_history(ctx: "Context", read: HistoryReader, subjects: Sequence[Subject], samples: Samples, *,
                       now: datetime) -> History:
    """One read of history and exclusions for every subject fitted this cycle (a source may
    answer a range query for all series as fast as for one)."""
    wanted = sorted({sid for subj in subjects if subj.spec.needs_history for sid in subj.series})
    if not wanted:
        return History(frame=pd.DataFrame(dtype="float64"), exclusions={})
    start = now - timedelta(seconds=ctx.config.detectors.refit.history)
    frame = read_history(read, wanted, start, now, step_s=ctx.config.detectors.refit.step, current=samples)
    entities = [subj.entity_id for subj in subjects if subj.spec.grouping is Grouping.ENTITY]
    return History(frame=frame, exclusions=ctx.store.refit_exclusions([*wanted, *entities], start, now, now=now))


def checkpoint(unit: Unit, now: datetime) -> FittedState:
    """The state a streaming unit holds now, to be saved as if it had just been fitted."""
    unit.fitted_at = now
    return FittedState(detector=unit.spec.name, subject=unit.subject, fitted_at=now, points=0,
                       params={"fingerprint": unit.spec.fingerprint, "columns": list(unit.columns)},
                       state=encode_state(unit.detector.get_state()))


def fit_subject(ctx: "Context", subj: Subject, history: History, samples: Samples, schedule: Schedule, *,
                now: datetime, before: pd.Timestamp | None = None) -> tuple[Unit, FittedState] | None:
    """Fit one subject on its incident-free history up to ``before`` (after it come the rows this
    cycle judges: a point is judged only by what came before it); None when that history is
    still too short."""
    spec, refit = subj.spec, ctx.config.detectors.refit
    detector = spec.build()
    if not spec.needs_history:
        detector.fit(None)
        columns, points = subj.series, 0
    else:
        frame = history.frame.reindex(columns=list(subj.series))
        if before is not None:
            frame = frame[frame.index <= before]
        # An entity's rows go to its detector whole: a point excluded on one series excludes the row.
        rows = [subj.entity_id, *subj.series] if spec.grouping is Grouping.ENTITY else []
        exclusions = history.exclusions if spec.incident_aware else {}
        masked = mask_for_fit(frame, exclusions, row_subjects=rows)
        if masked.relaxed:
            log.info(kv("detect.refit_exclusions_relaxed", detector=spec.name, subject=subj.subject,
                        series=len(masked.relaxed)))
        ok, short = sufficient(masked.frame, min_points=refit.min_points, min_history_s=spec.min_history_s)
        for sid, missing_s in short.items():
            schedule.not_before[(spec.name, sid)] = now + timedelta(seconds=max(missing_s, ctx.config.agent.interval))
        if not ok or (spec.grouping is Grouping.ENTITY and len(ok) < spec.min_features):
            return None
        fit_on = masked.frame[ok]
        if spec.grouping is Grouping.ENTITY:
            names = spec.feature_names(ok, samples.series)
            detector.fit(fit_on.rename(columns=names), entity=subj.subject)
        else:
            detector.fit(fit_on)
        columns, points = tuple(ok), int(fit_on.notna().to_numpy().sum())
        if masked.dropped:
            log.info(kv("detect.refit_excluded", detector=spec.name, subject=subj.subject, points=masked.dropped))
    for sid in columns:
        schedule.not_before.pop((spec.name, sid), None)
    unit = Unit(spec=spec, subject=subj.subject, detector=detector, columns=columns, fitted_at=now)
    state = FittedState(detector=spec.name, subject=subj.subject, fitted_at=now, points=points,
                        params={"fingerprint": spec.fingerprint, "columns": list(columns)},
                        state=encode_state(detector.get_state()))
    return unit, state
