"""The replay loop shared by ``aiops backtest`` (host files) and ``aiops replay``: the daemon's
own stages driven on a clock that moves with the data.

The detect stage runs on ``cycle`` of data at a time (a streaming detector judges each point by
the points before it whatever the cycle); the refit job runs at every ``agent.interval`` of
data, as the daemon schedules it, fitting only on what came before the points not judged yet
(how much of the chunk that is depends on ``Judging``: with ``CYCLES`` exactly what the daemon's
fit would have learnt from); the correlate stage runs every interval, on the hits of that
interval and the samples before it, so incidents open, take hits, count quiet cycles and
resolve as they would have. What runs after correlation (remediation in
shadow, notification routing) is the caller's ``after`` hook, called at each interval the
correlate stage ran.

``replay_chunks`` yields one ``Chunk`` per cycle of data, so a caller can report progress,
stop between chunks (a Ctrl-C keeps every finished chunk) and note what each read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import pandas as pd

from agent.clock import ManualClock
from agent.context import Context
from agent.detection.fitting import Why
from agent.flow.detection import Detection
from agent.flow.samples import Samples
from agent.incidents import correlate
from agent.log import kv
from agent.pipeline import Pipeline
from detectors.base import Hit

log = logging.getLogger(__name__)

AfterTick = Callable[[Detection], None]
ReadChunk = Callable[[Samples, pd.Timestamp, pd.Timestamp], None]


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
    levels: tuple[float | None, ...] = ()  # the alarm chance each hit was judged at (None: no chance)


def ticks_of(start: pd.Timestamp, end: pd.Timestamp, interval: pd.Timedelta) -> pd.DatetimeIndex:
    """The daemon's cycle times in ``(start, end]``, ending on ``end`` itself."""
    ticks = pd.date_range(start + interval, end, freq=interval)
    if len(ticks) == 0 or ticks[-1] < end:
        ticks = ticks.append(pd.DatetimeIndex([end]))
    return ticks


class Judging(StrEnum):
    """How a chunk's rows are judged (see ``replay_chunks``)."""

    CHUNKS = "chunks"  # one detect call a chunk, refits before it (host backtests)
    DAYS = "days"      # as CHUNKS, every row judged, the first chunk by detectors fitted before it
    CYCLES = "cycles"  # as DAYS, and the rows before each due fit judged first: as the daemon's cycles


def replay_chunks(pipeline: Pipeline, clock: ManualClock, start: pd.Timestamp, end: pd.Timestamp, *,
                  cycle_s: float, after: AfterTick | None = None,
                  judging: Judging = Judging.CHUNKS, read: ReadChunk | None = None) -> Iterator[Chunk]:
    """Replay ``(start, end]`` through ``pipeline``'s stages (see the module's text); ``read``
    is handed each chunk's samples and range as the collect stage read them.

    ``Judging.DAYS``: every row of each chunk is judged (a series first seen in a chunk from the
    chunk's start, not from its last interval as a restarted agent judges it), with the last
    ``sources.window`` of the chunk before as context, as the daemon's frames reach back; the
    first chunk is judged by detectors fitted on the history before it, as those of a daemon
    already running at ``start``. Refits due inside a chunk learn from the rows judged before it.
    ``Judging.CYCLES``: where the refit job would fit something at a cycle, the rows before that
    cycle are judged first, so each fit learns from what the daemon's would have learnt from;
    a chunk then costs one detect call per due fit, not one."""
    ctx = pipeline.ctx
    interval = pd.Timedelta(seconds=ctx.config.agent.interval)
    step = max(pd.Timedelta(seconds=cycle_s), interval)
    window = pd.Timedelta(seconds=ctx.config.sources.window)
    now = start
    tail: Samples | None = None  # the last window of the chunk before: the daemon's frames reach back into it
    while now < end:
        upto = min(now + step, end)
        ticks = ticks_of(now, upto, interval)
        if judging is Judging.CHUNKS:
            for tick in ticks:  # the daemon's refit job runs every interval
                pipeline.refit(now=tick.to_pydatetime())
        clock.set(upto.to_pydatetime())
        samples = pipeline.collector.collect(upto.to_pydatetime())
        blind = pipeline.collector.blind
        if read is not None:
            read(samples, now, upto)
        if judging is Judging.CHUNKS:
            seen, failed = _detect(pipeline, samples, upto)
            levels = _levels(pipeline, seen)
            correlate_each_interval(ctx, seen, ticks, interval, after=after)
        else:
            joined = joined_frames(tail, samples) if tail is not None else samples
            tail = rows_between(samples, upto - window, upto)
            seen, levels, failed = _judge_rows(pipeline, clock, joined, now, ticks, interval, after,
                                               fits_first=judging is Judging.CYCLES)
        values = samples.values
        yield Chunk(start=now.to_pydatetime(), end=upto.to_pydatetime(), rows=int(values.notna().any(axis=1).sum()),
                    series=len(samples), blind=blind, detect_failed=failed, detection=seen, levels=levels)
        now = upto


def _detect(pipeline: Pipeline, samples: Samples, upto: pd.Timestamp) -> tuple[Detection, bool]:
    try:
        return pipeline.engine.detect(samples, now=upto.to_pydatetime()), False
    except Exception:  # counted like the daemon counts a failed stage; the replay goes on
        log.exception(kv("replay.detect_failed", end=upto.to_pydatetime()))
        return Detection(at=upto.to_pydatetime(), samples=samples), True


def _levels(pipeline: Pipeline, seen: Detection) -> tuple[float | None, ...]:
    """The alarm chance each hit of the last detect call was judged at (None: no chance)."""
    levels = pipeline.engine.levels
    return tuple(levels.get(f"{h.detector}|{h.entity}" if h.entity else h.series_id) for h in seen.hits)


def _judge_rows(pipeline: Pipeline, clock: ManualClock, samples: Samples, start: pd.Timestamp,
                ticks: pd.DatetimeIndex, interval: pd.Timedelta, after: AfterTick | None, *,
                fits_first: bool) -> tuple[Detection, tuple[float | None, ...], bool]:
    """The chunk's rows judged (see ``replay_chunks``); with ``fits_first`` in parts that end
    where a fit is due."""
    engine = pipeline.engine
    first = engine.latest is None
    for sid in samples.series:
        engine.scored_until.setdefault(sid, start)  # rows before start are the chunk before's
    if first and not engine.units:  # not a replay resumed with its detectors restored
        engine.refit(now=start.to_pydatetime(), samples=samples)
    window = pd.Timedelta(seconds=pipeline.ctx.config.sources.window)
    hits: list[Hit] = []
    levels: list[float | None] = []
    judged: set[str] = set()
    failed = False
    done = start

    def judge_until(upto: pd.Timestamp) -> None:
        nonlocal done, failed
        part = rows_between(samples, done - window, upto)
        seen, broke = _detect(pipeline, part, upto)
        failed |= broke
        hits.extend(seen.hits)
        levels.extend(_levels(pipeline, seen))
        judged.update(seen.judged)
        correlate_each_interval(pipeline.ctx, replace(seen, samples=part), ticks[(ticks > done) & (ticks <= upto)],
                                interval, clock=clock, after=after, window=window)
        done = upto

    if first:  # the daemon's first cycle (its refit job had no frame yet): then it knows the series
        judge_until(ticks[0])
    for tick in ticks[1:] if first else ticks:
        why = engine.refit_due(now=tick.to_pydatetime())
        if not why:
            continue
        if fits_first and why - {Why.CHECKPOINT} and done < tick - interval:  # a fit learns from all before
            judge_until(tick - interval)
        clock.set(tick.to_pydatetime())
        pipeline.refit(now=tick.to_pydatetime())
    if done < ticks[-1]:
        judge_until(ticks[-1])
    return Detection(at=ticks[-1].to_pydatetime(), samples=samples, hits=hits, judged=frozenset(judged)), \
        tuple(levels), failed


def rows_between(samples: Samples, lo: pd.Timestamp, hi: pd.Timestamp) -> Samples:
    """``samples`` restricted to the rows in ``(lo, hi]``."""
    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame.index > lo) & (frame.index <= hi)]

    return Samples(values=cut(samples.values), series=samples.series, gaps=samples.gaps,
                   buckets={h: cut(f) for h, f in samples.buckets.items()})


def joined_frames(before: Samples, after: Samples) -> Samples:
    """The rows of ``before`` then those of ``after`` (its series, gaps and newer rows win)."""
    def join(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
        if old is None or old.empty:
            return new
        old = old[old.index < new.index.min()] if len(new.index) else old
        return pd.concat([old, new]).astype("float64")

    buckets = {h: join(before.buckets.get(h), f) for h, f in after.buckets.items()}
    return Samples(values=join(before.values, after.values), series={**before.series, **after.series},
                   gaps=after.gaps, buckets=buckets)


def correlate_each_interval(ctx: Context, seen: Detection, ticks: pd.DatetimeIndex, interval: pd.Timedelta, *,
                            clock: ManualClock | None = None, after: AfterTick | None = None,
                            window: pd.Timedelta | None = None) -> None:
    """The correlate stage at every interval the detect stage's cycle covered, with that
    interval's hits and the samples of the ``window`` before it (None: of the interval alone;
    the daemon's frame is ``sources.window`` long), then ``after``; intervals without a hit
    while nothing is open change nothing and are skipped."""
    window = window if window is not None else interval
    values = seen.samples.values
    hit_times = pd.DatetimeIndex([pd.Timestamp(h.ts) for h in seen.hits]) if seen.hits else None
    open_now = ctx.store.count_open_incidents()
    for tick in ticks:
        lo = tick - interval
        hits = [h for h, t in zip(seen.hits, hit_times)
                if lo < t <= tick] if hit_times is not None else []
        if not hits and not open_now:
            continue
        rows = values[(values.index > tick - window) & (values.index <= tick)]
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


__all__ = ["AfterTick", "Chunk", "Judging", "ReadChunk", "correlate_each_interval", "joined_frames", "replay_chunks", "rows_between", "ticks_of"]
