"""Config section ``models``: the models the agent rolls out, analyses, retrains and reports on.

Each model names its playbooks (from ``remediation.playbook_dir``), the inventory hosts it is
served on, and the analysis a new version must pass on its canary, in the spirit of Argo
Rollouts' ``successCondition`` and ``failureLimit``: every ``interval`` each metric is measured
once and judged successful, failed, or inconclusive (no data, or neither condition holds).
``failure_limit`` failed measurements of one metric fail the analysis and roll the version
back; one inconclusive measurement pauses the rollout for a person; ``duration`` without either
promotes it. A version that fails every measurement is therefore rolled back
``interval × failure_limit`` after its canary starts serving (plus up to one cycle, and the
rollback playbook's run). Failures need not be consecutive: a version that fails only now and
then is rolled back at its ``failure_limit``-th failure, or promoted if ``duration`` ends first.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.types import ConfigPath, Seconds, Section, check_http_url

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CONDITION = re.compile(r"^\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"expected a name of lowercase letters, digits, '_', '.', '-', found {value!r}")
    return value


class Condition(Section):
    """``"< 0.25"``: an operator and a number; written in YAML as that string."""

    op: Literal["<", "<=", ">", ">=", "=="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _CONDITION.match(data)
            if match is None:
                raise ValueError(f"expected a condition such as '< 0.25' or '>= 0.5', found {data!r}")
            return {"op": match.group(1), "value": float(match.group(2))}
        return data

    def holds(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


class AnalysisMetric(Section):
    """One metric of the analysis.

    ``kind: query``: ``query`` is PromQL whose first sample is the value (latency P95, error rate,
    drift rate). ``kind: distribution``: ``query`` returns one series per histogram bucket
    (``le`` label, cumulative counts); ``{window}`` in it becomes the time since the rollout
    began. Its value is the PSI between the buckets measured now and the same query evaluated
    at the rollout's start (the previous version's traffic), bias-corrected for small windows.
    """

    name: str
    kind: Literal["query", "distribution"] = "query"
    query: str
    success: Condition
    failure: Condition

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("query")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a PromQL query, found an empty string")
        return value


class Analysis(Section):
    interval: Seconds = Field(default=60.0, gt=0)
    duration: Seconds = Field(default=600.0, gt=0)
    failure_limit: int = Field(default=2, ge=1)
    # The Prometheus-compatible server the queries go to; unset: sources.prometheus.url.
    prometheus_url: str | None = None
    timeout: Seconds = Field(default=10.0, gt=0)
    metrics: list[AnalysisMetric] = Field(min_length=1)

    @field_validator("prometheus_url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(
            value, instead="for a server that needs credentials, leave analysis.prometheus_url unset: "
                           "sources.prometheus.url with its username and password is used")

    @model_validator(mode="after")
    def _duration_holds_a_measurement(self) -> Analysis:
        if self.duration < self.interval:
            raise ValueError(f"expected analysis.duration >= analysis.interval, found "
                             f"{self.duration:g}s < {self.interval:g}s")
        names = [m.name for m in self.metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"expected unique metric names, found {twice[0]!r} twice")
        return self

    @property
    def rounds(self) -> int:
        """Measurement rounds that cover ``duration``: a version passes after this many with no
        failure limit reached and the last round conclusive."""
        return max(1, math.ceil(self.duration / self.interval - 1e-9))

    @property
    def worst_case_rollback_s(self) -> float:
        """From a canary starting to serve a version that fails every measurement to its rollback
        starting (seconds): ``failure_limit`` measurements, one interval apart."""
        return self.interval * self.failure_limit


class Gate(Section):
    """A retrained candidate passes when its ``metric`` (from the metrics JSON) is not lower than
    the current version's by more than ``max_drop`` (higher = better, as AUC)."""

    metric: str = "auc"
    max_drop: float = Field(default=0.01, ge=0)


class Retrain(Section):
    playbook: str
    # Retrain once a drift incident of this model is resolved (at most once per incident).
    on_drift: bool = True
    gate: Gate = Gate()
    max_per_period: int = Field(default=2, ge=1)
    period: Seconds = Field(default=86400.0, gt=0)
    timeout: Seconds = Field(default=600.0, gt=0)


class Serving(Section):
    """Where the agent reads which version serves, the one truth the registry follows.

    ``link`` is a symbolic link whose target's last part names the version serving (a models
    directory's ``current -> versions/v2``); it is read every cycle, and a version put there
    outside the agent is registered with what explains it (or, when nothing does, an incident).
    ``versions``, a directory with one entry per version that exists: a rollout of any other
    version is refused before it starts."""

    link: ConfigPath
    versions: ConfigPath | None = None


class ModelConfig(Section):
    name: str
    rollout_playbook: str
    promote_playbook: str
    rollback_playbook: str
    # After a failed analysis: roll back at once (auto), or wait for `aiops rollout abort` (approve).
    on_failure: Literal["auto", "approve"] = "auto"
    hosts: list[str] = ["localhost"]
    canary: list[str] = []
    vars: dict[str, Any] = {}
    # The playbooks' environment beyond PATH, HOME, LANG …: values given on purpose.
    env: dict[str, str] = {}
    timeout: Seconds = Field(default=300.0, gt=0)
    analysis: Analysis
    retrain: Retrain | None = None
    serving: Serving | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("vars")
    @classmethod
    def _check_var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _VAR.match(key):
                raise ValueError(f"expected variable names like models_dir, found {key!r}")
        return value

    @model_validator(mode="after")
    def _canary_among_hosts(self) -> ModelConfig:
        stray = [h for h in self.canary if h not in self.hosts]
        if stray:
            raise ValueError(f"expected canary hosts among hosts {self.hosts}, found {stray[0]!r}")
        return self


def check_models(value: list[ModelConfig]) -> list[ModelConfig]:
    seen: set[str] = set()
    for model in value:
        if model.name in seen:
            raise ValueError(f"expected unique model names, found {model.name!r} twice")
        seen.add(model.name)
    return value
