"""What this cycle says about an incident's signals: still firing, quiet, or unknown (no data).

The same detectors keep running every cycle; a signal fires again when a hit for its series and
detector is among the hits the cycle's detection found. A signal whose series has data and no hit is quiet. A series
without data (a gap) says nothing: it is neither recovered nor failed. A signal of another shard
is as that shard's agent last judged it (``Detection.elsewhere``), unknown when that is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from agent.flow.detection import Detection


class SignalState(StrEnum):
    FIRING = "firing"
    QUIET = "quiet"
    UNKNOWN = "unknown"


def relevant_signals(incident: Any, label: str | None, targets: Sequence[str]) -> list[Any]:
    """The signals of the incident's current outage that concern ``targets`` (by the rule's
    target label); all of the outage's signals when none carries that label."""
    signals = list(incident.current_signals)
    if label is None:
        return signals
    mine = [s for s in signals if s.labels.get(label) in targets]
    return mine or signals


def observe(signals: Sequence[Any], seen: Detection) -> SignalState:
    if not signals:
        return SignalState.UNKNOWN
    keys = {(s.series_id, s.detector) for s in signals}
    if any((hit.series_id, hit.detector) in keys for hit in seen.hits):
        return SignalState.FIRING
    if any(seen.elsewhere.get(key) == SignalState.FIRING for key in keys):
        return SignalState.FIRING
    samples = seen.samples
    values = samples.values
    for signal in signals:
        sid = signal.series_id
        elsewhere = seen.elsewhere.get((sid, signal.detector))
        if elsewhere is not None:  # another shard's agent judges it
            if elsewhere != SignalState.QUIET:
                return SignalState.UNKNOWN
            continue
        if sid in seen.judged:
            continue  # judged with data by its detector (a model's drift, an entity's forest)
        if sid in samples.gaps or sid not in values.columns or not values[sid].notna().any():
            return SignalState.UNKNOWN
    return SignalState.QUIET
