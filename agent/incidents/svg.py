"""A small SVG chart writer for the incident page: time on x, a value on y, lines, a band,
points, rules, a legend above the plot, tick labels that never crowd each other.

Hand-written rather than drawn with matplotlib: a page holds several plots and must render in
well under 200 ms (matplotlib took 0.1-0.4 s a plot here), and the layout of every text is ours
to choose, so a browser draws it where this module placed it. Every text is escaped; nothing
here has an id, so plots can share a page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape

FONT_PX = 11
CHAR_PX = 0.62 * FONT_PX  # a generous mean advance of DejaVu Sans / Arial: widths are estimated with it
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'
TIME_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
                604800, 2592000)
MIN_TICK_GAP_PX = 90  # x tick labels at least this far apart


def text_width(text: str, size: float = FONT_PX) -> float:
    return len(text) * 0.62 * size


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """The plot area in pixels."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(slots=True)
class Panel:
    """One plot area with a time x axis ``[start, end]`` and a y range ``[low, high]``."""

    box: Box
    start: datetime
    end: datetime
    low: float
    high: float
    parts: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (swatch markup, label)

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        return self.box.left + (at - self.start).total_seconds() / span * self.box.width

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return self.box.bottom - (value - self.low) / span * self.box.height

    # -- marks ---------------------------------------------------------------------------------

    def line(self, points: Sequence[tuple[datetime, float]], *, colour: str, label: str, width: float = 1.4,
             dash: str = "", step: bool = False) -> None:
        """A line through the points, broken at NaN; ``step``: held flat until the next point."""
        path, pen_down = [], False
        previous_y = 0.0
        for at, value in points:
            if not math.isfinite(value):
                pen_down = False
                continue
            x, y = self.x(at), self.y(value)
            if pen_down and step:
                path.append(f"L{x:.1f},{previous_y:.1f}")
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down, previous_y = True, y
        if not path:
            return
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<path class="line" d="{"".join(path)}" fill="none" stroke="{colour}" '
                          f'stroke-width="{width}"{dashes}/>')
        self.legend.append((_line_swatch(colour, dash), label))

    def band(self, segments: Sequence[Sequence[tuple[datetime, float, float]]], *, colour: str, label: str) -> None:
        """Shaded areas between (time, lower, upper) points; a one-point segment is a short bar."""
        drawn = False
        for seg in segments:
            seg = [p for p in seg if math.isfinite(p[1]) and math.isfinite(p[2])]
            if len(seg) == 1:
                at, low, high = seg[0]
                x = self.x(at)
                self.parts.append(f'<rect x="{x - 3:.1f}" y="{self.y(high):.1f}" width="6" '
                                  f'height="{max(self.y(low) - self.y(high), 1):.1f}" fill="{colour}" opacity="0.45"/>')
                drawn = True
            elif seg:
                upper = " ".join(f"{self.x(t):.1f},{self.y(h):.1f}" for t, _, h in seg)
                lower = " ".join(f"{self.x(t):.1f},{self.y(lo):.1f}" for t, lo, _ in reversed(seg))
                self.parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{colour}" opacity="0.35"/>')
                drawn = True
        if drawn:
            self.legend.append((f'<rect width="14" height="9" y="-8" fill="{colour}" opacity="0.45"/>', label))

    def dots(self, points: Sequence[tuple[datetime, float]], *, colour: str, label: str) -> None:
        marks = [f'<circle cx="{self.x(t):.1f}" cy="{self.y(v):.1f}" r="3" fill="{colour}"/>'
                 for t, v in points if math.isfinite(v)]
        if marks:
            self.parts.append(f'<g class="points">{"".join(marks)}</g>')
            self.legend.append((f'<circle cx="7" cy="-4" r="3.5" fill="{colour}"/>', label))

    def rule_at(self, at: datetime, *, colour: str, label: str) -> None:
        """A vertical dotted rule at ``at``."""
        x = self.x(at)
        self.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.box.top:.1f}" y2="{self.box.bottom:.1f}" '
                          f'stroke="{colour}" stroke-width="1.2" stroke-dasharray="2 3"/>')
        self.legend.append((_line_swatch(colour, "2 3"), label))

    def level(self, value: float, *, colour: str, label: str) -> None:
        """A horizontal dashed rule at ``value``."""
        y = self.y(value)
        self.parts.append(f'<line x1="{self.box.left:.1f}" x2="{self.box.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                          f'stroke="{colour}" stroke-width="1.2" stroke-dasharray="6 3"/>')
        self.legend.append((_line_swatch(colour, "6 3"), label))

    # -- axes ----------------------------------------------------------------------------------

    def axes(self, y_label: Callable[[float], str], *, y_ticks: int = 5) -> None:
        b = self.box
        out = [f'<rect x="{b.left:.1f}" y="{b.top:.1f}" width="{b.width:.1f}" height="{b.height:.1f}" '
               'fill="none" stroke="#9aa3ad" stroke-width="0.8"/>']
        for value in nice_ticks(self.low, self.high, y_ticks):
            y = self.y(value)
            out.append(f'<line x1="{b.left:.1f}" x2="{b.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
            out.append(_text(b.left - 5, y + 4, y_label(value), anchor="end", cls="tick"))
        out += self.time_ticks()
        self.parts[:0] = out  # under the marks

    def time_ticks(self) -> list[str]:
        """Clock times at a round step, at most one label per ``MIN_TICK_GAP_PX``; the date under
        the first tick and wherever the day changes."""
        b = self.box
        ticks, step_s = time_ticks(self.start, self.end, max(2, int(b.width // MIN_TICK_GAP_PX)))
        out, last_day = [], None
        for at in ticks:
            x = self.x(at)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{b.top:.1f}" y2="{b.bottom:.1f}" stroke="#e3e6ea"/>')
            clock = at.strftime("%b %d") if step_s >= 86400 else at.strftime("%H:%M" if step_s >= 60 else "%H:%M:%S")
            out.append(_text(x, b.bottom + 14, clock, anchor="middle", cls="tick"))
            if step_s < 86400 and at.date() != last_day:
                out.append(_text(x, b.bottom + 27, at.strftime("%Y-%m-%d UTC"), anchor="middle", cls="tick date"))
                last_day = at.date()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Bars:
    """Horizontal bars named on their left, with a value axis below."""

    box: Box
    names: Sequence[str]
    values: Sequence[float]
    colours: Sequence[str]
    high: float

    def markup(self, value_label: Callable[[float], str],
               rule: tuple[float, str, str] | None) -> tuple[list[str], list[tuple[str, str]]]:
        b = self.box
        row = b.height / max(len(self.values), 1)
        out = [f'<rect x="{b.left:.1f}" y="{b.top:.1f}" width="{b.width:.1f}" height="{b.height:.1f}" '
               'fill="none" stroke="#9aa3ad" stroke-width="0.8"/>']
        for value in nice_ticks(0.0, self.high, 3):
            x = b.left + value / self.high * b.width
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{b.top:.1f}" y2="{b.bottom:.1f}" stroke="#e3e6ea"/>')
            out.append(_text(x, b.bottom + 14, value_label(value), anchor="middle", cls="tick"))
        for k, (name, value, colour) in enumerate(zip(self.names, self.values, self.colours)):
            top = b.top + k * row + row * 0.2
            width = max(value, 0.0) / self.high * b.width
            out.append(f'<rect class="bar" x="{b.left:.1f}" y="{top:.1f}" width="{width:.1f}" '
                       f'height="{row * 0.6:.1f}" fill="{colour}"/>')
            out.append(_text(b.left - 5, top + row * 0.3 + 4, name, anchor="end", cls="name"))
        legend = []
        if rule is not None:
            value, colour, label = rule
            x = b.left + value / self.high * b.width
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{b.top:.1f}" y2="{b.bottom:.1f}" stroke="{colour}" '
                       'stroke-width="1.2" stroke-dasharray="6 3"/>')
            legend.append((_line_swatch(colour, "6 3"), label))
        return out, legend


def legend_row(items: Sequence[tuple[str, str]], *, left: float, top: float, right: float) -> list[str]:
    """Legend items left to right from ``left``, wrapping before ``right``."""
    out, x, y = [], left, top
    for swatch, label in items:
        width = 18 + text_width(label) + 14
        if x > left and x + width > right:
            x, y = left, y + 15
        out.append(f'<g class="legend-item" transform="translate({x:.1f},{y:.1f})">{swatch}'
                   f'{_text(18, 0, label, cls="legend")}</g>')
        x += width
    return out


def svg_document(parts: Sequence[str], *, width: int, height: int, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" {FONT} font-size="{FONT_PX}">'
            f'<title>{escape(label)}</title>{"".join(parts)}</svg>')


def nice_ticks(low: float, high: float, most: int) -> list[float]:
    """Round values in ``[low, high]``: a step of 1, 2, 2.5 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(most - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    count = int(math.floor((high - first) / step + 1e-9)) + 1
    return [round(first + k * step, 12) for k in range(count)]


def time_ticks(start: datetime, end: datetime, most: int) -> tuple[list[datetime], int]:
    """Ticks at a round step (aligned in UTC) over ``[start, end]``, at most ``most`` of them."""
    span = max((end - start).total_seconds(), 1.0)
    step = next((s for s in TIME_STEPS_S if span / s <= most), TIME_STEPS_S[-1])
    first = math.ceil(start.timestamp() / step) * step
    ticks = []
    at = first
    while at <= end.timestamp():
        ticks.append(datetime.fromtimestamp(at, tz=timezone.utc))
        at += step
    return ticks, step


def padded(values: Sequence[float], *, share: float = 0.08) -> tuple[float, float]:
    """The range of the finite ``values`` with a margin; a flat or empty one is widened."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high == low:
        margin = abs(high) * 0.1 or 1.0
        return low - margin, high + margin
    margin = (high - low) * share
    return low - margin, high + margin


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"' + (f' class="{cls}"' if cls else "")
            + f' fill="#1b1f24">{escape(text)}</text>')


def _line_swatch(colour: str, dash: str) -> str:
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="0" x2="14" y1="-4" y2="-4" stroke="{colour}" stroke-width="2"{dashes}/>'


__all__ = ["Bars", "Box", "Panel", "legend_row", "nice_ticks", "padded", "svg_document", "time_ticks"]
