"""Replaying a range of history through the daemon's own cycle, into a throwaway store.

The replay builds a fresh agent in a work folder of its own (``replay_config``): the daemon's
config with its state there, nothing served, remediation in shadow (rules matched, approvals,
gates and limits asked, nothing run) and notification routing without delivery (each routed
event is written to the throwaway outbox, pending or silenced, and never sent). Samples come from
the daemon's source: the configured Prometheus (range queries or remote read, a day at a time),
or the embedded scrape history of the live store read-only (``StoredHistory``). The live store
is never opened for writing.

Data is replayed a day at a time (``agent.backtest.cycles``): memory holds one day of samples.
After each day the work folder records how far it got (``progress.json``) and the day's hits
with the alarm chance each was judged at (``hits/``): a replay stopped by Ctrl-C resumes from
its last finished day when run again with the same config and range, and a stricter page budget
is found by re-thresholding those hits (see ``agent.replay.budget``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from agent.backtest.cycles import Chunk, Judging, ReadChunk, replay_chunks
from agent.clock import ManualClock
from agent.config import AgentConfig
from agent.config.store import StoreConfig
from agent.context import Context
from agent.errors import AiopsError
from agent.flow.detection import Detection
from agent.flow.incidents import Silence
from agent.flow.runs import RunMode
from agent.flow.samples import Samples
from agent.incidents.catalog import catalog_of
from agent.log import kv
from agent.notify.channels import build_channels
from agent.notify.delivery import enqueue
from agent.pipeline import Pipeline
from agent.replay.daycopy import DayCopy, grid_fits
from agent.replay.hits import KeptHit, read_day_hits, write_day_hits
from agent.sources import Source, shard_filter
from agent.sources.frame import restrict
from agent.sources.prometheus import PrometheusSource
from agent.store import STORE_FILE
from agent.store.detectors import FittedState
from agent.store.samples import SampleReader

log = logging.getLogger(__name__)

DAY_S = 86_400.0
PROGRESS = "progress.json"
CHECKPOINT = "checkpoint.db"
HISTORY = "history"
ENGINE = "detectors.json"
LEFT_OUT = ("alerts Alertmanager pushes to the agent (POST /api/v1/alerts) are not kept as history: "
            "left out of the replay")


class ReplayError(AiopsError):
    """A replay that cannot run or read nothing: says what and where."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class DayRead:
    """One day (or the last part of one) replayed."""

    start: datetime
    end: datetime
    rows: int  # timestamps with a value
    series: int
    blind: bool  # the source failed for the whole day: nothing read
    detect_failed: bool
    hits: int

    @property
    def empty(self) -> bool:
        return self.blind or not self.rows


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    """What a finished replay leaves: its days and the throwaway state to report from."""

    start: datetime
    end: datetime
    source: str
    days: tuple[DayRead, ...]
    work_dir: Path
    config: AgentConfig  # the replay's own (state in the work folder, shadow, nothing sent)
    resumed_from: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def state_dir(self) -> Path:
        return self.work_dir / "state"

    def hits(self) -> list[KeptHit]:
        return [kept for n in range(len(self.days)) for kept in read_day_hits(self.work_dir, n)[0]]


def replay_config(config: AgentConfig, state_dir: Path, *, budget_factor: float = 1.0) -> AgentConfig:
    """``config`` with its state in ``state_dir`` (a SQLite store there), nothing served,
    remediation in shadow, detection at ``budget_factor`` times its page budgets."""
    detectors = config.detectors.model_copy(update={
        "page_budget": config.detectors.page_budget * budget_factor,
        "fleet_page_budget": config.detectors.fleet_page_budget * budget_factor})
    sources = config.sources.model_copy(update={"catchup_max": max(config.sources.catchup_max, DAY_S)})
    return config.model_copy(update={
        "agent": config.agent.model_copy(update={"state_dir": state_dir}),
        "store": StoreConfig(),
        "http": config.http.model_copy(update={"enabled": False}),
        "sources": sources,
        "detectors": detectors,
        "remediation": config.remediation.model_copy(update={"shadow": True}),
    })


def fingerprint(config: AgentConfig, start: pd.Timestamp, end: pd.Timestamp, source: str, budget_factor: float) -> str:
    """What a work folder was made for: a resumed replay must be the same replay."""
    text = json.dumps([config.model_dump(mode="json"), str(start), str(end), source, budget_factor],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_replay(config: AgentConfig, start: pd.Timestamp, end: pd.Timestamp, work_dir: Path, *,
               source: Source | None = None, source_name: str = "prometheus", budget_factor: float = 1.0,
               silences: Sequence[Silence] = (), judging: Judging = Judging.DAYS,
               on_day: Callable[[DayRead], None] | None = None, refit_copy: bool = True) -> Replayed:
    """Replay ``(start, end]`` (see the module's text); ``source``: the embedded history (None:
    the configured source, as the daemon builds it); ``silences``: the live store's, in force in
    the replay as they were then; ``refit_copy``: refits over Prometheus read their history from
    what the replay has read (``DayCopy``) rather than through the queries again (the same
    values). Resumes a work folder made for the same replay; starts afresh in any other."""
    mark = fingerprint(config, start, end, f"{source_name}/{judging}", budget_factor)
    progress = _read_progress(work_dir, mark)
    if progress is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg = replay_config(config, work_dir / "state", budget_factor=budget_factor)
    days = [DayRead(**_day_fields(d)) for d in (progress or {}).get("days", [])]
    begin = pd.Timestamp(progress["done_until"]) if progress else start
    if progress is not None:
        _restore(work_dir)  # the store as the last finished day left it, not as a Ctrl-C did
    clock = ManualClock(begin.to_pydatetime())
    ctx = Context.create(cfg, clock=clock)
    pipeline = Pipeline(ctx, report=False, source=source)
    try:
        if progress is None:
            ctx.store.set_collected_until(f"{cfg.sources.kind}:{cfg.agent.shard}", begin.timestamp())
            _copy_silences(ctx, silences)
        else:
            pipeline.engine.scored_until.update({k: pd.Timestamp(v) for k, v in progress["scored_until"].items()})
            _restore_engine(pipeline, work_dir)
            log.info(kv("replay.resumed", since=begin.to_pydatetime(), days_done=len(days)))
        after = _after_correlate(ctx, pipeline)
        read = _copy_for_refits(pipeline, work_dir / HISTORY, start) if refit_copy else None
        for chunk in replay_chunks(pipeline, clock, begin, end, cycle_s=DAY_S, after=after, judging=judging,
                                   read=read):
            day = _keep_day(work_dir, len(days), chunk, pipeline)
            days.append(day)
            _checkpoint(ctx, work_dir)
            _snapshot_engine(pipeline, work_dir)
            _write_progress(work_dir, mark, chunk.end, pipeline, days)
            if on_day is not None:
                on_day(day)
    finally:
        pipeline.close()
        ctx.store.close()
    return Replayed(start=start.to_pydatetime(), end=end.to_pydatetime(), source=source_name, days=tuple(days),
                    work_dir=work_dir, config=cfg, resumed_from=begin.to_pydatetime() if progress else None,
                    notes=(LEFT_OUT,))


def _copy_silences(ctx: Context, silences: Sequence[Silence]) -> None:
    """Each silence as it was in force: from its start to its end, or to when it was expired."""
    for silence in sorted(silences, key=lambda s: s.id):
        ends = min(silence.ends_at, silence.expired_at) if silence.expired_at else silence.ends_at
        ctx.store.add_silence(silence.matchers, starts_at=silence.starts_at, ends_at=ends, reason=silence.reason,
                              actor=silence.created_by, now=silence.created_at)


def live_silences(state_dir: Path) -> list[Silence]:
    """The silences of the live SQLite store in ``state_dir``, read-only (none without one)."""
    path = state_dir / STORE_FILE
    if not path.is_file():
        return []
    reader = SampleReader(path)
    try:
        return reader.list_silences()
    finally:
        reader.close()


def _copy_for_refits(pipeline: Pipeline, folder: Path, start: pd.Timestamp) -> ReadChunk | None:
    """Serve the engine's refit history from a ``DayCopy`` of what the replay reads over
    Prometheus: the history before ``start`` read now (a day at a time, once: a resumed replay
    finds it kept), each day the collect stage reads kept as it goes. None (refits read through
    the source) for another source, or a refit step that is not a whole multiple of every
    query's step."""
    source = pipeline.collector.source
    refit = pipeline.ctx.config.detectors.refit
    if not isinstance(source, PrometheusSource) or refit.step is None:
        return None
    if not grid_fits(refit.step, [q.step or source.config.step for q in source.config.queries]):
        log.info(kv("replay.refits_through_source", reason="refit.step is not a multiple of every query's step"))
        return None
    copy = DayCopy.open(folder, pipeline.engine.history)
    keep = shard_filter(pipeline.ctx.config)

    def read(samples: Samples, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        if not source.failed:  # a query that failed: its points are read from the source when asked
            copy.keep(samples, lo, hi)

    hi = start
    lo = start - pd.Timedelta(seconds=refit.history + refit.step)  # the first refit's grid may start a step early
    while hi > lo:
        piece = max(lo, hi - pd.Timedelta(seconds=DAY_S))
        if not copy.holds(piece, hi):
            read(restrict(source.fetch(piece, hi), keep), piece, hi)
        hi = piece
    pipeline.engine.history = copy
    return read


def _after_correlate(ctx: Context, pipeline: Pipeline) -> Callable[[Detection], None]:
    """Remediation in shadow and notification routing after each correlation: decisions are
    recorded in the throwaway store, nothing is run or sent."""
    config = ctx.config
    channels = build_channels(config.notify.channels) if config.notify.enabled else {}
    catalog = catalog_of(config)

    def after(seen: Detection) -> None:
        runs = pipeline.remediation.remediate(seen)
        would_run = [r for r in runs if r.mode is RunMode.SHADOW and r.rule_mode == "auto"
                     and "would have run" in (r.reason or "")]
        for run in would_run:  # counted by later limits and cooldowns, as the real run would be
            ctx.store.count_shadow_run_as_applied(run.id)
        enqueue(ctx.store, config.notify, channels, now=seen.at, base_url=config.http.base_url, catalog=catalog,
                lookback_s=config.incidents.changes_lookback)

    return after


def _keep_day(work_dir: Path, number: int, chunk: Chunk, pipeline: Pipeline) -> DayRead:
    kept = [KeptHit(hit=h, level=level) for h, level in zip(chunk.detection.hits, chunk.levels)]
    write_day_hits(work_dir, number, kept, chunk.detection.judged)
    return DayRead(start=chunk.start, end=chunk.end, rows=chunk.rows, series=chunk.series, blind=chunk.blind,
                   detect_failed=chunk.detect_failed, hits=len(kept))


def _checkpoint(ctx: Context, work_dir: Path) -> None:
    """A copy of the throwaway store as this day left it (SQLite's online backup)."""
    partial = work_dir / f".{CHECKPOINT}.partial"
    partial.unlink(missing_ok=True)
    target = sqlite3.connect(partial)
    try:
        ctx.store.conn.backup(target)
    finally:
        target.close()
    partial.replace(work_dir / CHECKPOINT)


def _snapshot_engine(pipeline: Pipeline, work_dir: Path) -> None:
    """The detectors as this day left them, and the refit schedule's waits."""
    engine = pipeline.engine
    units = [{"detector": st.detector, "subject": st.subject, "fitted_at": st.fitted_at.isoformat(),
              "params": dict(st.params), "state": base64.b64encode(st.state).decode()} for st in engine.snapshot()]
    waits = [[name, sid, at.isoformat()] for (name, sid), at in engine.schedule.not_before.items()]
    partial = work_dir / f".{ENGINE}.partial"
    partial.write_text(json.dumps({"units": units, "not_before": waits}))
    partial.replace(work_dir / ENGINE)


def _restore_engine(pipeline: Pipeline, work_dir: Path) -> None:
    saved = json.loads((work_dir / ENGINE).read_text())
    states = [FittedState(detector=u["detector"], subject=u["subject"], params=u["params"],
                          state=base64.b64decode(u["state"]), fitted_at=pd.Timestamp(u["fitted_at"]).to_pydatetime())
              for u in saved["units"]]
    pipeline.engine.restore(states, {(n, sid): pd.Timestamp(at).to_pydatetime() for n, sid, at in saved["not_before"]})


def _restore(work_dir: Path) -> None:
    state = work_dir / "state"
    for leftover in state.glob(f"{STORE_FILE}*"):  # the file and its -wal and -shm
        leftover.unlink()
    shutil.copyfile(work_dir / CHECKPOINT, state / STORE_FILE)


def _day_fields(raw: dict) -> dict:
    return {**raw, "start": pd.Timestamp(raw["start"]).to_pydatetime(), "end": pd.Timestamp(raw["end"]).to_pydatetime()}


def _read_progress(work_dir: Path, mark: str) -> dict | None:
    try:
        progress = json.loads((work_dir / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) and progress.get("fingerprint") == mark else None


def _write_progress(work_dir: Path, mark: str, done_until: datetime, pipeline: Pipeline, days: Sequence[DayRead]) -> None:
    """Written whole or not at all, after the day's state is in the throwaway store."""
    progress = {"fingerprint": mark, "done_until": done_until.isoformat(),
                "scored_until": {k: v.isoformat() for k, v in pipeline.engine.scored_until.items()},
                "days": [asdict(d) for d in days]}
    partial = work_dir / f".{PROGRESS}.partial"
    partial.write_text(json.dumps(progress, default=str))
    partial.replace(work_dir / PROGRESS)


def coverage(replayed: Replayed) -> list[str]:
    """What the replay could not read, in words: days before the source's oldest data (a range
    longer than it keeps), and gaps (the source down, or nothing kept) with the rest replayed.
    ``ReplayError`` when no day had data."""
    days = replayed.days
    with_data = [n for n, d in enumerate(days) if not d.empty]
    if not with_data:
        down = sum(d.blind for d in days)
        why = f"the source failed on all {down} days" if down == len(days) else "the source holds nothing there"
        raise ReplayError(f"no data from {replayed.start:%Y-%m-%d %H:%M} to {replayed.end:%Y-%m-%d %H:%M} UTC "
                          f"in {replayed.source}: {why}; nothing was replayed")
    notes = []
    first, last = with_data[0], with_data[-1]
    if first and not any(d.blind for d in days[:first]):
        notes.append(f"{replayed.source} holds no data before {days[first].start:%Y-%m-%d %H:%M} UTC: the range "
                     f"is longer than the source keeps; the first {first} day(s) were not replayed")
    for n, day in enumerate(days):
        if day.empty and (n > first or day.blind):
            why = "the source failed (down or refusing)" if day.blind else "the source holds nothing"
            notes.append(f"gap: {day.start:%Y-%m-%d %H:%M} to {day.end:%Y-%m-%d %H:%M} UTC: {why}; "
                         "the rest was replayed")
    if last < len(days) - 1 and not days[-1].blind:
        notes.append(f"{replayed.source} holds no data after {days[last].end:%Y-%m-%d %H:%M} UTC")
    return notes


__all__ = ["DAY_S", "DayRead", "LEFT_OUT", "ReplayError", "Replayed", "coverage", "live_silences", "replay_config", "run_replay"]
