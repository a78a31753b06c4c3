"""Samples and series: what every source returns and every stage after it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

MAX_LABEL_CHARS = 1024  # a label value from a target or a query is kept up to this length
MAX_NAME_CHARS = 256  # a scraped metric or label name is kept up to this length


def _cut(text: str, limit: int) -> str:
    return f"{text[:limit]}…[+{len(text) - limit} chars]"


def bounded_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """``labels`` with every value longer than ``MAX_LABEL_CHARS`` cut there and marked
    ``…[+N chars]``, and how many were cut. A value that long is a bug or an attack upstream; the
    pages, messages and ids that carry it stay small."""
    out, cut = {}, 0
    for name, value in labels.items():
        value = str(value)
        if len(value) > MAX_LABEL_CHARS:
            value = _cut(value, MAX_LABEL_CHARS)
            cut += 1
        out[name] = value
    return out, cut


def bounded_name(name: str) -> tuple[str, bool]:
    """A metric or label name cut at ``MAX_NAME_CHARS`` and marked as values are, and whether it
    was: names that long are no one's naming, and each one would be stored in every series id."""
    return (name, False) if len(name) <= MAX_NAME_CHARS else (_cut(name, MAX_NAME_CHARS), True)


def bounded_label_names(labels: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """``labels`` with every name past ``MAX_NAME_CHARS`` cut (a later label whose cut name is
    taken is dropped), and how many names were cut."""
    if all(len(name) <= MAX_NAME_CHARS for name in labels):
        return dict(labels), 0
    out: dict[str, str] = {}
    cut = 0
    for name, value in labels.items():
        short, was_cut = bounded_name(name)
        cut += was_cut
        out.setdefault(short, value)
    return out, cut


def series_id(metric: str, labels: Mapping[str, str]) -> str:
    """Stable identity of a series: metric name plus its labels, sorted by name."""
    if not labels:
        return metric
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{metric}{{{body}}}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def shard_of(sid: str, shards: int) -> int:
    """Which of ``shards`` agents owns ``sid``: a stable hash, the same in every process."""
    digest = hashlib.blake2b(sid.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesInfo:
    series_id: str
    metric: str
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: str = "gauge"  # gauge, rate (from a counter), quantile (from a histogram), bucket


@dataclass(frozen=True, slots=True, kw_only=True)
class Samples:
    """Series × time: ``values`` has a UTC DatetimeIndex named ``ts`` and one float64 column per
    series_id, NaN for gaps. ``gaps`` names the series whose source failed this cycle: a gap is
    never read as "quiet". ``buckets`` keeps histogram bucket counts per series for drift tests
    (a frame per histogram: rows = ts, columns = upper bound ``le``)."""

    values: pd.DataFrame
    series: Mapping[str, SeriesInfo]
    gaps: frozenset[str] = frozenset()
    buckets: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "Samples":
        index = pd.DatetimeIndex([], tz="UTC", name="ts")
        return cls(values=pd.DataFrame(index=index, dtype="float64"), series={})

    def __len__(self) -> int:
        return int(self.values.shape[1])
