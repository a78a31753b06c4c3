"""UTC time in one place, and durations in words. The store keeps epoch seconds (REAL); code
passes aware datetimes."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import overload

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


# Every time the agent takes in and stores lies in this range: later readers (pages, reports,
# epoch arithmetic) can then always render it. Inputs outside it are refused or clamped.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
_EARLIEST_S, _LATEST_S = EARLIEST.timestamp(), LATEST.timestamp()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def boot_id() -> str:
    """This host's boot, as Linux names it: monotonic clock readings compare only within one
    (every process of a host shares ``CLOCK_MONOTONIC`` until it reboots)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def check_in_range(value: datetime, what: str) -> datetime:
    """``value`` as aware UTC, or ``ValueError`` naming ``what`` when it is naive or outside
    [EARLIEST, LATEST)."""
    if value.tzinfo is None:
        raise ValueError(f"{what}: expected a time with a time zone, found {value.isoformat()}")
    value = value.astimezone(timezone.utc)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{what}: expected a time from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}, "
                         f"found {value.isoformat()}")
    return value


def shifted(value: datetime, seconds: float, what: str) -> datetime:
    """``value`` moved by ``seconds``, or ``ValueError`` naming ``what`` when that leaves the range."""
    try:
        moved = value + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        moved = None
    if moved is None or not EARLIEST <= moved < LATEST:
        raise ValueError(f"{what}: expected a duration that stays between {EARLIEST:%Y-%m-%d} and "
                         f"{LATEST:%Y-%m-%d}, found {seconds:g} s from {value.isoformat()}")
    return moved


@overload
def to_epoch(value: datetime | float) -> float: ...
@overload
def to_epoch(value: None) -> None: ...
@overload
def to_epoch(value: datetime | float | None) -> float | None: ...


def to_epoch(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.timestamp()
    return float(value)


@overload
def from_epoch(value: float) -> datetime: ...
@overload
def from_epoch(value: None) -> None: ...
@overload
def from_epoch(value: float | None) -> datetime | None: ...


def from_epoch(value: float | None) -> datetime | None:
    """Stored epoch seconds as an aware UTC datetime, clamped to [EARLIEST, LATEST]: a row an
    older agent stored out of that range (year 1, year 9999) still renders everywhere."""
    if value is None:
        return None
    seconds = min(max(float(value), _EARLIEST_S), _LATEST_S)
    return datetime.fromtimestamp(seconds, timezone.utc)


class ManualClock:
    """A clock that moves only when told: backtests advance it with the data, tests set it.

    Call it for "now", like ``utcnow``: ``clock = ManualClock(t0); clock.advance(600); clock()``.
    """

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now!r}: pass an aware UTC datetime")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now!r}: pass an aware UTC datetime")
        self.now = now

    def advance(self, seconds: float) -> datetime:
        self.now = self.now + timedelta(seconds=seconds)
        return self.now


class ManualMonotonic:
    """A monotonic clock (seconds) that moves only when told, beside a ``ManualClock``: a test
    steps the wall clock and leaves this one alone, as NTP or a resumed VM does."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a monotonic clock never goes back, found {seconds:g} s")
        self.now += seconds
        return self.now


def duration(seconds: float | None) -> str:
    """``45s``, ``12m 05s``, ``3h 04m``, ``2d 03h``; ``-`` when there is no value."""
    if seconds is None or math.isnan(seconds):
        return "-"
    s = int(round(seconds))
    sign, s = ("-", -s) if s < 0 else ("", s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600:02d}h"
