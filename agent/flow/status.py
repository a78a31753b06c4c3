"""What an agent reports about itself (``aiops status``, ``/status``): its sources' targets, the
detectors still warming up, and its last cycle. Written to the store once a cycle, one record per
shard, so any process reading the store sees every agent sharing it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from agent.clock import from_epoch, to_epoch


class TargetState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # not tried yet


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStatus:
    """One scrape target or Prometheus query, as its last attempts left it."""

    source: str  # scrape, prometheus, file
    target: str  # the target's or the query's name
    url: str  # without credentials
    state: TargetState = TargetState.UNKNOWN
    optional: bool = False  # expected to be absent on some hosts
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error_kind: str | None = None  # a FailureKind
    last_error: str | None = None
    series: int | None = None  # in its last good answer


@dataclass(frozen=True, slots=True, kw_only=True)
class WarmingUp:
    """Series a detector watches but cannot raise a hit on yet: not fitted (``series``, their
    history is still too short), or fitted and scored while their tail fills (``calibrating``)."""

    detector: str
    series: int
    min_history_s: float
    # When the first and the last of them have history enough to be fitted (None: not known until
    # the refit job has looked at them); each is scored from the first cycle after its fit.
    first_fit_at: datetime | None = None
    last_fit_at: datetime | None = None
    # Fitted and scored, but no point of theirs has a chance yet: the detector's tail of their own
    # past still needs points before it can tell how rare one is (no hit until it can).
    calibrating: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CycleStatus:
    started_at: datetime
    duration_s: float
    series: int
    hits: int
    failed_stages: tuple[str, ...] = ()
    # Set when every target of the source failed: the cycle read nothing.
    blind: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    shard: str
    holder: str
    role: str  # leader, active
    updated_at: datetime
    source: str  # sources.kind
    interval_s: float
    cycle: CycleStatus | None = None
    targets: tuple[TargetStatus, ...] = ()
    warming: tuple[WarmingUp, ...] = ()
    series_scored: int = 0  # series a detector scored in the last cycle

    @property
    def series_warming(self) -> int:
        return sum(w.series + w.calibrating for w in self.warming)

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able data (times as epoch seconds), read back by ``from_data``."""
        data: dict[str, Any] = _plain(asdict(self))
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "AgentStatus":
        cycle = data.get("cycle")
        return cls(
            shard=data["shard"], holder=data["holder"], role=data["role"], updated_at=_when(data["updated_at"]),
            source=data["source"], interval_s=float(data["interval_s"]),
            cycle=None if cycle is None else CycleStatus(**{**cycle, "started_at": _when(cycle["started_at"]),
                                                            "failed_stages": tuple(cycle["failed_stages"])}),
            targets=tuple(TargetStatus(**{**t, "state": TargetState(t["state"]),
                                          "last_success_at": _at(t["last_success_at"]),
                                          "last_error_at": _at(t["last_error_at"])}) for t in data["targets"]),
            warming=tuple(WarmingUp(**{**w, "first_fit_at": _at(w["first_fit_at"]),
                                       "last_fit_at": _at(w["last_fit_at"])}) for w in data["warming"]),
            series_scored=int(data.get("series_scored", 0)))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_epoch(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, StrEnum) else value


def _at(value: float | None) -> datetime | None:
    return from_epoch(value)


def _when(value: float) -> datetime:
    at = from_epoch(value)
    assert at is not None
    return at
