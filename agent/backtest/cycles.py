"""The replay loop shared by ``aiops backtest`` (host files) and ``aiops replay``: the daemon's
own stages driven on a clock that moves with the data.

The detect stage runs on ``cycle`` of data at a time (a streaming detector judges each point by
the points before it whatever the cycle, so this changes what a replay costs, not its scores);
the refit job runs at every ``agent.interval`` of data, as the daemon schedules it, fitting only
on what came before the points not judged yet; the correlate stage runs every interval, on the
hits of that interval and the samples it covered, so incidents open, take hits, count quiet
cycles and resolve exactly as they would have. What runs after correlation (remediation in
shadow, notification routing) is the caller's ``after`` hook, called at each interval the
correlate stage ran.

``replay_chunks`` yields one ``Chunk`` per cycle of data, so a caller can report progress,
stop between chunks (a Ctrl-C keeps every finished chunk) and note what each read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from agent.clock import ManualClock
from agent.context import Context
from agent.flow.detection import Detection
from agent.flow.samples import Samples
from agent.incidents import correlate
from agent.log import kv
from agent.pipeline import Pipeline

log = logging.getLogger(__name__)

AfterTick = Callable[[Detection], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One cycle of data replayed: ``(start, end]`` of data time and what it read and found."""

    start: datetime
    end: datetime
    rows: int  # timestamps with at least one value
    series: int
    blind: bool  # every query or target of the source failed: nothing was read
    detect_failed: bool
    detection: Detection  # the hits and the series judged


def ticks_of(start: pd.Timestamp, end: pd.Timestamp, interval: pd.Timedelta) -> pd.DatetimeIndex:
    """The daemon's cycle times in ``(start, end]``, ending on ``end`` itself."""
    ticks = pd.date_range(start + interval, end, freq=interval)
    if len(ticks) == 0 or ticks[-1] < end:
        ticks = ticks.append(pd.DatetimeIndex([end]))
    return ticks


def replay_chunks(pipeline: Pipeline, clock: ManualClock, start: pd.Timestamp, end: pd.Timestamp, *,
                  cycle_s: float, after: AfterTick | None = None, whole: bool = False) -> Iterator[Chunk]:
    """Replay ``(start, end]`` through ``pipeline``'s stages (see the module's text).

    ``whole``: judge every row of each chunk, as the daemon would have judged them one cycle
    at a time (a series first seen in a chunk is judged from the chunk's start, not from its
    last interval as a restarted agent judges it), and fit before the first chunk on the
    history before it, as a daemon already running at ``start`` would have been."""
    ctx = pipeline.ctx
    interval = pd.Timedelta(seconds=ctx.config.agent.interval)
    step = max(pd.Timedelta(seconds=cycle_s), interval)
    now = start
    while now < end:
        upto = min(now + step, end)
        ticks = ticks_of(now, upto, interval)
        for tick in ticks:  # the daemon's refit job runs every interval
            pipeline.refit(now=tick.to_pydatetime())
        clock.set(upto.to_pydatetime())
        samples = pipeline.collector.collect(upto.to_pydatetime())
        blind = pipeline.collector.blind
        failed = False
        if whole:
            _judge_from(pipeline, samples, now)
        try:
            seen = pipeline.engine.detect(samples, now=upto.to_pydatetime())
        except Exception:  # counted like the daemon counts a failed stage; the replay goes on
            log.exception(kv("replay.detect_failed", start=now.to_pydatetime(), end=upto.to_pydatetime()))
            failed = True
            seen = Detection(at=upto.to_pydatetime(), samples=samples)
        correlate_each_interval(ctx, seen, ticks, interval, clock=clock, after=after)
        values = samples.values
        yield Chunk(start=now.to_pydatetime(), end=upto.to_pydatetime(), rows=int(values.notna().any(axis=1).sum()),
                    series=len(samples), blind=blind, detect_failed=failed, detection=seen)
        now = upto


def _judge_from(pipeline: Pipeline, samples: Samples, start: pd.Timestamp) -> None:
    engine = pipeline.engine
    first = engine.latest is None
    for sid in samples.series:
        engine.scored_until.setdefault(sid, start)
    if first:
        pipeline.engine.refit(now=start.to_pydatetime(), samples=samples)


def correlate_each_interval(ctx: Context, seen: Detection, ticks: pd.DatetimeIndex, interval: pd.Timedelta, *,
                            clock: ManualClock | None = None, after: AfterTick | None = None) -> None:
    """The correlate stage at every interval the detect stage's cycle covered, with that
    interval's hits and samples, then ``after``; intervals without a hit while nothing is open
    change nothing and are skipped."""
    values = seen.samples.values
    hit_times = pd.DatetimeIndex([pd.Timestamp(h.ts) for h in seen.hits]) if seen.hits else None
    open_now = ctx.store.count_open_incidents()
    for tick in ticks:
        lo = tick - interval
        hits = [h for h, t in zip(seen.hits, hit_times)
                if lo < t <= tick] if hit_times is not None else []
        if not hits and not open_now:
            continue
        rows = values[(values.index > lo) & (values.index <= tick)]
        part = Samples(values=rows, series=seen.samples.series, gaps=seen.samples.gaps, buckets={})
        at = tick.to_pydatetime()
        if clock is not None:
            clock.set(at)
        interval_seen = Detection(at=at, samples=part, hits=hits, judged=seen.judged)
        correlate(ctx, interval_seen)
        if after is not None:
            after(interval_seen)
        open_now = ctx.store.count_open_incidents()
    if clock is not None:
        clock.set(ticks[-1].to_pydatetime())


__all__ = ["AfterTick", "Chunk", "correlate_each_interval", "replay_chunks", "ticks_of"]
