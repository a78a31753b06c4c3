"""Config section `incidents`: how hits are grouped into incidents and how incidents end.

A hit joins an open incident when it falls within ``window`` of the incident's last signal and
shares a value of one of ``correlation_labels`` with it, or is linked to it through
``topology`` (services that depend on each other, hosts and what they run). ``persistence``
rules make a series fire in N of the last M cycles before an incident opens; ``severity``
rules pick the severity from labels and score.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.config.types import Seconds, Section, check_regex

SeverityName = Literal["critical", "warning", "info"]


def _check_label_regexes(value: dict[str, str]) -> dict[str, str]:
    for pattern in value.values():
        check_regex(pattern)
    return value


class LabelRule(Section):
    """Selects hits by labels (every regex must match the label's value in full; a missing label
    matches ``""``) and optionally by detector name."""

    labels: dict[str, str] = Field(default_factory=dict)
    detector: str | None = None

    @field_validator("labels")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_label_regexes(value)

    def matches(self, labels: dict[str, str] | object, detector: str) -> bool:
        if self.detector is not None and self.detector != detector:
            return False
        get = labels.get
        return all(re.fullmatch(p, str(get(k, "") or "")) for k, p in self.labels.items())


class PersistenceRule(LabelRule):
    """Open an incident only after the series fired in ``hits`` of the last ``cycles`` cycles."""

    hits: int = Field(default=3, ge=1)
    cycles: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _n_of_m(self) -> "PersistenceRule":
        if self.hits > self.cycles:
            raise ValueError(f"expected hits <= cycles, found {self.hits} hits in {self.cycles} cycles")
        return self


class CorroborationRule(LabelRule):
    """A hit matching this rule opens an incident alone only when it scores at least
    ``alone_score``; a weaker one waits until hits of ``series`` different series that share a
    correlation key with it have fired within ``within`` of each other (the last of them opens
    the incident). Lone blips of noise then page nobody; a fault that moves several series at
    once, or moves one a lot, still opens an incident at once."""

    series: int = Field(default=2, ge=1)
    alone_score: float | None = None
    within: Seconds = Field(default=300.0, gt=0)




class SeverityRule(LabelRule):
    """Hits matching this rule (and scoring at least ``min_score``) get ``severity``."""

    min_score: float | None = None
    severity: SeverityName


class SeverityConfig(Section):
    default: SeverityName = "warning"
    rules: list[SeverityRule] = Field(default_factory=list)


class TopologyConfig(Section):
    """A small dependency graph. ``depends_on``: service → the services it calls.
    ``hosts``: host → the services it runs. A hit's service comes from ``service_label``, its host
    from the first of ``host_labels`` it has (a ``:port`` suffix is dropped)."""

    service_label: str = "service"
    host_labels: list[str] = Field(default_factory=lambda: ["host", "instance", "node"])
    depends_on: dict[str, list[str]] = Field(default_factory=dict)
    hosts: dict[str, list[str]] = Field(default_factory=dict)


class IncidentsConfig(Section):
    """Settings for incidents."""

    window: Seconds = Field(default=600.0, gt=0)
    correlation_labels: list[str] = Field(default_factory=lambda: ["service", "instance", "model"])
    topology: TopologyConfig = TopologyConfig()
    persistence: list[PersistenceRule] = Field(default_factory=list)
    corroboration: list[CorroborationRule] = Field(default_factory=list)
    quiet_cycles: int = Field(default=3, ge=1)
    flap_window: Seconds = Field(default=1800.0, ge=0)
    changes_lookback: Seconds = Field(default=7200.0, ge=0)
    severity: SeverityConfig = SeverityConfig()
    # At most this many incidents open in one cycle; past it, the hits that would open more go
    # into one "storm" incident (paged once) instead of paging once each. Alerts posted by
    # Alertmanager are not capped: it has grouped them already.
    max_new_per_cycle: int = Field(default=50, ge=1)

    def severity_for(self, labels: dict[str, str] | object, detector: str, score: float) -> str:
        for rule in self.severity.rules:
            if rule.matches(labels, detector) and (rule.min_score is None or score >= rule.min_score):
                return rule.severity
        return self.severity.default

    def persistence_for(self, labels: dict[str, str] | object, detector: str) -> PersistenceRule | None:
        return next((r for r in self.persistence if r.matches(labels, detector)), None)

    def corroboration_for(self, labels: dict[str, str] | object, detector: str) -> CorroborationRule | None:
        return next((r for r in self.corroboration if r.matches(labels, detector)), None)
