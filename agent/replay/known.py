"""Known outages (``--known FILE``): did the replay page for them, and how soon.

The file (YAML or JSON) is a list of outages, each ``start``, ``end`` (times, UTC unless they
say) and ``labels`` (what it hit, e.g. ``{instance: db-1}``), with an optional ``name``. An
outage is found when an episode of an incident with a signal carrying all its labels begins
between one ``agent.interval`` before its start and its end; the delay runs from its start to the
first such episode's detection. A label no replayed series carries is an error: a typo would
otherwise read as a missed outage.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from agent.errors import AiopsError
from agent.flow.incidents import Incident
from agent.sources.files import parse_series_name


class KnownOutagesError(AiopsError):
    """A known-outages file that cannot be used: names the file, the outage and what is wrong."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        self.path, self.where, self.problem = path, where, problem
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outage:
    name: str
    start: datetime
    end: datetime
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutageFound:
    name: str
    start: datetime
    found: bool
    incident: int | None
    delay_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownScore:
    outages: tuple[OutageFound, ...]

    @property
    def recall(self) -> float | None:
        return sum(o.found for o in self.outages) / len(self.outages) if self.outages else None

    @property
    def median_delay_s(self) -> float | None:
        delays = sorted(o.delay_s for o in self.outages if o.delay_s is not None)
        return float(pd.Series(delays).median()) if delays else None


def read_known(path: Path) -> list[Outage]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KnownOutagesError(path, "", f"cannot read: {exc}") from None
    if not isinstance(data, list):
        raise KnownOutagesError(path, "", f"expected a list of outages, found {type(data).__name__}")
    out = []
    for n, entry in enumerate(data, 1):
        where = f"outage {n}"
        if not isinstance(entry, dict):
            raise KnownOutagesError(path, where, f"expected start, end and labels, found {entry!r:.60}")
        where = f"outage {n} ({entry['name']})" if entry.get("name") else where
        unknown = sorted(set(entry) - {"name", "start", "end", "labels"})
        if unknown:
            raise KnownOutagesError(path, where, f"expected only name, start, end and labels, found {unknown[0]!r}")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict) or not labels:
            raise KnownOutagesError(path, where, f"expected labels naming what it hit, found {labels!r:.60}")
        try:
            start, end = _utc(entry["start"]), _utc(entry["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KnownOutagesError(path, where, f"expected start and end times, found {exc}") from None
        if end < start:
            raise KnownOutagesError(path, where, f"ends ({end}) before it starts ({start})")
        out.append(Outage(name=str(entry.get("name") or where), start=start, end=end,
                          labels={str(k): str(v) for k, v in labels.items()}))
    return out


def check_labels(path: Path, outages: Sequence[Outage], series_ids: Collection[str]) -> None:
    """Every outage label must be carried by some replayed series."""
    seen: dict[str, set[str]] = {}
    for sid in series_ids:
        for k, v in parse_series_name(sid)[1].items():
            seen.setdefault(k, set()).add(v)
    for outage in outages:
        for k, v in outage.labels.items():
            if v not in seen.get(k, ()):
                raise KnownOutagesError(path, f"outage {outage.name}",
                                        f'label {k}="{v}" is carried by no replayed series '
                                        f"({len(seen.get(k, ()))} values of {k} seen)")


def judge_known(outages: Sequence[Outage], incidents: Sequence[Incident], *, step_s: float) -> KnownScore:
    found = []
    for outage in outages:
        lo = outage.start - timedelta(seconds=step_s)
        first: tuple[datetime, int] | None = None
        for incident in incidents:
            if not any(all(s.labels.get(k) == v for k, v in outage.labels.items()) for s in incident.signals):
                continue
            for episode in incident.episodes:
                if lo < episode.started_at <= outage.end and (first is None or episode.detected_at < first[0]):
                    first = (episode.detected_at, incident.id)
        found.append(OutageFound(name=outage.name, start=outage.start, found=first is not None,
                                 incident=first[1] if first else None,
                                 delay_s=max((first[0] - outage.start).total_seconds(), 0.0) if first else None))
    return KnownScore(outages=tuple(found))


def _utc(text: object) -> datetime:
    ts = pd.Timestamp(text if isinstance(text, datetime) else str(text))
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


__all__ = ["KnownOutagesError", "KnownScore", "Outage", "check_labels", "judge_known", "read_known"]
