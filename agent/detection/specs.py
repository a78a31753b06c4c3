"""The configured detectors, compiled: which series each one takes, how it groups them into
subjects (one fitted detector each), and how to build a fresh detector.

Subjects: a seasonal or threshold detector is frame-level, so its series are grouped into
slices by a stable hash (each slice is fitted and scored as one frame); an isolation forest
or subspace detector has one subject per entity (the value of its entity label), a group
detector one per group (the same, by its label); a drift detector one per model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from agent.config.detectors import (
    DetectorsConfig,
    DriftModel,
    GroupRule,
    IForestRule,
    SeriesMatcher,
    Slo,
    SubspaceRule,
    ThresholdRule,
)
from agent.errors import ConfigError
from agent.flow.samples import SeriesInfo, series_id
from detectors import detector_class
from detectors.base import Detector


class Grouping(StrEnum):
    SLICE = "slice"      # a hash slice of the matched series, fitted as one frame
    ENTITY = "entity"    # the matched series sharing one value of the entity label
    GROUP = "group"      # the same, judged by the chances the series' own detectors gave them
    MODEL = "model"      # one ML model's feature and prediction histograms


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(matcher: SeriesMatcher, info: SeriesInfo) -> bool:
    if info.kind not in matcher.kinds or not _regex(matcher.metric).fullmatch(info.metric):
        return False
    return all(_regex(p).fullmatch(info.labels.get(k, "")) for k, p in matcher.labels.items())


def stable_bucket(text: str, buckets: int) -> int:
    """The same bucket in every process and run (``hash()`` is salted per process)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, buckets)


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec:
    name: str
    kind: str
    params: Mapping[str, Any]
    grouping: Grouping
    match: Sequence[SeriesMatcher] = ()
    exclude: Sequence[SeriesMatcher] = ()
    min_history_s: float = 0.0
    needs_history: bool = True
    # Follows its series point by point (the detector has ``update``): after each cycle it takes
    # the points just judged, and a restart first takes in those since its stored state.
    streaming: bool = False
    # Refitted from history on first sight and after a downtime only; on its turn its state is
    # saved instead (a checkpoint): a streaming detector that learns all it needs point by point.
    checkpoints: bool = False
    # Refits leave out incident windows and past hits (``baselines``). Not for a detector whose
    # refit learns how rare its scores are: a tail learned without its largest points is too
    # thin, a thin tail alarms more, and more alarms leave more out (it spirals).
    incident_aware: bool = True
    context_points: int = 0      # past points handed to score() before the new ones
    entity_label: str = ""
    min_features: int = 1
    max_features: int = 10_000
    model: DriftModel | None = None
    slices: int = 1
    cycles: int = 1  # cycles in one refit interval: each subject's turn comes once in them

    def selects(self, info: SeriesInfo) -> bool:
        return any(matches(m, info) for m in self.match) and not any(matches(m, info) for m in self.exclude)

    def build(self) -> Detector:
        cls = detector_class(self.kind)
        if cls is None:
            raise ConfigError.one("detectors", self.name, f"expected detector kind {self.kind} to be installed, "
                                  "found its module missing")
        return cls(**dict(self.params))

    @property
    def fingerprint(self) -> str:
        """Changes when anything that shapes the fitted state changes; stored state with another
        fingerprint is refitted instead of reused."""
        return json.dumps({"kind": self.kind, "params": dict(self.params)}, sort_keys=True, default=str)

    def feature_names(self, columns: Sequence[str], series: Mapping[str, SeriesInfo]) -> dict[str, str]:
        """Readable feature names for an entity's columns: the series id without the entity
        label, which every column shares (kept whole where that would make two names equal)."""
        names = {}
        for sid in columns:
            info = series.get(sid)
            names[sid] = sid if info is None else series_id(
                info.metric, {k: v for k, v in info.labels.items() if k != self.entity_label})
        return names if len(set(names.values())) == len(names) else {sid: sid for sid in columns}

    def subjects(self, series: Mapping[str, SeriesInfo]) -> dict[str, list[str]]:
        """subject -> the series ids it covers (sorted), among ``series``."""
        groups: dict[str, list[str]] = defaultdict(list)
        for sid, info in series.items():
            if self.grouping is Grouping.MODEL:
                continue
            if not self.selects(info):
                continue
            if self.grouping is Grouping.SLICE:
                groups[f"slice-{stable_bucket(sid, self.slices):04d}"].append(sid)
            else:  # ENTITY, GROUP
                entity = info.labels.get(self.entity_label)
                if entity:
                    groups[entity].append(sid)
        out = {}
        for subject, sids in groups.items():
            sids.sort()
            if self.grouping in (Grouping.ENTITY, Grouping.GROUP):
                if len(sids) < self.min_features:
                    continue
                sids = sids[: self.max_features]
            out[subject] = sids
        return out


def compile_specs(config: DetectorsConfig, *, cycle_interval_s: float) -> list[Spec]:
    """One Spec per rule and SLO (drift models are handled by ``agent.detection.drift``)."""
    if not config.enabled:
        return []
    # One slice per cycle of the refit interval, but no more than refit.slices: a slice is also
    # scored as one frame, and fewer, larger frames score faster.
    cycles = max(1, round(config.refit.interval / max(cycle_interval_s, 1e-9)))
    slices = min(config.refit.slices, cycles)
    default_min = config.refit.min_history
    specs: list[Spec] = []
    for rule in config.rules:
        common: dict[str, Any] = dict(name=rule.name, kind=rule.kind, params=dict(rule.params), match=tuple(rule.match),
                                      exclude=tuple(rule.exclude), slices=slices, cycles=cycles,
                                      min_history_s=default_min if rule.min_history is None else rule.min_history)
        if isinstance(rule, (IForestRule, SubspaceRule)):
            specs.append(Spec(**common, grouping=Grouping.ENTITY, entity_label=rule.entity_label,
                              min_features=rule.min_features, max_features=rule.max_features,
                              streaming=hasattr(detector_class(rule.kind), "update"),
                              incident_aware=not isinstance(rule, SubspaceRule)))
        elif isinstance(rule, GroupRule):
            # Learns from the points it judges (there is no history of chances): fitted once,
            # its state saved on its turn, never refitted from history.
            specs.append(Spec(**common, grouping=Grouping.GROUP, entity_label=rule.entity_label,
                              min_features=rule.min_features, needs_history=False, streaming=True,
                              checkpoints=True, incident_aware=False))
        elif isinstance(rule, ThresholdRule):
            of_points = int(rule.params.get("of_points", 1))
            specs.append(Spec(**common, grouping=Grouping.SLICE, needs_history=False,
                              context_points=max(0, of_points - 1)))
        else:
            streaming = hasattr(detector_class(rule.kind), "update")
            specs.append(Spec(**common, grouping=Grouping.SLICE, streaming=streaming, checkpoints=streaming))
    for slo in config.slos:
        specs.append(slo_spec(slo, slices))  # SLOs learn nothing: fitted once, never refitted
    return specs


def slo_spec(slo: Slo, slices: int) -> Spec:
    bound = {"upper": slo.objective} if slo.direction == "above" else {"lower": slo.objective}
    params = {**bound, "for_points": slo.points, "of_points": slo.window}
    return Spec(name=slo.name, kind="threshold", params=params, grouping=Grouping.SLICE, match=tuple(slo.match),
                needs_history=False, context_points=slo.window - 1, slices=slices)


def drift_spec(model: DriftModel) -> Spec:
    params = {"drift_share": model.share, "categorical": list(model.categorical), **model.params}
    return Spec(name="drift", kind="drift", params=params, grouping=Grouping.MODEL, model=model, needs_history=False)


__all__ = ["Grouping", "Spec", "compile_specs", "drift_spec", "matches", "slo_spec", "stable_bucket"]
