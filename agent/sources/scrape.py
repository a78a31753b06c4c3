"""The embedded default source: scrape exposition-format endpoints directly, keep history in the store.

Each cycle reads every target once, at the cycle's time. Labels ``job`` (the target's name) and
``instance`` (host:port) are added as Prometheus would, so a series keeps one identity whether it
was scraped here or read from a Prometheus scraping the same exporter; a scraped label of the
same name is kept as ``exported_<name>`` unless the target sets ``honor_labels``. A series sent
twice in one scrape keeps its first sample; the others are dropped and counted.

Whatever goes wrong with one target (no answer, a redirect loop, a body trickled past
``scrape.deadline`` or larger than ``scrape.max_body``, text that is not metrics) makes that
target's series a gap this cycle, counted by kind in ``aiops_source_errors_total``; the other
targets are read as usual.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pandas as pd

from agent.clock import to_epoch
from agent.config.sources import ScrapeSourceConfig, TargetConfig
from agent.flow.samples import Samples, SeriesInfo
from agent.log import kv, printable
from agent.metrics import Metrics
from agent.sources import http
from agent.sources.base import FailureKind, FetchError
from agent.sources.exposition import Derived, derive, parse_exposition
from agent.sources.frame import from_wide, to_index, with_gaps
from agent.sources.health import TargetHealth

if TYPE_CHECKING:
    from agent.store import Store

log = logging.getLogger(__name__)

SOURCE = "scrape"
# OpenMetrics first, as Prometheus asks: an exporter that speaks it (prometheus-client) answers in it,
# the others (node_exporter 1.5) in the text format.
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OPENMETRICS = "application/openmetrics-text"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrapeOutcome:
    """One round of scrapes: what was written, and which targets failed."""

    ts: float
    written: int
    failed: frozenset[str]
    pruned: int


class ScrapeSource:
    name = SOURCE

    def __init__(self, config: ScrapeSourceConfig, targets: Sequence[TargetConfig], *, store: "Store",
                 metrics: Metrics, health: TargetHealth, series_limit: int) -> None:
        self.config = config
        self.targets = list(targets)
        self.store = store
        self.metrics = metrics
        self.health = health
        self.series_limit = series_limit
        self.session = http.bounded_session()
        self._patterns = [re.compile(p) for p in config.metrics]
        health.describe(SOURCE, {t.name: t.url for t in self.targets},
                        optional=frozenset(t.name for t in self.targets if t.optional))
        # What each target's last good scrape stored: with honor_labels its series may carry a
        # job label of the exporter's, so the store's job label alone cannot find them.
        self._stored: dict[str, list[SeriesInfo]] = {}

    def close(self) -> None:
        self.session.close()

    # -- one round ---------------------------------------------------------------------------

    def scrape(self, now: datetime, keep: Callable[[str], bool] = lambda sid: True) -> ScrapeOutcome:
        """Scrape every target at ``now``; store the derived samples of the series ``keep`` accepts."""
        # Floored to the millisecond the frame keeps, so a fetch ending at ``now`` includes it.
        ts = math.floor(to_epoch(now) * 1000) / 1000
        failed: set[str] = set()
        written = 0
        for target in self.targets:
            try:
                derived = self._scrape_one(target, ts)
            except FetchError as exc:
                self.health.down(exc, expected=target.optional)
                failed.add(target.name)
                continue
            except Exception as exc:  # one target's data must never cost the other targets theirs
                log.exception(kv("scrape.failed", target=target.name, error=type(exc).__name__))
                self.health.down(FetchError(SOURCE, target.name, FailureKind.INTERNAL, type(exc).__name__),
                                 expected=target.optional)
                failed.add(target.name)
                continue
            stored = self._store(target, derived, ts, keep)
            self.health.up(SOURCE, target.name, series=len(self._stored[target.name]))
            written += stored
        pruned = self.store.prune_scrape_history(ts - self.config.retention, max_rows=self.config.prune_batch)
        return ScrapeOutcome(ts=ts, written=written, failed=frozenset(failed), pruned=pruned)

    def _scrape_one(self, target: TargetConfig, ts: float) -> Derived:
        cfg = self.config
        body = http.fetch_bounded(self.session, SOURCE, target.name, target.url, timeout_s=cfg.timeout,
                                  deadline_s=cfg.deadline, max_bytes=cfg.max_body,
                                  headers={"Accept": ACCEPT, **target.auth_headers()})
        if body.status_code != 200:
            raise FetchError(SOURCE, target.name, FailureKind.HTTP_STATUS, f"HTTP {body.status_code}")
        try:
            text = body.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FetchError(SOURCE, target.name, FailureKind.PARSE,
                             f"not UTF-8 text (byte 0x{body.content[exc.start]:02x} at offset {exc.start})") from None
        if http.looks_like_html(body, text[:200]):
            raise FetchError(SOURCE, target.name, FailureKind.HTML, "an HTML page instead of metrics")
        parts = urlsplit(target.url)
        extra = {"job": target.name, "instance": parts.netloc}
        try:
            exposition = parse_exposition(text, extra_labels=extra, keep=self._keep_metric,
                                          honor_labels=target.honor_labels,
                                          openmetrics=body.content_type.lower().startswith(OPENMETRICS))
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # The text is the target's: control characters in it are escaped, never logged raw.
            raise FetchError(SOURCE, target.name, FailureKind.PARSE,
                             f"not exposition format ({printable(str(exc)[:80])})") from None
        if exposition.non_finite:
            self.metrics.samples_dropped.labels(reason="non_finite").inc(exposition.non_finite)
        if exposition.duplicates:
            self.metrics.samples_dropped.labels(reason="duplicate").inc(exposition.duplicates)
        if exposition.cut_labels:
            self.metrics.label_values_cut.inc(exposition.cut_labels)
        if exposition.cut_names:
            self.metrics.names_cut.inc(exposition.cut_names)
        self.health.note(SOURCE, target.name, "samples repeat a series already in this scrape; kept the first of each"
                         if exposition.duplicates else None, "source.duplicates", dropped=exposition.duplicates)
        keys = [info.series_id for info, _ in exposition.counters]
        keys += [h.bucket_key(b[1]) for h in exposition.histograms for b in h.buckets]
        previous = self.store.counter_readings(keys)
        derived = derive(exposition, ts, previous, self.config.quantiles)
        if derived.resets:
            log.info(kv("scrape.counter_reset", target=target.name, counters=derived.resets))
        return derived

    def _keep_metric(self, name: str) -> bool:
        return not self._patterns or any(p.fullmatch(name) for p in self._patterns)

    def _store(self, target: TargetConfig, derived: Derived, ts: float, keep: Callable[[str], bool]) -> int:
        series = {s.series_id: s for s in derived.series if keep(s.series_id)}
        dropped = sorted(series)[self.series_limit:]
        for sid in dropped:
            del series[sid]
        if dropped:
            self.metrics.samples_dropped.labels(reason="series_limit").inc(len(dropped))
        self.health.note(SOURCE, target.name, f"kept {self.series_limit} series, dropped {len(dropped)} past the limit"
                         if dropped else None, "source.truncated")
        self._stored[target.name] = list(series.values())
        rows = [(sid, ts, value) for sid, value in derived.values if sid in series]
        self.store.save_counter_readings(derived.readings)
        return self.store.record_samples(series.values(), rows, now=ts)

    # -- reading history back ------------------------------------------------------------------

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, series_ids: Sequence[str] | None = None) -> Samples:
        """Stored samples in ``[start, end]`` (what earlier scrapes wrote)."""
        started = time.perf_counter()
        wide = self.store.sample_frame(to_epoch(start.to_pydatetime()), to_epoch(end.to_pydatetime()), series_ids)
        infos = {s.series_id: s for s in self.store.known_series(series_ids=series_ids)}
        samples = from_wide(wide, infos)
        log.debug(kv("scrape.history", points=int(wide.count().sum()), duration_s=round(time.perf_counter() - started, 3)))
        return samples

    def gaps_for(self, outcome: ScrapeOutcome, samples: Samples, keep: Callable[[str], bool]) -> Samples:
        """Mark every known series of the failed targets as a gap at the time of the scrape."""
        failed = outcome.failed
        missing: list[SeriesInfo] = []
        for name in sorted(failed):
            found = {s.series_id: s for s in self.store.known_series(labels={"job": name})}
            found.update((s.series_id, s) for s in self._stored.get(name, ()))
            missing += [s for sid, s in sorted(found.items()) if keep(sid)]
        return with_gaps(samples, missing, at=to_index([outcome.ts])[0])
