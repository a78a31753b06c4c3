"""An incident's title and the figures of its signals: the one place correlation (which stores a
title as it opens an incident) and the summary (which every view renders) get them from.

``headline`` says what is wrong, where, how far from normal and since which change; ``line_of``
gives a signal the figures of its peak; ``rank_signals`` orders signals most anomalous first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.flow.incidents import STORM_LABEL, Change, Incident, Signal
from agent.incidents.catalog import Catalog
from agent.incidents.onset import DRIFT_DETECTOR
from agent.incidents.rootcause import ALERT_DETECTOR, where
from agent.incidents.units import PLAIN, Unit
from detectors.drift import DriftFacts, drift_facts


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalLine:
    """A member signal with how far from normal it was at its peak (the hit that scored highest),
    the figures every view states; ``graph_url`` opens it in Prometheus."""

    signal: Signal
    observed: float | None
    expected: float | None
    deviation: str
    graph_url: str | None = None
    unit: Unit = PLAIN

    @property
    def drift(self) -> DriftFacts | None:
        return drift_facts(self.signal.explanation) if self.signal.detector == DRIFT_DETECTOR else None

    @property
    def spread(self) -> float | None:
        """How far the peak was from expected, in half-widths of the detector's normal band
        there (its usual spread): 1 is the band's edge. None without a band."""
        s = self.signal
        if self.observed is None or self.expected is None or s.peak_lower is None or s.peak_upper is None:
            return None
        half = (s.peak_upper - s.peak_lower) / 2
        return abs(self.observed - self.expected) / half if half > 0 else None


def title_from(incident: Incident, lines: tuple[SignalLine, ...], changes: tuple[Change, ...]) -> str:
    """``headline`` for a stored incident: its own title where there is nothing to say better."""
    if not lines or incident.labels.get(STORM_LABEL) == "true":  # a storm's signals share only the moment
        base = incident.title or f"incident {incident.id}"
        return f"{base} ({len(lines)} signals held here)" if lines else base
    return headline(lines, changes, labels=incident.labels)


def rank_signals(signals: tuple[Signal, ...]) -> list[Signal]:
    """Most anomalous first: peak score, then number of hits, then the earliest."""
    return sorted(signals, key=lambda s: (-(s.peak_score if s.peak_score is not None else float("-inf")),
                                          -s.hits, s.first_at))


def deviation(observed: float | None, expected: float | None) -> str:
    """How far ``observed`` is from ``expected``, in words a person compares at a glance."""
    if observed is None or expected is None:
        return "anomalous"
    if expected == 0:
        return f"{observed:.3g} vs expected 0"
    ratio = observed / expected
    if ratio >= 2:
        return f"{ratio:.1f}x expected"
    change = (observed - expected) / abs(expected) * 100
    return f"{change:+.0f}% vs expected"


def headline(lines: tuple[SignalLine, ...], changes: tuple[Change, ...] = (), *,
             labels: Mapping[str, str]) -> str:
    """What is wrong, where (``labels``, else the top signal's), how far from normal, and since
    which change: ``fraud model: 4 of 4 features drifted (PSI up to 0.28) since rollout v3``,
    ``http_request_duration_seconds 4.2x expected on service=api, instance=web-1 (+1 more signal)``.
    ``lines`` are ranked, most anomalous first, and not empty."""
    top = lines[0]
    sig = top.signal
    labels = dict(labels) or dict(sig.labels)
    facts = top.drift
    if facts is not None:
        model = sig.labels.get("model") or labels.get("model") or "the"
        text = f"{model} model: {facts.drifted} of {facts.judged} features drifted"
        if facts.psi:
            text += f" (PSI up to {max(facts.psi.values()):.2f})"
    else:
        what = sig.metric or sig.series_id
        place = where(labels)
        far = far_words(top)
        text = f"{what} {far}" + (f" on {place}" if place else "")
    if changes:
        text += f" since {change_words(changes[0])}"
    if len(lines) > 1:
        text += f" (+{len(lines) - 1} more signal{'s' if len(lines) > 2 else ''})"
    return text


def far_words(line: SignalLine) -> str:
    """How far from normal in a title, from the peak's figures: ``8.4x expected``, ``down to
    0``, ``above its upper bound``; no figure that needs a unit, so every view says the same."""
    sig = line.signal
    if sig.detector == ALERT_DETECTOR:
        return "firing"
    if line.observed == 0 and (line.expected or (sig.peak_lower or 0) > 0):
        return "down to 0"
    if line.expected is None and line.observed is not None:
        side = bound_side(line)
        if side is not None:
            return f"{side[0]} its {side[1]}"
    return line.deviation


def bound_side(line: SignalLine) -> tuple[str, str] | None:
    """("above", "upper bound") or ("below", "lower bound") for a peak outside a fixed bound."""
    sig, value = line.signal, line.observed
    if value is None:
        return None
    if sig.peak_upper is not None and value > sig.peak_upper:
        return "above", "upper bound"
    if sig.peak_lower is not None and value < sig.peak_lower:
        return "below", "lower bound"
    return None


_CHANGE_NOUNS = {"model_rollout": "rollout", "deploy": "deploy", "config": "config change"}


def change_words(change: Change) -> str:
    """``rollout v3``, ``deploy v12``, or ``feature_flag at 13:40 UTC`` without a version label."""
    noun = _CHANGE_NOUNS.get(change.kind, change.kind)
    version = change.labels.get("version")
    return f"{noun} {version}" if version else f"{noun} at {change.ts:%H:%M} UTC"


def line_of(signal: Signal, catalog: Catalog | None = None) -> SignalLine:
    """The signal with its peak's figures (a store written before peaks were kept: its newest)."""
    observed = signal.peak_value if signal.peak_at is not None else signal.last_value
    expected = signal.peak_expected if signal.peak_at is not None else signal.last_expected
    return SignalLine(
        signal=signal, observed=observed, expected=expected, deviation=deviation(observed, expected),
        graph_url=catalog.graph_url(signal) if catalog is not None else None,
        unit=catalog.unit(signal) if catalog is not None else PLAIN)
