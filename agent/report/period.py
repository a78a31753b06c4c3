"""The period a report covers: ``--since 30d`` or a date, up to now; weeks for weekly views.

Every time in the store is UTC epoch seconds, so durations never depend on a time zone. A zone
only names the weeks: a week starts on Monday 00:00 wall-clock time in that zone, which keeps
working across a DST change (such a week is 167 or 169 hours long).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from agent.clock import EARLIEST, check_in_range, shifted, to_epoch
from agent.config.types import parse_duration


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    """``[since, until)`` as aware UTC datetimes."""

    since: datetime
    until: datetime

    @property
    def since_s(self) -> float:
        return float(to_epoch(self.since))

    @property
    def until_s(self) -> float:
        return float(to_epoch(self.until))

    @property
    def days(self) -> float:
        return max((self.until_s - self.since_s) / 86400.0, 1e-9)

    def describe(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


_RELATIVE = re.compile(r"^\s*now\s*(?:-\s*(.+))?$")


def parse_since(text: str, *, now: datetime) -> datetime:
    """A point in time as every command reads one (``--since``, ``--until``, ``--from``, ``--to``):
    ``30d``/``12h``/``2w`` back from ``now`` (also written ``now-30d``), ``now``, or an ISO date
    or datetime (UTC unless it says)."""
    relative = _RELATIVE.match(text)
    if relative:
        text = relative.group(1) or "0s"
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        try:
            return shifted(now, -seconds, text)
        except ValueError:
            raise ValueError(f"expected a duration that reaches back no further than {EARLIEST:%Y-%m-%d}, "
                             f"found {text!r}") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a duration back from now such as 30d (or now-30d), now, or a date such as "
                         f"2026-01-31 or 2026-01-31T08:00:00Z, found {text!r}") from None
    return check_in_range(moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment, text)


def period_since(text: str, *, now: datetime, until: str | None = None) -> Period:
    end = parse_since(until, now=now) if until else now
    start = parse_since(text, now=now)
    if start >= end:
        raise ValueError(f"expected the start of the period before its end, found {start:%Y-%m-%d %H:%M} "
                         f"after {end:%Y-%m-%d %H:%M}")
    return Period(since=start, until=end)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones, not a zone
        raise ValueError(f"expected a time zone name such as UTC or Europe/Berlin, found {name!r}") from None


def week_labels(epoch_s: pd.Series, tz: str = "UTC") -> pd.Series:
    """The Monday (``YYYY-MM-DD``, wall-clock in ``tz``) of the week of each epoch second.

    Works on wall-clock dates rather than adding 7 × 24 h, so a DST change inside a week moves
    no incident into the wrong week.
    """
    local = pd.to_datetime(epoch_s, unit="s", utc=True).dt.tz_convert(zone(tz)).dt.tz_localize(None)
    monday = local.dt.normalize() - pd.to_timedelta(local.dt.day_of_week, unit="D")
    return monday.dt.strftime("%Y-%m-%d")
