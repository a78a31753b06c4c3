"""Config section `detectors`: which detectors run on which series, and how they are refitted.

A rule picks series with matchers (metric-name and label regexes, full match) and names a
detector kind with its parameters. ``slos`` are threshold detectors written the way SLOs are
spoken ("p95 above 0.5 s for 3 of 5 points"); ``drift`` lists ML models whose input and
prediction histograms are compared with a saved training baseline.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.config.types import Seconds, Section, check_regex
from detectors import detector_class
from detectors.errors import DetectorError

SERIES_KINDS = ("gauge", "rate", "quantile", "bucket")
# The detector kinds and their classes: ``detectors.KINDS``, the one registry (``detector_class``
# loads a class on first use, so the config loads even while a detector module is missing).


def _check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    cls = detector_class(kind)
    if cls is None or not hasattr(cls, "_param_names"):
        return params
    known = cls._param_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"expected parameters of {cls.__name__} ({', '.join(known)}), found {', '.join(unknown)}")
    return params


class SeriesMatcher(Section):
    """Selects series: every given regex must match in full; a missing label matches ``""``."""

    metric: str = ".*"
    labels: dict[str, str] = Field(default_factory=dict)
    kinds: list[Literal["gauge", "rate", "quantile", "bucket"]] = Field(
        default_factory=lambda: ["gauge", "rate", "quantile"])

    @field_validator("metric")
    @classmethod
    def _metric_regex(cls, value: str) -> str:
        return check_regex(value)

    @field_validator("labels")
    @classmethod
    def _label_regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            check_regex(pattern)
        return value


def _match_all() -> list[SeriesMatcher]:
    return [SeriesMatcher()]


class _Rule(Section):
    kind: str  # narrowed by each rule class; declared first so ``params`` can be checked against it
    name: str = ""
    match: list[SeriesMatcher] = Field(default_factory=_match_all)
    exclude: list[SeriesMatcher] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    min_history: Seconds | None = None

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        return _check_params(kind, value) if kind else value

    @model_validator(mode="after")
    def _default_name(self) -> "_Rule":
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        return self


class ForecastRule(_Rule):
    """Each matched series judged against its own forecasts (last value, same phase of past
    days and weeks where a day is a whole number of steps, recent level), every error ranked
    against the same error's recent history: the default for gauges, rates and quantiles."""

    kind: Literal["forecast"]


class SeasonalRule(_Rule):
    """One seasonal (STL) baseline per matched series."""

    kind: Literal["seasonal"]


class ThresholdRule(_Rule):
    """Static bounds per matched series; ``params`` are the ThresholdDetector's."""

    kind: Literal["threshold"]

    @model_validator(mode="after")
    def _usable_bounds(self) -> "ThresholdRule":
        # A threshold learns nothing, so its parameters can be checked now rather than at the
        # first cycle: build it and fit it on nothing.
        cls = detector_class("threshold")
        if cls is not None:
            try:
                cls(**self.params).fit()
            except DetectorError as exc:
                raise ValueError(exc.problem) from None
        return self


class SubspaceRule(_Rule):
    """One subspace detector per entity: the matched series that share ``entity_label``, judged
    together (a row that breaks how they usually move together)."""

    kind: Literal["subspace"]
    # a principal-component model of tens or hundreds of series needs many more rows than
    # series: a day of history before the first fit
    min_history: Seconds | None = 86400.0
    entity_label: str = "instance"
    min_features: int = Field(default=3, ge=2)
    max_features: int = Field(default=2000, ge=2)


class GroupRule(_Rule):
    """One group detector per group: the matched series that share ``entity_label`` (a service,
    on whatever hosts run it), judged together by the chances their own detectors gave each
    point (many of them unusual at once). It learns from the points it judges, not from history."""

    kind: Literal["group"]
    entity_label: str = "service"
    # one series is its own test: a group starts at two
    min_features: int = Field(default=2, ge=2)


class IForestRule(_Rule):
    """One isolation forest per entity: the matched series that share ``entity_label``."""

    kind: Literal["iforest"]
    entity_label: str = "instance"
    min_features: int = Field(default=2, ge=1)
    max_features: int = Field(default=32, ge=1)


Rule = Annotated[ForecastRule | SeasonalRule | ThresholdRule | IForestRule | SubspaceRule | GroupRule,
                 Field(discriminator="kind")]


class Slo(Section):
    """An SLO breach: ``points`` of the last ``window`` points on the wrong side of ``objective``."""

    name: str
    match: list[SeriesMatcher] = Field(min_length=1)
    objective: float
    direction: Literal["above", "below"] = "above"
    points: int = Field(default=3, ge=1)
    window: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _points_within_window(self) -> "Slo":
        if self.points > self.window:
            raise ValueError(f"expected points <= window, found points {self.points} > window {self.window}")
        return self


class DriftModel(Section):
    """An ML model watched for drift: its feature and prediction histograms, by metric name, for
    the series whose ``label`` equals ``name``. A histogram carrying ``feature_label`` is the
    feature named by that label's value (one metric, many features); otherwise the metric name
    is the feature."""

    name: str
    label: str = "model"
    feature_label: str = "feature"
    features: list[str] = Field(min_length=1)
    predictions: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    window: Seconds = Field(default=3600.0, gt=0)
    share: float = Field(default=0.5, gt=0, le=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_params("drift", value)

    @property
    def metrics(self) -> list[str]:
        return [*self.features, *self.predictions]


class RefitConfig(Section):
    """When fitted state is renewed. Subjects are spread over the cycles of one interval by a
    stable hash, so each cycle refits only its slice."""

    interval: Seconds = Field(default=21600.0, gt=0)
    slices: int = Field(default=64, ge=1, le=4096)
    max_per_cycle: int = Field(default=200, ge=1)
    history: Seconds = Field(default=7 * 86400.0, gt=0)
    min_history: Seconds = Field(default=3600.0, ge=0)
    min_points: int = Field(default=30, ge=2)
    # Resolution of refit history: a week at a 5 s query step would be 120,000 points a series.
    step: Seconds | None = Field(default=60.0, gt=0)


class GaugesConfig(Section):
    """Per-series gauges at /metrics for dashboards: ``aiops_anomaly_score``,
    ``aiops_expected_value``, ``aiops_expected_lower`` and ``aiops_expected_upper``, with the
    series' labels. Each cycle exposes the ``max_series`` most anomalous scored series (0: none);
    the rest are counted in ``aiops_score_series_dropped_total``."""

    max_series: int = Field(default=1000, ge=0, le=1_000_000)


def _default_rules() -> list[Any]:
    return [ForecastRule(kind="forecast"), SubspaceRule(kind="subspace"), GroupRule(kind="group")]


class DetectorsConfig(Section):
    """Settings for detectors."""

    enabled: bool = True
    # False incidents per host and day that chance alone may open, and per day for all the hosts
    # this agent watches: each host gets the smaller of page_budget and its share of
    # fleet_page_budget; the calibrated detectors' alarm chances follow (agent.detection.budget).
    page_budget: float = Field(default=0.5, gt=0, le=1000)
    fleet_page_budget: float = Field(default=4.0, gt=0, le=100_000)
    refit: RefitConfig = RefitConfig()
    rules: list[Rule] = Field(default_factory=_default_rules)
    slos: list[Slo] = Field(default_factory=list)
    drift: list[DriftModel] = Field(default_factory=list)
    gauges: GaugesConfig = GaugesConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> "DetectorsConfig":
        for what, names in (("detector names (rules and slos)", [r.name for r in self.rules] + [s.name for s in self.slos]),
                            ("drift model names", [m.name for m in self.drift])):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"expected unique {what}, found {name!r} twice")
                seen.add(name)
        return self

    def drift_model(self, name: str) -> DriftModel | None:
        return next((m for m in self.drift if m.name == name), None)
