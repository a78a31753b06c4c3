"""Creating silences from what a person typed: matchers, a start, an end or a duration, a reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from agent.clock import check_in_range, shifted
from agent.flow.incidents import Silence, parse_matcher

if TYPE_CHECKING:
    from agent.store import Store


def create_silence(store: "Store", matchers: Sequence[str], *, reason: str, actor: str, now: datetime,
                   starts_at: datetime | None = None, ends_at: datetime | None = None,
                   duration_s: float | None = None) -> Silence:
    """Raises ``ValueError("expected …, found …")`` for anything that cannot be a silence."""
    if not matchers:
        raise ValueError("expected at least one label matcher such as service=api, found none")
    parsed = [parse_matcher(m) for m in matchers]
    if not reason.strip():
        raise ValueError("expected a reason for the silence, found an empty one")
    start = check_in_range(starts_at, "starts_at") if starts_at is not None else now
    if (ends_at is None) == (duration_s is None):
        raise ValueError("expected exactly one of an end time and a duration, found "
                         + ("both" if ends_at is not None else "neither"))
    if duration_s is not None and not math.isfinite(float(duration_s)):
        raise ValueError(f"duration: expected a finite duration, found {duration_s!r}")
    end = check_in_range(ends_at, "ends_at") if ends_at is not None else \
        shifted(start, float(duration_s or 0), "duration")
    if end <= start:
        raise ValueError(f"expected the end after the start ({start.isoformat()}), found {end.isoformat()}")
    return store.add_silence(parsed, starts_at=start, ends_at=end, reason=reason.strip(), actor=actor, now=now)
