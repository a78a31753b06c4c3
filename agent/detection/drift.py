"""Model drift in the daemon: a model's live feature histograms against its saved baseline.

A model (``detectors.drift`` in the config) is the set of histograms whose metric is one of its
features or predictions and whose ``label`` (``model`` by default) names it. ``aiops baseline
save`` sums their bucket increases over a time range into a baseline (``baselines`` table);
each cycle the stage keeps the last ``window`` of bucket increases per histogram (seeded from
history after a restart, then fed from the cycle's frame), compares it with the baseline and
publishes the share of drifted features as ``aiops_model_drift_rate_ratio{model}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agent.clock import to_epoch
from agent.config.detectors import DriftModel
from agent.detection.history import HistoryReader
from agent.detection.specs import drift_spec
from agent.errors import AiopsError
from agent.flow.samples import Samples, series_id
from agent.log import kv
from agent.store.detectors import Baseline
from detectors.base import Detector, Hit
from detectors.errors import DetectorError

if TYPE_CHECKING:
    from agent.context import Context

log = logging.getLogger(__name__)

DETECTOR = "drift"
_SERIES = re.compile(r'^([^{]+)(?:\{(.*)\})?$')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


def _unescape(match: re.Match[str]) -> str:
    return "\n" if match.group(1) == "n" else match.group(1)


class BaselineError(AiopsError):
    """A drift baseline cannot be recorded as asked."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"baseline for model {model}: {problem}")


def parse_series_id(sid: str) -> tuple[str, dict[str, str]]:
    """``metric{a="1",b="x"}`` -> (metric, labels); the inverse of ``agent.flow.samples.series_id``."""
    match = _SERIES.match(sid)
    if match is None:
        return sid, {}
    labels = {k: _ESCAPE.sub(_unescape, v) for k, v in _LABEL.findall(match.group(2) or "")}
    return match.group(1), labels


def metric_and_feature(model: DriftModel, hid: str) -> tuple[str, str] | None:
    """(metric, feature) of a histogram that belongs to ``model``, else None."""
    metric, labels = parse_series_id(hid)
    if metric not in model.metrics or labels.get(model.label) != model.name:
        return None
    return metric, labels.get(model.feature_label) or metric


def feature_of(model: DriftModel, hid: str) -> str | None:
    found = metric_and_feature(model, hid)
    return found[1] if found else None


def cumulative(frames: Iterable[pd.DataFrame]) -> dict[float, float]:
    """Summed bucket increases (rows = scrapes, columns = le, cumulative in le) -> le -> count."""
    total: pd.Series | None = None
    for frame in frames:
        counts = frame.sum(axis=0, min_count=1).dropna()
        total = counts if total is None else total.add(counts, fill_value=0.0)
    if total is None:
        return {}
    return {float(le): float(n) for le, n in total.sort_index().items()}


def feature_rows(model: DriftModel, buckets: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per feature, its histograms' bucket increases summed per scrape (rows = ts, columns = le)."""
    per_feature: dict[str, list[pd.DataFrame]] = {}
    for hid, frame in buckets.items():
        feature = feature_of(model, hid)
        if feature is not None and not frame.empty:
            per_feature.setdefault(feature, []).append(frame)
    out = {}
    for feature, frames in per_feature.items():
        total = frames[0]
        for frame in frames[1:]:
            total = total.add(frame, fill_value=0.0)
        out[feature] = total.sort_index()
    return out


def features_from(model: DriftModel, buckets: Mapping[str, pd.DataFrame]) -> dict[str, dict[float, float]]:
    per_feature: dict[str, list[pd.DataFrame]] = {}
    for hid, frame in buckets.items():
        feature = feature_of(model, hid)
        if feature is not None and not frame.empty:
            per_feature.setdefault(feature, []).append(frame)
    out = {f: cumulative(frames) for f, frames in per_feature.items()}
    return {f: counts for f, counts in out.items() if counts and max(counts.values()) > 0}


def bucket_history(ctx: "Context", read: HistoryReader, model: DriftModel, start: datetime, end: datetime, *,
                   step_s: float | None = None) -> dict[str, pd.DataFrame]:
    """The model's histograms over ``[start, end]``: hid -> bucket increases (rows = ts, columns =
    le), at ``step_s`` (None: each query's own step)."""
    ids: list[str] | None = None
    if ctx.config.sources.kind == "scrape":  # the store knows every series: read only the model's
        known = ctx.store.known_series(labels={model.label: model.name})
        ids = [s.series_id for s in known
               if s.kind == "bucket" and s.metric.endswith("_bucket") and s.metric[: -len("_bucket")] in model.metrics]
        if not ids:
            return {}
    found: Samples = read(pd.Timestamp(start), pd.Timestamp(end), series_ids=ids, step_s=step_s)
    return {hid: frame for hid, frame in found.buckets.items() if feature_of(model, hid) is not None}


# A step whose bucket increases dip below a lower bound's by more than this share of its total
# is not a histogram: Prometheus' increase() read a counter reset, or a change of buckets, in
# one bucket and not in another (small dips are extrapolation, repaired when fitted).
RESET_DIP = 0.01


def whole_steps(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The steps (rows) of one histogram's bucket increases that are a histogram: every bucket
    present and cumulative in ``le``; and how many were left out. A step that is not straddles
    a counter reset or a change of bucket bounds (a restart, an upgrade), and would make the sum
    over the range a distribution of nothing."""
    if frame.empty:
        return frame, 0
    ordered = frame[sorted(frame.columns, key=float)]
    values = ordered.to_numpy(dtype="float64")
    present = ~np.isnan(values)
    complete = present.all(axis=1)
    filled = np.where(present, values, 0.0)
    dip = (np.maximum.accumulate(filled, axis=1) - filled).max(axis=1, initial=0.0)
    cumulative = dip <= RESET_DIP * np.maximum(filled[:, -1], 1.0)
    keep = (complete & cumulative) | ~present.any(axis=1)  # a step with no data at all is no step
    held = ordered[keep & present.any(axis=1)]
    return held, int((~keep).sum())


def build_baseline(ctx: "Context", read: HistoryReader, model: DriftModel, start: datetime, end: datetime, *,
                   actor: str, now: datetime) -> Baseline:
    """Sum the model's histograms over ``[start, end]`` into a baseline, checked by fitting it.
    Steps across a counter reset or a change of buckets are left out (``data["left_out"]``); a
    feature with fewer observations than the drift detector's ``min_samples`` is refused."""
    if end <= start:
        raise BaselineError(model.name, f"expected --from before --to, found {start.isoformat()} >= {end.isoformat()}")
    histograms = bucket_history(ctx, read, model, start, end, step_s=ctx.config.detectors.refit.step)
    left_out = 0
    for hid, frame in list(histograms.items()):
        histograms[hid], dropped = whole_steps(frame)
        left_out += dropped
    features = features_from(model, histograms)
    found = {mf[0] for hid in histograms if (mf := metric_and_feature(model, hid)) and mf[1] in features}
    missing = [m for m in model.metrics if m not in found]
    if missing:
        raise BaselineError(model.name, f"no histogram samples with {model.label}={model.name!r} between "
                            f"{start.isoformat()} and {end.isoformat()} for {', '.join(missing)}")
    detector = drift_spec(model).build()
    minimum = int(getattr(detector, "min_samples", 0))
    short = {f: max(counts.values()) for f, counts in features.items() if max(counts.values()) < minimum}
    if short:
        found = ", ".join(f"{f}: {n:.0f}" for f, n in sorted(short.items()))
        raise BaselineError(model.name, f"expected at least {minimum} observations per feature (the drift "
                            f"detector's min_samples), found {found} between {start.isoformat()} and "
                            f"{end.isoformat()}: save a longer range")
    try:
        detector.fit(features, model=model.name)  # refuses what it could not judge by
    except DetectorError as exc:
        raise BaselineError(model.name, str(exc)) from None
    data = {"label": model.label, "left_out": left_out,
            "features": {f: {"le": [repr(le) for le in counts], "cumulative": list(counts.values())}
                         for f, counts in features.items()}}
    return Baseline(model=model.name, from_at=start, to_at=end, data=data, created_by=actor, created_at=now)


def baseline_features(baseline: Baseline) -> dict[str, dict[float, float]]:
    return {f: {float(le): float(n) for le, n in zip(d["le"], d["cumulative"])}
            for f, d in baseline.data["features"].items()}


@dataclass(slots=True)
class _Watched:
    baseline_id: int | None = None
    fingerprint: str = ""
    detector: Detector | None = None
    window: dict[str, pd.DataFrame] = field(default_factory=dict)
    seeded: bool = False


class DriftWatch:
    """Per configured model: its fitted baseline and the rolling live window, seeded from
    ``read`` (the source's history)."""

    def __init__(self, read: HistoryReader) -> None:
        self.read = read
        self.models: dict[str, _Watched] = {}

    def detect(self, ctx: "Context", samples: Samples, *, now: datetime,
               judged: set[str] | None = None) -> list[Hit]:
        """Hits of drifted models; the drift series of every model judged goes into ``judged``."""
        config = ctx.config.detectors
        if not config.enabled:
            return []
        hits: list[Hit] = []
        for model in config.drift:
            try:
                hits += self._detect_one(ctx, model, samples, now=now, judged=judged)
            except Exception as exc:  # one model's bad data must not stop the others (or the stage)
                log.exception(kv("detect.drift_failed", model=model.name, error=type(exc).__name__))
                ctx.metrics.detector_failures.labels(detector=DETECTOR, phase="score").inc()
        return hits

    def _detect_one(self, ctx: "Context", model: DriftModel, samples: Samples, *, now: datetime,
                    judged: set[str] | None = None) -> list[Hit]:
        watched = self.models.setdefault(model.name, _Watched())
        if not self._fitted(ctx, model, watched):
            return []
        start = now - timedelta(seconds=model.window)
        if not watched.seeded:
            watched.window = bucket_history(ctx, self.read, model, start, now)
            watched.seeded = True
        self._slide(model, watched, samples.buckets, self._window_start(ctx, model, start, now))
        live = features_from(model, watched.window)
        if not live:
            return []
        assert watched.detector is not None
        scores = watched.detector.score(live, model=model.name, ts=now)
        rate = scores.scores.attrs.get("drift_rate")
        if rate is not None:
            ctx.metrics.model_drift_rate.labels(model=model.name).set(rate)
        sid = series_id("model_drift", {model.label: model.name})
        if rate is not None:
            ctx.store.record_derived(sid, to_epoch(now), float(rate))  # the incident page plots it
        if judged is not None and scores.scores.attrs.get("drift_rate") is not None:
            judged.add(sid)  # a verdict was reached: no hit now means the model is quiet
        began = None
        if scores.hits:  # where the drift began: the change point of the drifted features' scrapes
            drifted = scores.scores.index[scores.scores["drifted"]]
            rows = feature_rows(model, watched.window)
            began = watched.detector.onset({f: rows[f] for f in drifted if f in rows})
        out = [replace(h, series_id=sid, entity=model.name, detector=DETECTOR, metric="model_drift",
                       labels={model.label: model.name}, began_at=began) for h in scores.hits]
        if out:
            ctx.metrics.hits.labels(detector=DETECTOR).inc(len(out))
        ctx.metrics.series_scored.inc(len(watched.window))
        return out

    def _fitted(self, ctx: "Context", model: DriftModel, watched: _Watched) -> bool:
        """Fit on the model's newest baseline when it (or the model's settings) changed."""
        baseline = ctx.store.latest_baseline(model.name)
        if baseline is None:
            if watched.baseline_id is None and watched.fingerprint != "none":
                log.info(kv("detect.drift_no_baseline", model=model.name,
                            hint=f"aiops baseline save --model {model.name} --from ... --to ..."))
                watched.fingerprint = "none"
            return False
        spec = drift_spec(model)
        if watched.baseline_id == baseline.id and watched.fingerprint == spec.fingerprint:
            return True
        watched.detector = spec.build().fit(baseline_features(baseline), model=model.name)
        watched.baseline_id, watched.fingerprint = baseline.id, spec.fingerprint
        ctx.metrics.refits.labels(detector=DETECTOR).inc()
        log.info(kv("detect.drift_baseline", model=model.name, baseline=baseline.id,
                    since=baseline.from_at, until=baseline.to_at))
        return True

    @staticmethod
    def _window_start(ctx: "Context", model: DriftModel, start: datetime, now: datetime) -> datetime:
        """The window's start, or the model's latest change inside it (a rollout, a rollback, a
        remediation labelled with the model): data from before it describe another version."""
        changes = ctx.store.changes_near({model.label: model.name}, before=now,
                                         lookback_s=(now - start).total_seconds())
        return max(start, changes[0].ts) if changes else start

    @staticmethod
    def _slide(model: DriftModel, watched: _Watched, buckets: Mapping[str, pd.DataFrame], start: datetime) -> None:
        """Append the cycle's new bucket rows and drop those older than the window."""
        for hid, frame in buckets.items():
            if feature_of(model, hid) is None or frame.empty:
                continue
            held = watched.window.get(hid)
            if held is not None and not held.empty:
                frame = frame[frame.index > held.index.max()]
                frame = pd.concat([held, frame]) if not frame.empty else held
            watched.window[hid] = frame
        cut = pd.Timestamp(to_epoch(start), unit="s", tz="UTC")
        watched.window = {hid: f[f.index > cut] for hid, f in watched.window.items() if (f.index > cut).any()}


__all__ = ["BaselineError", "DriftWatch", "build_baseline", "baseline_features", "parse_series_id"]
