"""The unit of a signal, read from its metric's name and type, and its values written with it.

Prometheus names carry their base unit as a suffix (``_seconds``, ``_bytes``, ``_ratio``, see
prometheus.io/docs/practices/naming); a counter (``_total``, or a series the source turned into a
rate) is shown per second. A signal from a named PromQL query takes the unit of the expression:
``histogram_quantile`` over ``…_seconds_bucket`` is in seconds, ``rate(a_total) / rate(b_total)``
a ratio, ``deriv(…_bytes)`` bytes per second. Anything else is a plain number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_BARE = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$")
_COUNTER_PARTS = ("_total", "_count", "_sum", "_bucket", "_created")
_PER_SECOND = re.compile(r"\b(rate|irate|deriv)\s*\(")
_SYMBOLS = {"seconds": "s", "bytes": "B", "celsius": "°C", "meters": "m", "volts": "V", "amperes": "A",
            "joules": "J", "grams": "g", "hertz": "Hz", "watts": "W", "percent": "%"}
_SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
_IEC = ((2.0 ** 40, "Ti"), (2.0 ** 30, "Gi"), (2.0 ** 20, "Mi"), (2.0 ** 10, "Ki"), (1.0, ""))


@dataclass(frozen=True, slots=True)
class Unit:
    """``symbol`` of the base unit ("" for a plain number); ``ratio``: a share in [0, 1] shown as %."""

    symbol: str = ""
    per_second: bool = False
    ratio: bool = False

    @property
    def name(self) -> str:
        """What an axis is labelled with: ``s``, ``B/s``, ``%``, ``/s``, or ""."""
        if self.ratio:
            return "%"
        return self.symbol + ("/s" if self.per_second else "")

    def format(self, value: float | None) -> str:
        """``808 ms``, ``286 MiB``, ``12.5 %``, ``3.2/s``, ``0.8079``; ``-`` for no value."""
        if value is None or not math.isfinite(value):
            return "-"
        if self.ratio:
            return f"{_digits(value * 100)} %"
        suffix = "/s" if self.per_second else ""
        if not self.symbol or self.symbol in ("%", "°C"):
            return f"{_digits(value)}{' ' + self.symbol if self.symbol else ''}{suffix}"
        if value == 0:
            return f"0 {self.symbol}{suffix}"
        table = _IEC if self.symbol == "B" else _SI[3:] if self.symbol == "s" else _SI  # no megaseconds
        scale, prefix = _prefix(abs(value), table)
        return f"{_digits(value / scale)} {prefix}{self.symbol}{suffix}"


PLAIN = Unit()


def _digits(value: float) -> str:
    """Three significant digits, no exponent for everyday magnitudes."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _prefix(magnitude: float, table: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    for scale, prefix in table:
        if magnitude >= scale:
            return scale, prefix
    return table[-1]


def unit_of(metric: str, *, kind: str | None = None, expr: str | None = None) -> Unit:
    """The unit of a series of ``metric`` (its type ``kind`` as the source gave it), or of the
    PromQL ``expr`` that produced it."""
    if expr:
        return _unit_of_expr(expr)
    counter = kind == "rate" or metric.endswith("_total")
    return _named(metric, per_second=counter and kind not in ("gauge", "quantile"), quantile=kind == "quantile")


def _unit_of_expr(expr: str) -> Unit:
    names = _SELECTOR.findall(expr) or _BARE.findall(expr)
    if not names:
        return PLAIN
    left, right = _top_level_division(expr)
    if right is not None:
        above, below = _SELECTOR.findall(left), _SELECTOR.findall(right)
        if above and below and _named(above[0], per_second=False) == _named(below[0], per_second=False):
            return Unit(ratio=True)  # errors over requests, used bytes over total bytes
    quantile = "histogram_quantile" in expr
    per_second = not quantile and _PER_SECOND.search(expr) is not None
    return _named(names[0], per_second=per_second, quantile=quantile)


def _top_level_division(expr: str) -> tuple[str, str | None]:
    """``expr`` split at its first ``/`` outside any bracket (the right side None when it has none)."""
    depth = 0
    for i, char in enumerate(expr):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "/" and depth == 0:
            return expr[:i], expr[i + 1:]
    return expr, None


def _named(metric: str, *, per_second: bool, quantile: bool = False) -> Unit:
    if not quantile and metric.endswith(("_count", "_bucket")):
        return Unit(per_second=per_second)  # counts of observations, not their unit
    base = metric
    for part in _COUNTER_PARTS:
        base = base.removesuffix(part)
    last = base.rsplit("_", 1)[-1]
    if last == "ratio":
        return Unit(ratio=True)
    return Unit(symbol=_SYMBOLS.get(last, ""), per_second=per_second)
