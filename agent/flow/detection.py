"""What one cycle's detection saw: the frame it judged, the hits it found, and which signals it
judged with data. Correlation and remediation read it; neither needs the rest of the cycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agent.flow.samples import Samples
from detectors.base import Hit


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    at: datetime  # the cycle's time
    samples: Samples = field(default_factory=Samples.empty)
    hits: list[Hit] = field(default_factory=list)
    # Signals judged with data, including subjects that are not a column of ``samples`` (a
    # model's drift, an entity's forest): judged and no hit = quiet.
    judged: frozenset[str] = frozenset()
    # Signals of open incidents that other shard agents judge, as their last cycle left them in
    # the store: (series id, detector) -> "firing", "quiet" or "unknown" (no fresh judgement).
    elsewhere: Mapping[tuple[str, str], str] = field(default_factory=dict)
