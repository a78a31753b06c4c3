"""The plots of an incident page, as inline SVG an on-call engineer reads in seconds.

A signal's plot spans at least the hour before its outage began, marks the start, and draws the
expected band across the whole span: before the start, the series' own level (the median of its
last ten minutes) within the detector's band width at the first anomaly, or three robust
deviations of that hour when the detector gave no band; from the start on, the detector's own
band at each anomalous point. A fixed bound (an SLO's objective, a threshold) is a rule with its
value. The y axis speaks the metric's unit, the x axis UTC clock time at any span.

A drift plot shows the model's drift rate over time against the alert share, and each drifted
feature's PSI as a bar named by the feature, against the PSI threshold (a bar short of it drifted
because the second test agreed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from agent.incidents.svg import Bars, Box, Panel, legend_row, padded, svg_document
from agent.incidents.units import Unit
from agent.store.outbox import HitPoint

WIDTH, HEIGHT = 720, 270
MAX_POINTS = 800  # points of a line drawn; more are reduced to each stretch's minimum and maximum
LEVEL_WINDOW = "10min"  # the series' level before the start: the median of this much before each point
FEATURE_CHARS = 16
OBSERVED, EXPECTED, BAND, ANOMALOUS, STARTED, BOUND = "#1f5fa8", "#2f7f2f", "#7fbf7f", "#d62728", "#555555", "#b3261e"
PSI, PSI_WITH_TEST = "#d98c1f", "#e8c07a"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalPlot:
    """What one signal's plot shows: ``samples`` (else the hits' values), its ``hits``, when it
    began, the span, the unit, and a fixed bound as (name, value) when it has one."""

    samples: Sequence[tuple[datetime, float | None]]
    hits: Sequence[HitPoint]
    began_at: datetime
    start: datetime
    end: datetime
    unit: Unit
    bound: tuple[str, float] | None = None


def signal_svg(plot: SignalPlot, *, label: str) -> str:
    points = line_points(plot)
    # A fixed bound is the expectation of a threshold or an SLO: no band is made up around it.
    band = expected_band(points, plot.hits, plot.began_at) if plot.bound is None else []
    marked = [(h.ts, h.value) for h in plot.hits if h.value is not None and math.isfinite(h.value)]
    everything = [v for _, v in points] + [v for _, v in marked]
    everything += [x for seg in band for _, _, lo, hi in seg for x in (lo, hi)]
    if plot.bound is not None:
        everything.append(plot.bound[1])
    low, high = padded(everything)
    panel = Panel(box=Box(left=70, top=34, right=WIDTH - 12, bottom=HEIGHT - 40), start=plot.start, end=plot.end,
                  low=low, high=high)
    panel.line(points, colour=OBSERVED, label="observed")
    panel.band([[(t, lo, hi) for t, _, lo, hi in seg] for seg in band], colour=BAND, label="expected band")
    expected = [p for seg in band for p in [*((t, e) for t, e, _, _ in seg), (seg[-1][0], math.nan)]]
    panel.line(expected, colour=EXPECTED, label="expected", width=1.0, dash="5 3")
    panel.dots(marked, colour=ANOMALOUS, label="anomalous")
    panel.rule_at(plot.began_at, colour=STARTED, label=f"began {plot.began_at:%H:%M:%S}")
    if plot.bound is not None:
        name, value = plot.bound
        panel.level(value, colour=BOUND, label=f"{name} {plot.unit.format(value)}")
    panel.axes(plot.unit.format)
    parts = panel.parts + legend_row(panel.legend, left=panel.box.left, top=14, right=WIDTH - 8)
    return svg_document(parts, width=WIDTH, height=HEIGHT, label=label)


def drift_svg(rates: Sequence[tuple[datetime, float | None]], share: float | None, psi: Mapping[str, float],
              threshold: float | None, *, began_at: datetime, start: datetime, end: datetime, label: str) -> str:
    """The model's drift rate (share of its features drifted, per cycle, in %) against the alert
    share; and each drifted feature's PSI (worst on top) against the PSI threshold."""
    rate = Panel(box=Box(left=52, top=34, right=380, bottom=HEIGHT - 40), start=start, end=end, low=0.0, high=105.0)
    rate.line([(t, v * 100) for t, v in rates if v is not None], colour=OBSERVED, label="drift rate", step=True)
    if share is not None:
        rate.level(share * 100, colour=BOUND, label=f"alert at {share * 100:.0f} %")
    rate.rule_at(began_at, colour=STARTED, label=f"began {began_at:%H:%M:%S}")
    rate.axes(lambda v: f"{v:.0f} %", y_ticks=6)
    values = list(psi.values())
    high = max([*values, threshold or 0.0]) * 1.15 or 1.0
    bars = Bars(box=Box(left=540, top=34, right=WIDTH - 16, bottom=HEIGHT - 40),
                names=[_short(f) for f in psi], values=values, high=high,
                colours=[PSI if threshold is None or v >= threshold else PSI_WITH_TEST for v in values])
    marks, legend = bars.markup(lambda v: f"{v:g}", (threshold, BOUND, f"PSI threshold {threshold:g}")
                                if threshold is not None else None)
    parts = rate.parts + legend_row(rate.legend, left=rate.box.left, top=14, right=420)
    parts += marks + legend_row([*legend, (f'<rect width="14" height="9" y="-8" fill="{PSI_WITH_TEST}"/>',
                                           "drifted by test")] if any(c == PSI_WITH_TEST for c in bars.colours)
                                else legend, left=430, top=14, right=WIDTH - 8)
    return svg_document(parts, width=WIDTH, height=HEIGHT, label=label)


def line_points(plot: SignalPlot) -> list[tuple[datetime, float]]:
    """The line's points inside the span (the hits' values when no samples were found), at most
    ``MAX_POINTS`` of them."""
    pairs = [(t, float(v)) for t, v in plot.samples if v is not None and plot.start <= t <= plot.end]
    after = pairs[-1][0] if pairs else None  # the hits are observed points too: those past the samples
    pairs += [(h.ts, float(h.value)) for h in plot.hits if h.value is not None and (after is None or h.ts > after)]
    return reduce(pairs, MAX_POINTS)


def reduce(points: list[tuple[datetime, float]], most: int) -> list[tuple[datetime, float]]:
    """At most ``most`` points: the minimum and maximum of each of ``most / 2`` equal stretches,
    in time order, so a spike survives."""
    if len(points) <= most:
        return points
    values = np.array([v for _, v in points], dtype="float64")
    keep: set[int] = set()
    for bucket in np.array_split(np.arange(len(points)), most // 2):
        part = values[bucket]
        if np.isfinite(part).any():
            keep.update((int(bucket[np.nanargmin(part)]), int(bucket[np.nanargmax(part)])))
    return [points[i] for i in sorted(keep)]


Band = list[list[tuple[datetime, float, float, float]]]


def expected_band(points: list[tuple[datetime, float]], hits: Sequence[HitPoint], began_at: datetime) -> Band:
    """Segments of (time, expected, lower, upper): before the start, the series' level within
    the detector's band width (or three robust deviations); then the detector's own at its hits."""
    banded = [h for h in hits if h.expected is not None and h.lower is not None and h.upper is not None]
    segments: Band = []
    before = [(t, v) for t, v in points if t < began_at]
    if before:
        series = pd.Series([v for _, v in before], index=pd.DatetimeIndex([t for t, _ in before]))
        level = series.rolling(LEVEL_WINDOW).median().to_numpy()
        half = (banded[0].upper - banded[0].lower) / 2 if banded else _robust_half(series.to_numpy())
        segments.append([(t, m, m - half, m + half) for (t, _), m in zip(before, level)])
    if banded:
        segments.append([(h.ts, float(h.expected), float(h.lower), float(h.upper))  # type: ignore[arg-type]
                         for h in banded])
    return segments


def _robust_half(values: np.ndarray) -> float:
    """Three robust standard deviations (1.4826 x the median absolute deviation); a series that
    never moved gets a sliver of its level, so the band still shows."""
    mad = float(np.median(np.abs(values - np.median(values)))) * 1.4826
    return 3 * mad if mad > 0 else max(abs(float(np.median(values))) * 0.01, 1e-9)


def _short(name: str) -> str:
    return name if len(name) <= FEATURE_CHARS else name[:FEATURE_CHARS - 1] + "…"
