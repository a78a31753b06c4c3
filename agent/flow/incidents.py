"""What an incident is. ``Incident`` changes only through store functions that write the audit
entry and the timeline event in the same transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The label of the one incident that holds a cycle's hits past incidents.max_new_per_cycle.
STORM_LABEL = "aiops_storm"


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
    # The hit that scored highest: when it was, the value, and the detector's expectation and
    # band there. Every view states how far from normal the signal is from these figures.
    peak_at: datetime | None = None
    peak_value: float | None = None
    peak_expected: float | None = None
    peak_lower: float | None = None
    peak_upper: float | None = None
    onset: str = ""  # how ``first_at`` was found, in words

    @property
    def key(self) -> str:
        return f"{self.series_id}|{self.detector}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    """One outage of an incident, from its first anomalous point to its resolution.

    The outage that opens an incident is episode 1; a recurrence after a resolve (a flapping
    reopen) is the next one. MTTD, MTTA and MTTR count episodes, each by its own times."""

    incident_id: int
    number: int
    started_at: datetime          # the first anomalous point in the data
    detected_at: datetime         # when the agent opened (or reopened) the incident
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    remediation_started_at: datetime | None = None
    remediation_verified_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    flapping: bool = False        # began as a recurrence inside the flap window

    @property
    def mttd_s(self) -> float:
        return (self.detected_at - self.started_at).total_seconds()

    @property
    def mtta_s(self) -> float | None:
        return None if self.acknowledged_at is None else (self.acknowledged_at - self.detected_at).total_seconds()

    @property
    def mttr_s(self) -> float | None:
        return None if self.resolved_at is None else (self.resolved_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """One root cause, paged once. ``started_at`` and ``detected_at`` are those of its first
    episode; the acknowledgement, remediation and resolution times are those of its current
    (last) episode, and clear when it reopens. ``episodes`` holds every outage, oldest first."""

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
    quiet_cycles: int = 0          # cycles in a row with data present and none of its signals firing
    episodes: tuple[Episode, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def episode(self) -> Episode | None:
        """The current (last) episode; None only for an incident built without its episodes."""
        return self.episodes[-1] if self.episodes else None

    @property
    def current_signals(self) -> tuple[Signal, ...]:
        """The signals that fired in the current outage: after a reopen, what fired before it
        belongs to an earlier outage and says nothing of what to do now."""
        episode = self.episode
        if episode is None:
            return self.signals
        return tuple(s for s in self.signals if s.last_at >= episode.started_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentMark:
    """An incident as a dashboard marks it: its current outage's start and its resolution."""

    id: int
    severity: Severity
    status: IncidentStatus
    labels: Mapping[str, str]
    started_at: datetime
    resolved_at: datetime | None = None


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


# The kind of change a remediation playbook the agent applied is recorded as.
REMEDIATION_CHANGE = "remediation"


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A deploy, model rollout or config change that may explain an incident."""

    id: int
    ts: datetime
    kind: str
    labels: Mapping[str, str]
    description: str
    actor: str

    @property
    def is_remediation(self) -> bool:
        """A remediation playbook applied: what was done about an incident, never a suspect of one."""
        return self.kind == REMEDIATION_CHANGE

    @property
    def run_id(self) -> int | None:
        """The remediation run a remediation change records (see ``remediation_change``)."""
        found = _RUN_ID.search(self.description) if self.is_remediation else None
        return int(found.group(1)) if found else None


_RUN_ID = re.compile(r"\(run (\d+)\)$")


def remediation_change(*, playbook: str, rule: str, run_id: int) -> str:
    """The description of the change an applied playbook is recorded as."""
    return f"{playbook} applied by rule {rule} (run {run_id})"


class EventKind(StrEnum):
    """Kinds of timeline events; the notify stage reads these from ``incident_events``."""

    OPENED = "opened"
    SIGNAL_ADDED = "signal_added"
    ACKNOWLEDGED = "acknowledged"
    REMEDIATING = "remediating"
    RESOLVED = "resolved"
    REOPENED = "reopened"          # recurred within the flap window: details carry flapping=true
    ESCALATED = "escalated"        # severity rose
    SILENCED = "silenced"          # a silence now covers the incident
    STATUS_CHANGED = "status_changed"  # any other allowed move (e.g. remediating -> open)
    REMEDIATION = "remediation"    # remediation start or verification recorded
    SIGNAL_RESOLVED = "signal_resolved"


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    """One label matcher of a silence, as in Alertmanager: ``service=api``, ``instance=~web.*``.
    Regular expressions are anchored at both ends."""

    name: str
    op: MatchOp
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{self.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """Suppresses paging for incidents whose labels match every matcher between start and end;
    the incidents are still recorded."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    expired_at: datetime | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def active_at(self, at: datetime) -> bool:
        end = min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at
        return self.starts_at <= at < end


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def parse_matcher(text: str) -> Matcher:
    """``service=api``, ``env!=dev``, ``instance=~"web-.*"``, ``job!~batch.*`` → a Matcher.

    Raises ``ValueError("expected …, found …")``."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f"expected a label matcher such as service=api or instance=~web.*, found {text!r}")
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"expected a regular expression after {op}, found {value!r} ({exc})") from None
    return Matcher(name=name, op=MatchOp(op), value=value)
