"""Stage 1: collect samples from the configured source.

A ``Collector`` lives as long as the Context that built it and owns the built source (its HTTP
session, the state of its targets), rebuilt when a config reload changes the source.
``collect(at)`` returns the window the detectors judge this cycle: the last ``sources.window``
before ``at``, reaching back to the previous cycle when that was longer ago (capped at
``sources.catchup_max``), restricted to this agent's shard. ``history(start, end)`` returns older
samples for refits, from the same source. After each collect, ``failed`` holds the targets (or
queries) that failed in it and ``blind`` says whether every one did: the cycle read nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import pandas as pd

from agent.flow.samples import Samples, shard_of
from agent.flow.status import TargetStatus
from agent.log import kv
from agent.sources.base import FailureKind, FetchError, Source

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.context import Context
    from agent.metrics import Metrics
    from agent.sources.files import FileSource
    from agent.sources.health import TargetHealth
    from agent.sources.prometheus import PrometheusSource
    from agent.sources.scrape import ScrapeSource
    from agent.store import Store

    AnySource: TypeAlias = "ScrapeSource | PrometheusSource | FileSource"

__all__ = ["Collector", "FailureKind", "FetchError", "Source", "build_source", "scrape_targets", "shard_filter"]

log = logging.getLogger(__name__)


def build_source(config: "AgentConfig", *, store: "Store", metrics: "Metrics", health: "TargetHealth") -> "AnySource":
    """The source ``config.sources.kind`` names, ready to fetch."""
    from agent.sources.files import FileSource
    from agent.sources.prometheus import PrometheusSource
    from agent.sources.scrape import ScrapeSource

    sources = config.sources
    if sources.kind == "prometheus":
        return PrometheusSource(sources.prometheus, metrics=metrics, health=health, series_limit=sources.series_limit)
    if sources.kind == "file":
        return FileSource(sources.file)
    return ScrapeSource(sources.scrape, scrape_targets(config), store=store, metrics=metrics, health=health,
                        series_limit=sources.series_limit)


def scrape_targets(config: "AgentConfig") -> list:
    """The configured targets, led by the agent's own /metrics when ``self_metrics`` is on."""
    from agent.config.sources import TargetConfig

    targets = list(config.sources.scrape.targets)
    if config.sources.scrape.self_metrics and config.http.enabled:
        host = config.http.listen
        host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else "[::1]" if host == "::" else host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        # Optional: ``aiops once`` serves no HTTP, and its own metrics being absent is not news.
        targets.insert(0, TargetConfig(name="aiops", url=f"http://{host}:{config.http.port}/metrics", optional=True))
    return targets


def shard_filter(config: "AgentConfig") -> Callable[[str], bool]:
    """``keep(series_id)``: whether this agent's shard (``agent.shard`` = i/n) owns the series."""
    index, count = config.agent.shard_index
    if count == 1:
        return lambda sid: True
    return lambda sid: shard_of(sid, count) == index


class Collector:
    """The collect stage of one Context: its source, built on first use and rebuilt when a
    config reload changes ``sources`` (or ``http``, which places the agent's own /metrics).
    A ``fixed`` source (a replay's reader of past samples) is used as given, never rebuilt."""

    def __init__(self, ctx: "Context", *, fixed: "Source | None" = None) -> None:
        self.ctx = ctx
        self._fixed = fixed
        # The cycle collects while the refit job reads history: one fetch at a time on the source.
        self._lock = threading.RLock()
        self._config: "AgentConfig | None" = None
        self._source: "AnySource | None" = None
        self._health: "TargetHealth | None" = None
        self._last_end: pd.Timestamp | None = None
        self.failed: tuple[TargetStatus, ...] = ()  # in the last collect
        self.blind = False  # every target (or query) failed in the last collect

    @property
    def source(self) -> "AnySource":
        from agent.sources.health import TargetHealth

        config = self.ctx.config
        if self._fixed is not None:
            return self._fixed  # type: ignore[return-value]
        with self._lock:
            if self._source is not None and self._config is not None and (
                    self._config.sources == config.sources and self._config.http == config.http):
                return self._source
            if self._source is not None:
                self._source.close()
                log.info(kv("sources.rebuilt", kind=config.sources.kind))
            self._health = self._health or TargetHealth(self.ctx.metrics, clock=self.ctx.clock)
            self._source = build_source(config, store=self.ctx.store, metrics=self.ctx.metrics, health=self._health)
            self._config = config
            return self._source

    def close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.close()
            self._source = self._config = None

    def targets(self) -> list[TargetStatus]:
        """Each target (or query) of the source, as its last attempts left it."""
        with self._lock:
            source = self.source
            return [] if self._health is None else self._health.targets(source.name)

    def collect(self, at: datetime) -> Samples:
        """The samples the cycle at ``at`` judges: this shard's series over the detection window."""
        from agent.sources.frame import restrict
        from agent.sources.prometheus import PrometheusSource
        from agent.sources.scrape import ScrapeSource

        with self._lock:
            source, ctx = self.source, self.ctx
            cfg = ctx.config.sources
            now = pd.Timestamp(at).tz_convert("UTC")
            start = now - pd.Timedelta(seconds=cfg.window)
            cursor = f"{cfg.kind}:{ctx.config.agent.shard}"
            if self._last_end is None:  # a new process (a restart, or `aiops once`): where the last one stopped
                stored = ctx.store.collected_until(cursor)
                self._last_end = None if stored is None else pd.Timestamp(stored, unit="s", tz="UTC")
            if self._last_end is not None and self._last_end < start:
                start = max(self._last_end, now - pd.Timedelta(seconds=cfg.catchup_max))
            keep = shard_filter(ctx.config)
            self.failed, self.blind = (), False
            if isinstance(source, ScrapeSource):
                outcome = source.scrape(at, keep)
                samples = source.gaps_for(outcome, restrict(source.fetch(start, now), keep), keep)
                self._judge([t.name for t in source.targets], outcome.failed)
            else:
                samples = restrict(source.fetch(start, now), keep)
                if isinstance(source, PrometheusSource):
                    self._judge([q.name for q in source.config.queries], source.failed)
            self._last_end = now
            ctx.store.set_collected_until(cursor, now.timestamp())
            ctx.metrics.series_collected.set(len(samples))
            log.debug(kv("sources.collected", kind=cfg.kind, series=len(samples), points=samples.values.shape[0],
                         gaps=len(samples.gaps), start=start.to_pydatetime(), end=now.to_pydatetime()))
            return samples

    def _judge(self, tried: Sequence[str], failed: Sequence[str] | frozenset[str]) -> None:
        health, name = self._health, self.source.name
        assert health is not None
        self.failed = tuple(t for t in health.targets(name) if t.target in failed)
        self.blind = bool(tried) and set(tried) <= set(failed)

    def history(self, start: pd.Timestamp | datetime, end: pd.Timestamp | datetime, *,
                series_ids: Sequence[str] | None = None, step_s: float | None = None) -> Samples:
        """This shard's samples over ``[start, end]`` for refits: Prometheus query_range (at
        ``step_s`` instead of each query's step when given), or the scrape history in the store,
        or the CSV files. With ``step_s`` the store and file histories are averaged into
        ``step_s`` buckets (bucket counts are summed). A source that gives nothing raises
        FetchError (a refit should wait, not learn a gap); Prometheus queries that fail while
        others answer leave their series out (those wait for a later refit) and are logged."""
        from agent.sources.frame import restrict
        from agent.sources.prometheus import PrometheusSource

        with self._lock:
            source = self.source
            start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
            keep = shard_filter(self.ctx.config)
            if isinstance(source, PrometheusSource):
                queries = source.config.queries
                if step_s is not None:
                    queries = [q.model_copy(update={"step": step_s}) for q in queries]
                samples = source.fetch(start, end, queries)
                if source.failed and len(source.failed) == len(queries):
                    raise FetchError(source.name, ",".join(source.failed), FailureKind.API_ERROR,
                                     "history unavailable: every query failed")
                if source.failed:  # one bad query is a gap in its own series, not a blind spot for all
                    log.warning(kv("sources.history_partial", failed=",".join(source.failed), queries=len(queries)))
            else:
                samples = source.fetch(start, end, series_ids)
                if step_s is not None:
                    samples = _resample(samples, step_s)
            if series_ids is not None:
                wanted = set(series_ids)
                samples = restrict(samples, lambda sid: sid in wanted or sid in samples.buckets)
            return restrict(samples, keep)


def _resample(samples: Samples, step_s: float) -> Samples:
    rule = pd.Timedelta(seconds=step_s)
    # Buckets no series fell into are not rows: history keeps each series at its own step.
    values = samples.values.resample(rule).mean().dropna(how="all") if len(samples.values.index) else samples.values
    buckets = {h: f.resample(rule).sum(min_count=1) for h, f in samples.buckets.items()}
    return Samples(values=values, series=samples.series, gaps=samples.gaps, buckets=buckets)
