"""Per-series gauges for dashboards, as vmanomaly exposes them: for each series scored in the
last cycle, its anomaly score, the expected value and the band, with the series' own labels.

- ``aiops_anomaly_score``: the newest new point's score over where its detector's hits start
  (1 or more: anomalous; alert on ``aiops_anomaly_score >= 1``);
- ``aiops_expected_value``, ``aiops_expected_lower``, ``aiops_expected_upper``: the detector's
  expectation and normal band at that point, where the detector has them;
- ``aiops_observed_value``: the value the detector judged there, as the agent read it (the
  series of a named PromQL query has no metric of its own in Prometheus: this is its actual line).

Each sample carries the series' labels plus ``metric`` (the series' metric name) and ``detector``
(the rule's name); a series label that would clash with those is renamed ``exported_<name>``, a
label name Prometheus cannot take has its other characters replaced by ``_``. Label values are
untrusted: they are cut at ``MAX_VALUE_CHARS``, marked, and stored as valid UTF-8, so no value
can break the exposition. Two series that end up with the same label set are one sample (the
more anomalous one), because Prometheus drops a whole scrape that repeats a sample.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

MAX_VALUE_CHARS = 1024
RESERVED = ("metric", "detector")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
GAUGES = (
    ("aiops_anomaly_score", "Newest score of a series over where its detector's hits start (1 or more: anomalous).",
     "score"),
    ("aiops_expected_value", "What the series' detector expected at its newest scored point.", "expected"),
    ("aiops_expected_lower", "Lower edge of the series' normal band at its newest scored point.", "lower"),
    ("aiops_expected_upper", "Upper edge of the series' normal band at its newest scored point.", "upper"),
    ("aiops_observed_value", "The series' value at its newest scored point, as the agent read it.", "observed"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesScore:
    """One series' newest scored point as a detector judged it; NaN where it has no figure."""

    series_id: str
    detector: str
    metric: str
    labels: Mapping[str, str]
    score: float
    expected: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    observed: float = math.nan


class ScoreGauges:
    """A prometheus-client collector over the last published cycle (thread-safe: the HTTP
    server reads while the detect stage publishes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[tuple[dict[str, str], SeriesScore]] = []

    def publish(self, scores: Iterable[SeriesScore], *, max_series: int) -> int:
        """Expose the ``max_series`` most anomalous of ``scores`` (finite scores only) instead of
        the last cycle's; returns how many scored series were left out."""
        ranked = sorted((s for s in scores if math.isfinite(s.score)), key=lambda s: (-s.score, s.series_id, s.detector))
        kept: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], SeriesScore]] = {}
        for score in ranked:
            if len(kept) >= max_series:
                break
            labels = exposed_labels(score)
            kept.setdefault(tuple(sorted(labels.items())), (labels, score))
        dropped = len(ranked) - len(kept)
        with self._lock:
            self._samples = list(kept.values())
        return dropped

    def describe(self) -> list[Metric]:
        return [Metric(name, doc, "gauge") for name, doc, _ in GAUGES]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            samples = self._samples
        for name, doc, field in GAUGES:
            family = Metric(name, doc, "gauge")
            for labels, score in samples:
                value = getattr(score, field)
                if math.isfinite(value):
                    family.add_sample(name, labels, value)
            yield family


def exposed_labels(score: SeriesScore) -> dict[str, str]:
    """The series' labels made safe for the exposition, plus ``metric`` and ``detector``."""
    out = safe_labels(score.labels, RESERVED)
    out["metric"] = label_value(score.metric)
    out["detector"] = label_value(score.detector)
    return out


def safe_labels(labels: Mapping[str, str], reserved: tuple[str, ...]) -> dict[str, str]:
    """``labels`` with usable names and values; a name in ``reserved`` becomes ``exported_<name>``."""
    out: dict[str, str] = {}
    for name, value in sorted(labels.items()):
        name = label_name(name)
        if name in reserved:
            name = f"exported_{name}"
        if name and name not in out:
            out[name] = label_value(value)
    return out


def label_name(name: str) -> str:
    """``name`` as a Prometheus label name ("" when nothing usable is left: it is dropped)."""
    if _LABEL_NAME.fullmatch(name) and not name.startswith("__"):
        return name
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", name).lstrip("_")
    if not cleaned:
        return ""
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def label_value(value: object) -> str:
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}…[truncated: {len(text)} characters]"
    return text
