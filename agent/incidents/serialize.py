"""Incidents, events, changes and silences as plain JSON-able dicts (for the API and ``--json``).

Datetimes become ISO-8601 UTC strings; enums their values."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any

from agent.flow.incidents import Change, Episode, Incident, IncidentEvent, Signal, Silence


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _record(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in skip}


def signal_dict(signal: Signal) -> dict[str, Any]:
    return {**_record(signal), "key": signal.key}


def episode_dict(episode: Episode) -> dict[str, Any]:
    """An episode with its durations in seconds (None where it has not got that far)."""
    return {**_record(episode, skip=("incident_id",)), "mttd_s": episode.mttd_s, "mtta_s": episode.mtta_s,
            "mttr_s": episode.mttr_s}


def incident_dict(incident: Incident, *, signals: bool = True) -> dict[str, Any]:
    body = _record(incident, skip=("signals", "episodes"))
    body["episodes"] = [episode_dict(e) for e in incident.episodes]
    body["signal_count"] = len(incident.signals)
    if signals:
        body["signals"] = [signal_dict(s) for s in incident.signals]
    return body


def event_dict(event: IncidentEvent) -> dict[str, Any]:
    return _record(event)


def change_dict(change: Change) -> dict[str, Any]:
    return _record(change)


def silence_dict(silence: Silence) -> dict[str, Any]:
    body = _record(silence, skip=("matchers",))
    body["matchers"] = [str(m) for m in silence.matchers]
    return body
