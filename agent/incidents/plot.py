"""One small PNG per signal: the series around the anomaly, the detector's expected value and
band, and the anomalous points marked. Drawn with matplotlib's object API on the Agg canvas (no
pyplot state, safe in the HTTP app's worker threads). No text from labels goes into the image:
captions stay in the HTML, where they are escaped."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from agent.store.outbox import HitPoint

WIDTH_IN, HEIGHT_IN, DPI = 7.5, 2.6, 96


def signal_png(hits: Sequence[HitPoint], samples: Sequence[tuple[datetime, float | None]] = ()) -> bytes:
    """PNG bytes of one signal: ``samples`` as the line (or the hits' values when none are
    stored), ``expected`` dashed, ``lower``..``upper`` shaded, hits as red dots."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    series = [(t, v) for t, v in samples if v is not None] or [(h.ts, h.value) for h in hits if h.value is not None]
    if series:
        ax.plot([t for t, _ in series], [v for _, v in series], color="#1f5fa8", linewidth=1.2, label="observed")
    banded = [h for h in hits if h.lower is not None and h.upper is not None]
    if len(banded) > 1:
        ax.fill_between([h.ts for h in banded], [h.lower for h in banded], [h.upper for h in banded],
                        color="#7fbf7f", alpha=0.35, step="mid", label="expected band")
    elif banded:
        ax.vlines([banded[0].ts], [banded[0].lower], [banded[0].upper], colors="#4f9f4f", linewidth=6,
                  alpha=0.5, label="expected band")
    expected = [h for h in hits if h.expected is not None]
    if expected:
        ax.plot([h.ts for h in expected], [h.expected for h in expected], color="#2f7f2f", linestyle="--",
                linewidth=1.2, marker="_" if len(expected) == 1 else None, label="expected")
    marked = [h for h in hits if h.value is not None]
    if marked:
        ax.scatter([h.ts for h in marked], [h.value for h in marked], color="#d62728", s=28, zorder=5,
                   label="anomalous")
    _time_axis(ax, legend="best")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.96, bottom=0.2)  # fixed: tight_layout costs a draw
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def drift_png(rates: Sequence[tuple[datetime, float | None]], share: float | None,
              psi: Sequence[float], threshold: float | None) -> bytes:
    """PNG bytes of a model's drift: on the left its drift rate over time (the share of features
    drifted, per cycle) against the alert share; on the right each drifted feature's PSI (bars
    numbered 1..n, worst first; the page names them) against the PSI threshold."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    points = [(t, v * 100) for t, v in rates if v is not None]
    if points:
        left.step([t for t, _ in points], [v for _, v in points], where="post", color="#1f5fa8", linewidth=1.4,
                  label="drift rate %")
    if share is not None:
        left.axhline(share * 100, color="#d62728", linestyle="--", linewidth=1.1, label="alert share")
    left.set_ylim(0, 105)
    _time_axis(left, legend="lower right")
    numbers = list(range(1, len(psi) + 1))
    right.barh(numbers, list(psi), color="#d98c1f", label="PSI")
    if threshold is not None:
        right.axvline(threshold, color="#d62728", linestyle="--", linewidth=1.1, label="threshold")
    right.set_yticks(numbers)
    right.invert_yaxis()  # worst on top
    right.grid(True, axis="x", alpha=0.3)
    if right.get_legend_handles_labels()[0]:
        right.legend(loc="lower right", fontsize=8, framealpha=0.8)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.96, bottom=0.2, wspace=0.25)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _time_axis(ax: Any, *, legend: str) -> None:
    """Concise UTC dates on the x axis, a light grid, and the legend where it is asked for."""
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend, fontsize=8, framealpha=0.8)
