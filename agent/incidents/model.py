"""What an incident is. ``Incident`` changes only through store functions that write the audit
entry and the timeline event in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    REMEDIATING = "remediating"
    RESOLVED = "resolved"


# Which moves the lifecycle allows. A resolved incident reopens (flapping) through OPEN.
TRANSITIONS: Mapping[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING, IncidentStatus.RESOLVED}),
    IncidentStatus.ACKNOWLEDGED: frozenset({IncidentStatus.REMEDIATING, IncidentStatus.RESOLVED}),
    IncidentStatus.REMEDIATING: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED, IncidentStatus.OPEN}),
    IncidentStatus.RESOLVED: frozenset({IncidentStatus.OPEN}),
}


class Severity(StrEnum):
    CRITICAL = "critical"  # pages
    WARNING = "warning"    # notifies
    INFO = "info"          # recorded

    @property
    def rank(self) -> int:
        return {"critical": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """One series-and-detector pair that fired inside an incident, with its worst moment."""

    series_id: str
    detector: str
    metric: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    first_at: datetime
    last_at: datetime
    hits: int = 0
    peak_score: float | None = None
    last_value: float | None = None
    last_expected: float | None = None
    direction: str | None = None
    explanation: str = ""
    resolved_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.series_id}|{self.detector}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    id: int
    status: IncidentStatus
    severity: Severity
    title: str
    labels: Mapping[str, str]
    started_at: datetime          # first anomalous point
    detected_at: datetime         # when the agent opened it
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    remediation_started_at: datetime | None = None
    remediation_verified_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None  # quiet, remediation, manual, alert
    root_cause: str | None = None
    root_cause_reason: str | None = None
    flapping: bool = False
    reopened: int = 0
    last_signal_at: datetime | None = None
    summary: str = ""
    signals: tuple[Signal, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentEvent:
    """One line of an incident's timeline."""

    id: int
    incident_id: int
    ts: datetime
    kind: str
    actor: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A deploy, model rollout or config change that may explain an incident."""

    id: int
    ts: datetime
    kind: str
    labels: Mapping[str, str]
    description: str
    actor: str
