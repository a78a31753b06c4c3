"""From exposition-format text to derived values: gauges as they are, counters as per-second rates,
histograms as quantiles and bucket increases.

Counters and buckets only mean something as a difference between two scrapes, so each raw
reading is kept (``CounterReading``) and the next scrape turns it into a rate. A counter that went
down was reset (a restart): its new value is the increase since the reset, as Prometheus' rate()
assumes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from agent.flow.samples import (
    MAX_NAME_CHARS,
    SeriesInfo,
    bounded_label_names,
    bounded_labels,
    bounded_name,
    series_id,
)
from agent.store.samples import CounterReading

_SKIP_SUFFIXES = ("_created",)
# A name past MAX_NAME_CHARS needs a run of that many name characters somewhere in the text: one
# search of the text spares checking every name of every sample when there is none.
_LONG_NAME = re.compile(r"[A-Za-z0-9_:]{%d,}" % (MAX_NAME_CHARS + 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramReading:
    """One histogram's cumulative bucket counts at one scrape."""

    metric: str  # base name, without _bucket
    labels: Mapping[str, str]
    buckets: tuple[tuple[float, str, float], ...]  # (le, le as written, cumulative count), sorted by le

    @property
    def hid(self) -> str:
        return series_id(self.metric, self.labels)

    def bucket_key(self, le_text: str) -> str:
        return series_id(f"{self.metric}_bucket", {**self.labels, "le": le_text})


@dataclass(slots=True, kw_only=True)
class Exposition:
    """What one scrape held, split by how it turns into samples."""

    gauges: list[tuple[SeriesInfo, float]] = field(default_factory=list)
    counters: list[tuple[SeriesInfo, float]] = field(default_factory=list)
    histograms: list[HistogramReading] = field(default_factory=list)
    non_finite: int = 0
    duplicates: int = 0  # samples of a series already seen in this text (dropped)
    cut_labels: int = 0  # label values longer than MAX_LABEL_CHARS, cut and marked
    cut_names: int = 0  # metric and label names longer than MAX_NAME_CHARS, cut and marked


def target_labels(scraped: Mapping[str, str], target: Mapping[str, str], *, honor: bool = False) -> dict[str, str]:
    """A sample's labels with the scrape's ``target`` labels, as Prometheus merges them: with
    ``honor`` the scraped value wins; without, the target's does and the scraped one is kept as
    ``exported_<name>`` (``exported_exported_<name>`` when that is taken too)."""
    labels = dict(scraped)
    for name, value in target.items():
        if name not in labels:
            labels[name] = value
        elif not honor:
            moved = f"exported_{name}"
            while moved in labels:
                moved = f"exported_{moved}"
            labels[moved] = labels[name]
            labels[name] = value
    return labels


def parse_exposition(text: str, *, extra_labels: Mapping[str, str], keep: Callable[[str], bool] = lambda name: True,
                     honor_labels: bool = False, openmetrics: bool = False) -> Exposition:
    """Parse exposition text, Prometheus' text format or with ``openmetrics`` OpenMetrics 1.0
    (raises ValueError on text that is not metrics). OpenMetrics' info, stateset, unknown and
    gaugehistogram families are read as gauges; ``_created`` samples are left out.

    A series that appears more than once keeps its first sample, as Prometheus appends the first
    and rejects the others of one scrape; the rest are counted in ``duplicates``."""
    out = Exposition()
    seen: set[str] = set()
    long_names = _LONG_NAME.search(text) is not None
    families = openmetrics_families(text) if openmetrics else text_string_to_metric_families(text)
    for family in families:
        if not keep(family.name):
            continue
        kind = family.type
        if kind in ("histogram",):
            _histograms(family.name, family.samples, extra_labels, honor_labels, seen, out, long_names)
            continue
        for sample in family.samples:
            if sample.name.endswith(_SKIP_SUFFIXES):
                continue
            first = _first_of_series(sample, extra_labels, honor_labels, seen, out, long_names)
            if first is None:
                continue
            metric, labels, sid = first
            value = float(sample.value)
            is_counter = kind == "counter" or (kind == "summary" and sample.name.endswith("_count"))
            if kind == "summary" and sample.name.endswith("_sum"):
                continue
            if not math.isfinite(value):
                out.non_finite += 1
                continue
            info = SeriesInfo(series_id=sid, metric=metric, labels=labels, kind="rate" if is_counter else "gauge")
            (out.counters if is_counter else out.gauges).append((info, value))
    return out


def _first_of_series(sample: Any, extra: Mapping[str, str], honor: bool, seen: set[str],
                     out: Exposition, long_names: bool = True) -> tuple[str, dict[str, str], str] | None:
    """The sample's metric name, labels and series id, names and values cut to their caps; None
    (counted) when the text already had that series. ``long_names``: the text may hold a name past
    its cap (else names are not checked)."""
    labels, cut = bounded_labels(target_labels(sample.labels, extra, honor=honor))
    out.cut_labels += cut
    metric = sample.name
    if long_names:
        labels, cut_names = bounded_label_names(labels)
        metric, cut_metric = bounded_name(sample.name)
        out.cut_names += cut_names + cut_metric
    sid = series_id(metric, labels)
    if sid in seen:
        out.duplicates += 1
        return None
    seen.add(sid)
    return metric, labels, sid


def _histograms(name: str, samples: Iterable, extra: Mapping[str, str], honor: bool, seen: set[str],
                out: Exposition, long_names: bool) -> None:
    groups: dict[tuple[tuple[str, str], ...], list[tuple[float, str, float]]] = {}
    for sample in samples:
        first = _first_of_series(sample, extra, honor, seen, out, long_names)
        if first is None:
            continue
        metric, labels, sid = first
        value = float(sample.value)
        if sample.name == f"{name}_count":
            if math.isfinite(value):
                info = SeriesInfo(series_id=sid, metric=metric, labels=labels, kind="rate")
                out.counters.append((info, value))
            else:
                out.non_finite += 1
        elif sample.name == f"{name}_bucket" and "le" in labels:
            le_text = labels.pop("le")
            if not math.isfinite(value):
                out.non_finite += 1
                continue
            groups.setdefault(tuple(sorted(labels.items())), []).append((float(le_text), le_text, value))
    metric, _ = bounded_name(name)  # its samples' names were counted as they were cut
    for key, buckets in groups.items():
        out.histograms.append(HistogramReading(metric=metric, labels=dict(key), buckets=tuple(sorted(buckets))))


def quantile_from_buckets(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """The q-quantile of observations in cumulative buckets, interpolated linearly inside the bucket
    that holds it, as PromQL's histogram_quantile does. NaN when there were no observations."""
    if not bounds or not math.isinf(bounds[-1]):
        return math.nan
    total = cumulative[-1]
    if total <= 0 or math.isnan(total):
        return math.nan
    rank = q * total
    for i, (upper, count) in enumerate(zip(bounds, cumulative)):
        if count >= rank:
            break
    if math.isinf(upper):
        # In the open-ended bucket: the best we can say is the highest finite bound.
        return bounds[-2] if len(bounds) > 1 else math.nan
    lower, below = (0.0, 0.0) if i == 0 else (bounds[i - 1], cumulative[i - 1])
    if i == 0 and upper <= 0:
        return upper
    inside = count - below
    if inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


@dataclass(slots=True, kw_only=True)
class Derived:
    """Samples for one timestamp from one scrape, plus the readings to keep for the next."""

    series: list[SeriesInfo] = field(default_factory=list)
    values: list[tuple[str, float]] = field(default_factory=list)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # hid -> le -> cumulative increase
    readings: list[CounterReading] = field(default_factory=list)
    resets: int = 0


def derive(exposition: Exposition, ts: float, previous: Mapping[str, CounterReading],
           quantiles: Sequence[float]) -> Derived:
    """Gauges, rates and quantiles at ``ts``; a counter first seen now has no rate yet (NaN is not
    written: it starts at the next scrape)."""
    out = Derived()
    for info, value in exposition.gauges:
        out.series.append(info)
        out.values.append((info.series_id, value))
    for info, value in exposition.counters:
        out.readings.append(CounterReading(key=info.series_id, ts=ts, value=value))
        before = previous.get(info.series_id)
        out.series.append(info)
        if before is None or ts <= before.ts:
            continue
        if value < before.value:
            out.resets += 1
        out.values.append((info.series_id, _increase(before.value, value) / (ts - before.ts)))
    for hist in exposition.histograms:
        _derive_histogram(hist, ts, previous, quantiles, out)
    return out


def _increase(before: float, now: float) -> float:
    return now - before if now >= before else now


def _derive_histogram(hist: HistogramReading, ts: float, previous: Mapping[str, CounterReading],
                      quantiles: Sequence[float], out: Derived) -> None:
    bounds = [b[0] for b in hist.buckets]
    keys = [hist.bucket_key(b[1]) for b in hist.buckets]
    now = [b[2] for b in hist.buckets]
    out.readings += [CounterReading(key=k, ts=ts, value=v) for k, v in zip(keys, now)]
    for q in quantiles:
        labels = {**hist.labels, "quantile": _q_text(q)}
        out.series.append(SeriesInfo(series_id=series_id(hist.metric, labels), metric=hist.metric, labels=labels,
                                     kind="quantile"))
    before = [previous.get(k) for k in keys]
    if any(b is None or ts <= b.ts for b in before):
        return
    reset = any(n < b.value for n, b in zip(now, before))  # all buckets reset together
    increases = now if reset else [n - b.value for n, b in zip(now, before)]
    out.resets += reset
    for q in quantiles:
        value = quantile_from_buckets(q, bounds, increases)
        if not math.isnan(value):
            out.values.append((series_id(hist.metric, {**hist.labels, "quantile": _q_text(q)}), value))
    out.buckets[hist.hid] = dict(zip(bounds, increases))
    for key, le_text, increase in zip(keys, (b[1] for b in hist.buckets), increases):
        out.series.append(SeriesInfo(series_id=key, metric=f"{hist.metric}_bucket",
                                     labels={**hist.labels, "le": le_text}, kind="bucket"))
        out.values.append((key, increase))


def _q_text(q: float) -> str:
    return re.sub(r"\.?0+$", "", f"{q:.6f}")
