"""UTC time in one place. The store keeps epoch seconds (REAL); code passes aware datetimes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_epoch(value: datetime | float | int | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.timestamp()
    return float(value)


def from_epoch(value: float | int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), timezone.utc)


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
