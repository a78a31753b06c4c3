"""Samples and series: what every source returns and every stage after it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

MAX_LABEL_CHARS = 1024  # a label value from a target or a query is kept up to this length


def bounded_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """``labels`` with every value longer than ``MAX_LABEL_CHARS`` cut there and marked
    ``…[+N chars]``, and how many were cut. A value that long is a bug or an attack upstream; the
    pages, messages and ids that carry it stay small."""
    out, cut = {}, 0
    for name, value in labels.items():
        value = str(value)
        if len(value) > MAX_LABEL_CHARS:
            value = f"{value[:MAX_LABEL_CHARS]}…[+{len(value) - MAX_LABEL_CHARS} chars]"
            cut += 1
        out[name] = value
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
        return self.values.shape[1]
