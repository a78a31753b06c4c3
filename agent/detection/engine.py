"""The detect stage: fitted detectors, loaded from the store at start, refitted by a job of
their own, and used to score each cycle's new points.

One ``Engine`` lives per Context. It keeps, per series, the newest timestamp already scored,
so a frame that repeats older points (a source returning a window) scores only what is new.
A restarted agent has no such marks: it scores the newest interval of its first frame, with the
state it loads from the store, and refits nothing until a subject's turn comes.

``detect`` runs in the cycle; ``refit`` runs in the daemon's refit job, on the series of the
last frame judged. The two may overlap: fitting happens outside the engine's lock, and only the
fitted detectors are swapped in under it, so a cycle never waits for a refit to learn.
"""

from __future__ import annotations

import inspect
import logging
import pickle
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agent.config.detectors import DetectorsConfig
from agent.detection.budget import Test, alarm_chances, entity_host, series_hosts, steps_s
from agent.detection.codec import decode_state, encode_state
from agent.detection.drift import DriftWatch
from agent.detection.fitting import (
    Schedule,
    Subject,
    Unit,
    Why,
    checkpoint,
    due,
    fit_subject,
    read_refit_history,
    within_budget,
)
from agent.detection.gauges import SeriesScore
from agent.detection.history import HistoryReader, read_history
from agent.detection.specs import Grouping, Spec, compile_specs
from agent.flow.detection import Detection
from agent.flow.samples import Samples
from agent.flow.status import WarmingUp
from agent.log import kv
from agent.store.detectors import FittedState
from detectors.base import Hit, Scores
from detectors.errors import DetectorError

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, ctx: "Context", history: HistoryReader) -> None:
        self.ctx = ctx
        self.history = history
        self._lock = threading.RLock()  # the cycle's detect and the refit job's swaps
        self.config: DetectorsConfig | None = None
        self.specs: list[Spec] = []
        self.units: dict[tuple[str, str], Unit] = {}
        self.schedule = Schedule()
        self.scored_until: dict[str, pd.Timestamp] = {}  # series -> newest row judged
        self.latest: Samples | None = None  # the last frame judged: the refit job's subjects
        self._latest_subjects: list[Subject] = []  # its subjects, as the cycle grouped them
        self.drift = DriftWatch(history)
        # streaming units loaded from the store: the points since their checkpoint are read from
        # history and taken in before they judge anything new (see _catch_up)
        self._resume: set[tuple[str, str]] = set()
        # this cycle's scores of new points in [0, 1], a frame per unit (see score_of): what a
        # backtest writes and sweeps
        self.scores: list[pd.DataFrame] = []
        # this cycle's newest scored point of each series and detector, for the per-series gauges
        self.newest: list[SeriesScore] = []
        # series judged this cycle that cannot raise a hit yet (too little of their past known)
        # Per detector, the series scored in the last cycle whose newest point has no chance yet.
        self.calibrating: dict[str, set[str]] = {}
        # this cycle's alarm chance per test (a series id, or "spec|entity"): what a replay
        # re-thresholds for a stricter page budget
        self.levels: dict[str, float] = {}
        # this cycle's chances of new points from the calibrated per-series detectors, a frame per
        # unit: what the group detectors judge
        self._chances: list[pd.DataFrame] = []
        self._subjects_of: tuple[Samples, list[Spec], list[Subject]] | None = None

    # -- configuration and stored state --------------------------------------------------------

    def sync(self) -> None:
        """Compile the config; on first use (or a reload that changed it) load the stored state."""
        config = self.ctx.config.detectors
        if config is self.config:
            return
        self.config = config
        self.specs = compile_specs(config, cycle_interval_s=self.ctx.config.agent.interval)
        self.units = {}
        self._load()

    def _load(self) -> None:
        by_name = {s.name: s for s in self.specs}
        loaded = stale = 0
        for stored in self.ctx.store.load_fitted_states():
            spec = by_name.get(stored.detector)
            if spec is None or stored.params.get("fingerprint") != spec.fingerprint:
                stale += 1
                continue
            try:
                detector = spec.build().set_state(decode_state(stored.state))
            except (DetectorError, ValueError, TypeError, AttributeError, ImportError, EOFError,
                    pickle.UnpicklingError) as exc:  # state from another version: refit it
                log.warning(kv("detect.state_unusable", detector=spec.name, subject=stored.subject, error=str(exc)))
                stale += 1
                continue
            self.units[(spec.name, stored.subject)] = Unit(
                spec=spec, subject=stored.subject, detector=detector,
                columns=tuple(stored.params.get("columns", ())), fitted_at=stored.fitted_at)
            if spec.streaming and spec.grouping is not Grouping.GROUP:  # a group has no history to catch up on
                self._resume.add((spec.name, stored.subject))
            loaded += 1
        log.info(kv("detect.state_loaded", subjects=loaded, stale=stale or None))

    def snapshot(self) -> list[FittedState]:
        """Every unit as it is now (its state, columns and fitted time): with ``restore``, how a
        replay stopped after a finished day continues exactly where it was (a restarted daemon
        catches up from its last checkpoint instead)."""
        with self._lock:
            return [FittedState(detector=unit.spec.name, subject=unit.subject, fitted_at=unit.fitted_at, points=0,
                                params={"fingerprint": unit.spec.fingerprint, "columns": list(unit.columns)},
                                state=encode_state(unit.detector.get_state()))
                    for unit in self.units.values()]

    def restore(self, states: list[FittedState], not_before: Mapping[tuple[str, str], datetime]) -> None:
        """The units of a ``snapshot`` and the refit schedule's waits, taken in as they were (no
        catch-up: they had judged every row before the replay stopped)."""
        with self._lock:
            self.sync()
            by_name = {s.name: s for s in self.specs}
            self.units = {}
            for stored in states:
                spec = by_name[stored.detector]
                detector = spec.build().set_state(decode_state(stored.state))
                self.units[(spec.name, stored.subject)] = Unit(
                    spec=spec, subject=stored.subject, detector=detector,
                    columns=tuple(stored.params.get("columns", ())), fitted_at=stored.fitted_at)
            self._resume.clear()
            self.schedule.not_before = dict(not_before)

    # -- one cycle ------------------------------------------------------------------------------

    def detect(self, samples: Samples, *, now: datetime) -> Detection:
        """Hits among the new points of ``samples``, and every signal judged with data."""
        with self._lock:
            judged: set[str] = set()
            self.scores = []
            self.newest = []
            self.calibrating = {}
            self._chances = []
            self.sync()
            subjects = self._subjects(samples)
            new_from = self._new_points(samples)
            self._catch_up(subjects, samples, new_from)
            hits = self._score(subjects, samples, new_from, judged)
            hits += self.drift.detect(self.ctx, samples, now=now, judged=judged)
            if new_from:
                self.scored_until.update(dict.fromkeys(new_from, samples.values.index.max()))
            self.latest = samples
            self._latest_subjects = subjects
            self._publish()
            self.ctx.metrics.series_warming.set(sum(w.series + w.calibrating for w in self.warming()))
        return Detection(at=now, samples=samples, hits=hits, judged=frozenset(judged))

    def _subjects(self, samples: Samples) -> list[Subject]:
        """The subjects of ``samples``' live series; the refit job asks again about the same
        frame every cycle until the next one is judged, so the last answer is kept."""
        cached = self._subjects_of
        if cached is not None and cached[0] is samples and cached[1] is self.specs:
            return cached[2]
        live = {sid: info for sid, info in samples.series.items()
                if sid not in samples.gaps and sid in samples.values.columns}
        subjects = [Subject(spec=spec, subject=name, series=tuple(sids))
                    for spec in self.specs for name, sids in spec.subjects(live).items()]
        self._subjects_of = (samples, self.specs, subjects)
        return subjects

    def _publish(self) -> None:
        """The newest scores to the per-series gauges, capped at ``detectors.gauges.max_series``."""
        cap = self.ctx.config.detectors.gauges.max_series
        dropped = self.ctx.metrics.series_scores.publish(self.newest, max_series=cap)
        if dropped:
            self.ctx.metrics.score_series_dropped.inc(dropped)
            log.info(kv("detect.gauges_capped", scored=len(self.newest), dropped=dropped, max_series=cap))

    # -- what is still warming up ----------------------------------------------------------------

    def warming(self) -> tuple[WarmingUp, ...]:
        """Per detector, the series of the last frame judged that it watches but has not fitted
        yet (their history is shorter than its ``min_history``), and when the first and the last
        of them may be fitted (None until the refit job has measured their history). Each is
        scored from the first cycle after its fit; ``calibrating`` counts those scored whose
        newest point has no chance yet. Read-only."""
        with self._lock:
            waiting: dict[str, list[str]] = {}
            specs: dict[str, Spec] = {}
            for subj in self._latest_subjects:
                if not subj.spec.needs_history:
                    continue
                unit = self.units.get(subj.key)
                fitted = set(unit.columns) if unit is not None else set()
                waiting.setdefault(subj.spec.name, []).extend(s for s in subj.series if s not in fitted)
                specs[subj.spec.name] = subj.spec
            out = []
            for name in sorted(set(waiting) | set(self.calibrating)):
                sids = waiting.get(name, [])
                calibrating = len(self.calibrating.get(name, ()))
                if not sids and not calibrating:
                    continue
                spec = specs.get(name) or next(s for s in self.specs if s.name == name)
                known = [at for sid in sids if (at := self.schedule.not_before.get((name, sid))) is not None]
                everyone = len(known) == len(sids)
                out.append(WarmingUp(detector=name, series=len(sids), min_history_s=spec.min_history_s,
                                     first_fit_at=min(known) if known else None,
                                     last_fit_at=max(known) if everyone and sids else None,
                                     calibrating=calibrating))
            return tuple(out)

    # -- the refit job ----------------------------------------------------------------------------

    def refit(self, *, now: datetime, samples: Samples | None = None) -> int:
        """Fit the subjects due at ``now`` (first sight, overdue, or their turn), within the
        budget, on ``samples``' series (None: the last frame judged) and their history before
        the points not judged yet; save their state. Returns how many were fitted."""
        with self._lock:
            self.sync()
            samples = samples if samples is not None else self.latest
            if samples is None:
                return 0
            specs, subjects = self.specs, self._subjects(samples)
            refit = self.ctx.config.detectors.refit
            plan = due(subjects, self.units, self.schedule, now=now, interval_s=self.ctx.config.agent.interval,
                       refit_s=refit.interval)
            if not plan:
                return 0
            # Fit on what came before the rows not judged yet (those of ``samples``, or newer ones
            # the source already has): a point is judged only by what came before it.
            new_from = self._new_points(samples)
            judged_until = {sid: new_from.get(sid, self.scored_until.get(sid))
                            for subj in subjects for sid in subj.series}
            chosen = within_budget(plan, refit.max_per_cycle)
            saved = [checkpoint(self.units[subj.key], now) for why, subj in chosen if why is Why.CHECKPOINT]
        chosen = [(why, subj) for why, subj in chosen if why is not Why.CHECKPOINT]
        fitted = self._fit(chosen, samples, judged_until, now=now) if chosen else []
        with self._lock:
            if self.specs is specs:  # a reload since recompiled the specs: these fits are of the old ones
                for unit, state in fitted:
                    old = self.units.get((unit.spec.name, unit.subject))
                    if old is not None and unit.spec.grouping is Grouping.GROUP:
                        # new members change nothing the group learnt of its own past: keep it
                        unit.detector.set_state(old.detector.get_state())
                        state = checkpoint(unit, now)
                    self.units[(unit.spec.name, unit.subject)] = unit
                    saved.append(state)
        if saved:
            self.ctx.store.save_fitted_states(saved, now=now)
        return len(fitted)

    def refit_due(self, *, now: datetime) -> frozenset[Why]:
        """Why the refit job would act at ``now`` (empty: it would not): before a fit a replay
        judges the data before ``now`` first, as the daemon's cycles would have; a checkpoint
        only moves a streaming unit's fitted time (it learns nothing)."""
        with self._lock:
            self.sync()
            if self.latest is None:
                return frozenset()
            refit = self.ctx.config.detectors.refit
            plan = due(self._subjects(self.latest), self.units, self.schedule, now=now,
                       interval_s=self.ctx.config.agent.interval, refit_s=refit.interval)
            return frozenset(why for why, _ in plan)

    def _fit(self, chosen: list[tuple[Why, Subject]], samples: Samples,
             judged_until: Mapping[str, pd.Timestamp | None], *, now: datetime) -> list[tuple[Unit, FittedState]]:
        try:
            history = read_refit_history(self.ctx, self.history, [subj for _, subj in chosen], samples, now=now)
        except Exception as exc:  # a source that cannot give history: refit later, score with what we have
            log.warning(kv("detect.history_failed", subjects=len(chosen), error=str(exc)))
            chosen = [(why, subj) for why, subj in chosen if not subj.spec.needs_history]
            history = None
        out = []
        for why, subj in chosen:
            try:
                starts = [at for s in subj.series if (at := judged_until.get(s)) is not None]
                fitted = fit_subject(self.ctx, subj, history, samples, self.schedule, now=now,
                                     before=min(starts) if starts else None)
            except DetectorError as exc:  # the detector refused this data (too short, constant...)
                log.warning(kv("detect.fit_failed", detector=subj.spec.name, subject=subj.subject, error=str(exc)))
                self._fit_failed(subj, now)
                continue
            except Exception as exc:  # one subject's bad data must not stop the others' fits
                log.exception(kv("detect.fit_failed", detector=subj.spec.name, subject=subj.subject,
                                 error=type(exc).__name__))
                self._fit_failed(subj, now)
                continue
            if fitted is None:
                continue
            out.append(fitted)
            self.ctx.metrics.refits.labels(detector=subj.spec.name).inc()
            log.debug(kv("detect.fitted", detector=subj.spec.name, subject=subj.subject, why=why.name.lower(),
                          series=len(fitted[0].columns)))
        return out

    def _catch_up(self, subjects: list[Subject], samples: Samples, new_from: Mapping[str, pd.Timestamp]) -> None:
        """Streaming units loaded from the store take in the points since their checkpoint (read
        from history) before they judge new ones; a source that cannot give them leaves a gap."""
        waiting = [subj for subj in subjects if subj.key in self._resume and subj.key in self.units]
        if not waiting:
            return
        self._resume.difference_update(subj.key for subj in waiting)
        starts = [new_from[s] for subj in waiting for s in subj.series if s in new_from]
        if not starts:
            return
        end = min(starts)
        start = min(self.units[subj.key].fitted_at for subj in waiting) - timedelta(seconds=self.ctx.config.agent.interval)
        if pd.Timestamp(start) >= end:
            return
        series = sorted({c for subj in waiting for c in self.units[subj.key].columns})
        try:
            frame = read_history(self.history, series, start, end.to_pydatetime(),
                                 step_s=self.ctx.config.detectors.refit.step, current=samples)
        except Exception as exc:  # the points since the checkpoint stay a gap
            log.warning(kv("detect.catch_up_failed", subjects=len(waiting), error=str(exc)))
            return
        for subj in waiting:
            unit = self.units[subj.key]
            unit.detector.update(self._named(unit, subj, frame.reindex(columns=list(unit.columns)), samples))
        log.info(kv("detect.caught_up", subjects=len(waiting), series=len(series), since=start))

    def _fit_failed(self, subj: Subject, now: datetime) -> None:
        """Count it and leave the subject alone for a while (a quarter of the refit interval)."""
        self.ctx.metrics.detector_failures.labels(detector=subj.spec.name, phase="fit").inc()
        retry = now + timedelta(seconds=self.ctx.config.detectors.refit.interval / 4)
        for sid in subj.series:
            self.schedule.not_before[(subj.spec.name, sid)] = retry

    def _new_points(self, samples: Samples) -> dict[str, pd.Timestamp]:
        """Per live series with rows not judged yet: the time after which its rows are new. Rows
        with no value count too: a signal that stops is something the detectors judge."""
        values = samples.values
        if values.empty:
            return {}
        newest = values.index.max()
        fallback = newest - pd.Timedelta(seconds=self.ctx.config.agent.interval)
        out = {}
        for sid in samples.series:
            if sid in samples.gaps or sid not in values.columns:
                continue
            after = self.scored_until.get(sid, fallback)
            if newest > after:
                out[sid] = after
        return out

    def _score(self, subjects: list[Subject], samples: Samples, new_from: Mapping[str, pd.Timestamp],
               judged: set[str]) -> list[Hit]:
        hits: list[Hit] = []
        scored: set[str] = set()
        levels = self.levels = self._alarm_levels(subjects, samples, new_from)
        for subj in subjects:
            if subj.spec.grouping is Grouping.GROUP:
                continue  # judged after the series, by their chances (_score_groups)
            unit = self.units.get(subj.key)
            new = [c for c in unit.columns if c in new_from] if unit is not None else []
            if not new:
                continue
            after = min(new_from[c] for c in new)
            try:
                window = self._window(unit, subj, samples, after)
                found = self._score_unit(unit, subj, window, samples, new_from, levels)
                if hasattr(unit.detector, "update"):  # streaming state follows the points just judged
                    unit.detector.update(self._named(unit, subj, window, samples))
            except Exception as exc:  # one subject failing is counted; the rest are still scored
                log.exception(kv("detect.score_failed", detector=subj.spec.name, subject=subj.subject,
                                 error=type(exc).__name__))
                self.ctx.metrics.detector_failures.labels(detector=subj.spec.name, phase="score").inc()
                continue
            scored.update(new)
            judged.update(new)
            if subj.spec.grouping is Grouping.ENTITY:
                judged.add(subj.entity_id)
            for hit in found:
                # Only the new points' hits: context rows and repeated rows were judged before.
                since = after if subj.spec.grouping is Grouping.ENTITY else new_from.get(hit.series_id)
                if since is not None and pd.Timestamp(hit.ts) > since:
                    hits.append(hit)
                    self.ctx.metrics.hits.labels(detector=subj.spec.name).inc()
        self.ctx.metrics.series_scored.inc(len(scored))
        return hits + self._score_groups(subjects, samples, levels, judged)

    def _score_groups(self, subjects: list[Subject], samples: Samples, levels: Mapping[str, float],
                      judged: set[str]) -> list[Hit]:
        """Each group's new points, judged by the chances its series' own detectors gave them
        this cycle; a group detector then takes them in."""
        groups = [subj for subj in subjects if subj.spec.grouping is Grouping.GROUP and subj.key in self.units]
        if not groups or not self._chances:
            return []
        chances = _by_series(self._chances)
        hits: list[Hit] = []
        for subj in groups:
            unit = self.units[subj.key]
            window = chances[[c for c in subj.series if c in chances.columns]].dropna(how="all")
            if window.empty:
                continue
            try:
                scores = unit.detector.score(window, entity=subj.subject, alarm_chance=levels.get(_entity_key(subj), 0.0))
                unit.detector.update(window)
            except Exception as exc:  # one group failing is counted; the rest are still judged
                log.exception(kv("detect.score_failed", detector=subj.spec.name, subject=subj.subject,
                                 error=type(exc).__name__))
                self.ctx.metrics.detector_failures.labels(detector=subj.spec.name, phase="score").inc()
                continue
            judged.add(subj.entity_id)
            if _newest_chance_missing(scores.chances):
                self.calibrating.setdefault(subj.spec.name, set()).add(subj.entity_id)
            for hit in scores.hits:
                filled = self._fill(hit, subj, samples)
                if filled is not None:
                    hits.append(filled)
                    self.ctx.metrics.hits.labels(detector=subj.spec.name).inc()
        return hits

    @staticmethod
    def _window(unit: Unit, subj: Subject, samples: Samples, after: pd.Timestamp) -> pd.DataFrame:
        """The unit's rows after ``after``, with ``context_points`` rows before them; a series
        whose source failed (a gap) is left out rather than read as silent."""
        if subj.spec.grouping is Grouping.ENTITY:
            # The forest needs every feature it was fitted on: absent or failed ones are NaN
            # (it fills them with their training median).
            window = samples.values.reindex(columns=list(unit.columns))
            window.loc[:, [c for c in unit.columns if c in samples.gaps]] = float("nan")
        else:
            window = samples.values[[c for c in unit.columns
                                     if c in samples.values.columns and c not in samples.gaps]]
        position = window.index.searchsorted(after, side="right")
        return window.iloc[max(0, position - subj.spec.context_points):]

    def _score_unit(self, unit: Unit, subj: Subject, window: pd.DataFrame, samples: Samples,
                    new_from: Mapping[str, pd.Timestamp], levels: Mapping[str, float]) -> list[Hit]:
        calibrated = _calibrated(unit.detector)
        if subj.spec.grouping is Grouping.ENTITY:
            extra = {"alarm_chance": levels.get(_entity_key(subj), 0.0)} if calibrated else {}
            scores = unit.detector.score(self._named(unit, subj, window, samples), entity=subj.subject, **extra)
            if calibrated and _newest_chance_missing(scores.chances):
                self.calibrating.setdefault(subj.spec.name, set()).add(subj.entity_id)
        else:
            extra = {"alarm_chance": {c: levels.get(c, 0.0) for c in window.columns}} if calibrated else {}
            scores = unit.detector.score(window, **extra)
            self._keep_scores(unit, scores.scores, new_from)
            self._keep_newest(subj, unit, scores, samples, new_from, levels if calibrated else None)
        return [h for h in (self._fill(hit, subj, samples) for hit in scores.hits) if h is not None]

    def _named(self, unit: Unit, subj: Subject, frame: pd.DataFrame, samples: Samples) -> pd.DataFrame:
        """``frame`` with the column names the unit's detector was fitted with (an entity's
        detector knows its series by readable feature names)."""
        if subj.spec.grouping is not Grouping.ENTITY:
            return frame
        return frame.rename(columns=subj.spec.feature_names(list(frame.columns), samples.series))

    def _alarm_levels(self, subjects: list[Subject], samples: Samples,
                      new_from: Mapping[str, pd.Timestamp]) -> dict[str, float]:
        """The alarm chance of every test this cycle, from ``detectors.page_budget`` and
        ``detectors.fleet_page_budget``."""
        config = self.ctx.config
        hosts = series_hosts(samples.series, config.incidents.topology.host_labels)
        steps = steps_s(samples.values, config.agent.interval)
        tests: list[Test] = []
        seen: set[str] = set()
        for subj in subjects:
            unit = self.units.get(subj.key)
            if unit is None or not _calibrated(unit.detector):
                continue
            if subj.spec.grouping in (Grouping.ENTITY, Grouping.GROUP):
                group = subj.spec.grouping is Grouping.GROUP  # a place of its own, across hosts
                columns = subj.series if group else unit.columns
                step = float(np.median([steps.get(c, config.agent.interval) for c in columns]))
                place = subj.entity_id if group else entity_host(unit.columns, hosts)
                tests.append(Test(key=_entity_key(subj), host=place, entity=True, group=group, step_s=step))
                continue
            for sid in unit.columns:
                if sid in new_from and sid not in seen:
                    seen.add(sid)
                    tests.append(Test(key=sid, host=hosts.get(sid, ""), entity=False,
                                      step_s=steps.get(sid, config.agent.interval)))
        return alarm_chances(tests, config.detectors.page_budget, config.detectors.fleet_page_budget)

    def _keep_scores(self, unit: Unit, scores: pd.DataFrame | pd.Series, new_from: Mapping[str, pd.Timestamp]) -> None:
        """Keep this unit's scores of new points, mapped into [0, 1] (NaN elsewhere); one frame a
        unit, so a cycle of 10,000 series pays for a few array operations, not 10,000 series."""
        frame = _frame(scores)
        self.scores.append(unit.detector.unit_scores(frame).where(_new_rows(frame, new_from)))

    def _keep_newest(self, subj: Subject, unit: Unit, scores: Scores, samples: Samples,
                     new_from: Mapping[str, pd.Timestamp], levels: Mapping[str, float] | None) -> None:
        """Keep, per series, its newest new point's anomaly score (1 or more: anomalous) with the
        detector's expectation and band there, in a few array operations per unit. A calibrated
        detector's anomaly score is ``log(chance) / log(alarm chance)``: 1 where hits start; a
        series whose newest point has no chance yet is warming up and has no gauge."""
        if levels is not None:
            chances = _frame(scores.chances)
            anomaly = _rarity(chances, levels)
            new = _new_rows(chances, new_from)
            self.calibrating.setdefault(subj.spec.name, set()).update(_warming(chances, new))
            if any(spec.grouping is Grouping.GROUP for spec in self.specs):
                self._chances.append(chances.where(new))
        else:
            anomaly = unit.detector.anomaly_scores(_frame(scores.scores))
        if anomaly is None:
            return
        values = anomaly.where(_new_rows(anomaly, new_from)).to_numpy(dtype="float64")
        if not values.size:
            return
        finite = np.isfinite(values)
        row = len(values) - 1 - np.argmax(finite[::-1], axis=0)  # the newest finite row per column
        has = finite.any(axis=0)
        cols = np.flatnonzero(has)
        figures = {"score": values[row[cols], cols]}
        for name in ("expected", "lower", "upper"):
            extra = getattr(scores, name)
            if extra is not None:
                figures[name] = _frame(extra).to_numpy(dtype="float64")[row[cols], cols]
        seen = samples.values.reindex(index=anomaly.index, columns=anomaly.columns)
        figures["observed"] = seen.to_numpy(dtype="float64")[row[cols], cols]
        for k, c in enumerate(cols):
            sid = anomaly.columns[c]
            info = samples.series.get(sid)
            if info is None:
                continue
            self.newest.append(SeriesScore(series_id=sid, detector=subj.spec.name, metric=info.metric,
                                           labels=info.labels, **{n: float(v[k]) for n, v in figures.items()}))

    def score_of(self, series_id: str) -> pd.Series | None:
        """This cycle's score in [0, 1] of each new point of ``series_id`` (the largest over the
        detectors watching it), or None when nothing scored it."""
        found = [f[series_id].dropna() for f in self.scores if series_id in f.columns]
        found = [f for f in found if len(f)]
        if not found:
            return None
        return found[0] if len(found) == 1 else pd.concat(found, axis=1, sort=True).max(axis=1)

    @staticmethod
    def _fill(hit: Hit, subj: Subject, samples: Samples) -> Hit | None:
        info = samples.series.get(hit.series_id)
        if info is not None:
            return replace(hit, detector=subj.spec.name, metric=info.metric, labels=dict(info.labels))
        if subj.spec.grouping in (Grouping.ENTITY, Grouping.GROUP):
            return replace(hit, detector=subj.spec.name, series_id=subj.entity_id, entity=subj.subject,
                           metric=subj.spec.name, labels={subj.spec.entity_label: subj.subject})
        log.warning(kv("detect.hit_unknown_series", detector=subj.spec.name, series_id=hit.series_id))
        return None


def _calibrated(detector: object) -> bool:
    """Whether the detector gives chances and takes an alarm chance (see ``budget``)."""
    return _takes_alarm_chance(type(detector))


@lru_cache(maxsize=64)
def _takes_alarm_chance(cls: type) -> bool:
    return "alarm_chance" in inspect.signature(cls.score).parameters


def _entity_key(subj: Subject) -> str:
    return f"{subj.spec.name}|{subj.subject}"


def _newest_chance_missing(chances: pd.Series | pd.DataFrame | None) -> bool:
    if chances is None:
        return False
    values = _frame(chances).to_numpy(dtype="float64").ravel()
    return not len(values) or not np.isfinite(values[-1])


def _warming(chances: pd.DataFrame, new: np.ndarray) -> list[str]:
    """Columns whose newest new point has no chance: their detector cannot raise a hit yet."""
    values = chances.to_numpy(dtype="float64")
    out = []
    for j, column in enumerate(chances.columns):
        rows = np.flatnonzero(new[:, j])
        if len(rows) and not np.isfinite(values[rows[-1], j]):
            out.append(str(column))
    return out


def _rarity(chances: pd.DataFrame, levels: Mapping[str, float]) -> pd.DataFrame:
    """``log(chance) / log(level)`` per column: 1 at the alarm chance, more when rarer."""
    level = np.array([levels.get(c, np.nan) for c in chances.columns], dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(np.clip(chances.to_numpy(dtype="float64"), 1e-300, 1.0)) / np.log(level)[None, :]
    return pd.DataFrame(values, index=chances.index, columns=chances.columns)


def _by_series(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame of the series' chances; a series two detectors judged keeps the smaller."""
    joined = pd.concat(frames, axis=1, sort=True)
    if joined.columns.has_duplicates:
        joined = joined.T.groupby(level=0).min().T
    return joined


def _frame(scores: pd.DataFrame | pd.Series) -> pd.DataFrame:
    return scores.to_frame() if isinstance(scores, pd.Series) else scores


def _new_rows(frame: pd.DataFrame, new_from: Mapping[str, pd.Timestamp]) -> np.ndarray:
    """Rows x columns: True where the row is after the column's last judged point."""
    since = np.array([new_from[c].value if c in new_from else np.iinfo(np.int64).max for c in frame.columns])
    return frame.index.as_unit("ns").asi8[:, None] > since[None, :]
