"""The page budget that meets a number of pages a day, found by re-thresholding the replay.

The calibrated detectors raise a hit where a point's chance is at most its test's alarm chance,
and the alarm chance is in proportion to the page budget; their state never depends on the
budget. So the hits of a stricter budget are exactly those of the replayed one whose chance is
at most the alarm chance scaled down (``KeptHit.kept_at``): the detect stage runs once, and each
candidate budget replays only correlation, over the same days of samples read once more from
the source (one day in memory, every candidate fed from it). Hits of detectors that give no
chance (thresholds, SLOs, drift) stay whatever the budget. A looser budget than the running one
would raise hits the replay never saw: it is not searched (run the replay with it configured).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from agent.backtest.cycles import correlate_each_interval, joined_frames, rows_between, ticks_of
from agent.clock import ManualClock
from agent.config import AgentConfig
from agent.context import Context
from agent.flow.detection import Detection
from agent.flow.incidents import Incident
from agent.pipeline import Pipeline
from agent.replay.hits import read_day_hits
from agent.replay.run import Replayed, replay_config
from agent.sources import Source

FACTORS = tuple(0.5 ** k for k in range(1, 11))  # 1/2 down to 1/1024 of the running budgets


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    factor: float
    page_budget: float
    fleet_page_budget: float
    pages: int
    pages_per_day: float
    dropped: tuple[int, ...]  # ids (in the replay) of incidents this budget would not have opened


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetAnswer:
    target_per_day: float
    running: Candidate  # the running config, as replayed
    chosen: Candidate | None  # the loosest budget that meets the target; None: none does
    closest: Candidate  # the one nearest the target (the chosen one when one meets it)
    tried: tuple[Candidate, ...]

    @property
    def met(self) -> bool:
        return self.chosen is not None

    def config_lines(self) -> str:
        pick = self.chosen or self.closest
        return (f"detectors:\n  page_budget: {pick.page_budget:.6g}\n"
                f"  fleet_page_budget: {pick.fleet_page_budget:.6g}\n")


def find_budget(replayed: Replayed, config: AgentConfig, target_per_day: float, *, pages: int, days: float,
                incidents: Sequence[Incident], source: Source | None = None,
                factors: Sequence[float] = FACTORS) -> BudgetAnswer:
    """The loosest of ``factors`` times the running budgets whose replay pages at most
    ``target_per_day`` (``pages`` over ``days``: what the running config paged)."""
    detectors = config.detectors
    running = Candidate(factor=1.0, page_budget=detectors.page_budget, fleet_page_budget=detectors.fleet_page_budget,
                        pages=pages, pages_per_day=pages / days if days else 0.0, dropped=())
    tried = [running]
    if running.pages_per_day > target_per_day:
        found = _recorrelate(replayed, config, factors, source)
        for factor, opened in zip(factors, found):
            count = sum(len(i.episodes) for i in opened)
            tried.append(Candidate(factor=factor, page_budget=detectors.page_budget * factor,
                                   fleet_page_budget=detectors.fleet_page_budget * factor, pages=count,
                                   pages_per_day=count / days if days else 0.0,
                                   dropped=_dropped(incidents, opened, replayed.end)))
    meeting = [c for c in tried if c.pages_per_day <= target_per_day]
    chosen = max(meeting, key=lambda c: c.factor) if meeting else None
    closest = chosen or min(tried, key=lambda c: (c.pages_per_day, -c.factor))
    return BudgetAnswer(target_per_day=target_per_day, running=running, chosen=chosen, closest=closest,
                        tried=tuple(tried))


def _recorrelate(replayed: Replayed, config: AgentConfig, factors: Sequence[float],
                 source: Source | None) -> list[list[Incident]]:
    """Each factor's incidents: the kept hits still hits at it, correlated afresh, day by day."""
    root = replayed.work_dir / "budgets"
    shutil.rmtree(root, ignore_errors=True)
    start = pd.Timestamp(replayed.start)
    clock = ManualClock(start.to_pydatetime())
    reader_cfg = replay_config(config, root / "reader")
    reader = Context.create(reader_cfg, clock=clock)
    read = Pipeline(reader, report=False, source=source)
    contexts = [Context.create(replay_config(config, root / f"x{n}", budget_factor=f), clock=clock)
                for n, f in enumerate(factors)]
    interval = pd.Timedelta(seconds=config.agent.interval)
    window = pd.Timedelta(seconds=config.sources.window)
    tail = None
    try:
        reader.store.set_collected_until(f"{reader_cfg.sources.kind}:{reader_cfg.agent.shard}", start.timestamp())
        for number, day in enumerate(replayed.days):
            kept, judged = read_day_hits(replayed.work_dir, number)
            clock.set(day.end)
            read_now = read.collector.collect(day.end)
            samples = joined_frames(tail, read_now) if tail is not None else read_now
            tail = rows_between(read_now, pd.Timestamp(day.end) - window, pd.Timestamp(day.end))
            ticks = ticks_of(pd.Timestamp(day.start), pd.Timestamp(day.end), interval)
            for ctx, factor in zip(contexts, factors):
                hits = [k.hit for k in kept if k.kept_at(factor)]
                seen = Detection(at=day.end, samples=samples, hits=hits, judged=judged)
                correlate_each_interval(ctx, seen, ticks, interval, clock=clock, window=window)
        return [ctx.store.list_incidents() for ctx in contexts]
    finally:
        read.close()
        reader.store.close()
        for ctx in contexts:
            ctx.store.close()


def _dropped(base: Sequence[Incident], stricter: Sequence[Incident], end: datetime) -> tuple[int, ...]:
    """The incidents of ``base`` that no incident of ``stricter`` covers: none shares a signal
    with it while both are open."""
    def span(i: Incident) -> tuple[datetime, datetime]:
        return i.started_at, i.resolved_at or end

    def signals(i: Incident) -> set[tuple[str, str]]:
        return {(s.series_id, s.detector) for s in i.signals}

    out = []
    for incident in base:
        lo, hi = span(incident)
        mine = signals(incident)
        covered = any(signals(other) & mine and span(other)[0] <= hi and lo <= span(other)[1] for other in stricter)
        if not covered:
            out.append(incident.id)
    return tuple(sorted(out))


__all__ = ["BudgetAnswer", "Candidate", "FACTORS", "find_budget"]
