"""Replays of CSV files through the daemon's own cycle, on a clock that moves with the data.

Each file gets a fresh agent: a store in a temporary folder, the given config (or the built-in
defaults an installed agent uses) with the file as its source, and a ``ManualClock``. The clock
advances one ``cycle`` at a time from the first row to the last, and every cycle runs the
pipeline as the daemon does (collect, detect with its refit schedule, stored state and
incident-aware baselines, correlate, remediate, notify): nothing sleeps, and a point is judged
only by the points before it. The detect stage's own score of each new point (in [0, 1]) and
its hits are written back to the file's rows.

NAB feeds rows in file order, repeated and backward timestamps included; a source keeps one
value per timestamp. Such rows are moved to one second after the row before them for the
replay (``strictly_increasing``), so every row is seen and scored; results keep the file's own
timestamps.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.backtest.corpus import CorpusError, InputFile, find_inputs, read_series, read_windows, windows_for
from agent.backtest.scorer import ProfileScore, RowLabels, WindowError, label_rows, lofo_runs, score_runs
from agent.clock import ManualClock
from agent.config import AgentConfig
from agent.flow.samples import series_id

DEFAULT_CYCLE_S = 3600.0
METRIC = "replay"


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesRun:
    """One replayed series: the detect stage's score per row in [0, 1] (0 before its first
    fit), whether the row was a hit, and how many detect stages failed."""

    scores: np.ndarray
    hits: np.ndarray
    failed_cycles: int


def replay_config(config: AgentConfig, csv: Path, state_dir: Path, cycle_s: float) -> AgentConfig:
    """``config`` reading ``csv`` on a cycle of ``cycle_s``, with its state in ``state_dir`` and
    nothing served, sent or run outside the process."""
    sources = config.sources.model_copy(update={
        "kind": "file",
        "file": config.sources.file.model_copy(update={"paths": [csv], "metric": METRIC}),
        "catchup_max": max(config.sources.catchup_max, cycle_s),
    })
    return config.model_copy(update={
        "agent": config.agent.model_copy(update={"state_dir": state_dir, "interval": cycle_s, "shard": "0/1"}),
        "http": config.http.model_copy(update={"enabled": False}),
        "sources": sources,
        "remediation": config.remediation.model_copy(update={"enabled": False, "rules": []}),
        "notify": config.notify.model_copy(update={"enabled": False, "channels": {}, "routes": []}),
    })


def replay_series(series: pd.Series, config: AgentConfig, *, cycle_s: float = DEFAULT_CYCLE_S,
                  name: str = "series") -> SeriesRun:
    """Replay ``series`` (file order) through the pipeline with ``config``; one score per row."""
    from agent.context import Context
    from agent.pipeline import Pipeline

    fixed = strictly_increasing(series)
    n = len(fixed)
    scores, hits = np.zeros(n), np.zeros(n, dtype=bool)
    if n == 0:
        return SeriesRun(scores=scores, hits=hits, failed_cycles=0)
    sid = series_id(METRIC, {"series": name})
    position = pd.Series(np.arange(n), index=fixed.index)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="aiops-backtest-") as tmp:
        csv = Path(tmp) / f"{name}.csv"
        epoch = fixed.index.as_unit("ns").asi8 / 1e9
        pd.DataFrame({"timestamp": epoch, "value": fixed.to_numpy()}).to_csv(csv, index=False, float_format="%.17g")
        clock = ManualClock(fixed.index[0].to_pydatetime())
        ctx = Context.create(replay_config(config, csv, Path(tmp) / "state", cycle_s), clock=clock)
        pipeline = Pipeline(ctx, report=False)
        engine = pipeline.engine
        try:
            step = pd.Timedelta(seconds=cycle_s)
            now = fixed.index[0]
            while True:
                now = min(now + step, fixed.index[-1])
                clock.set(now.to_pydatetime())
                pipeline.refit(now=now.to_pydatetime())  # the daemon's refit job, once a cycle
                cycle = pipeline.run_cycle(now=now.to_pydatetime())
                failed += "detect" in cycle.failed_stages
                judged = engine.score_of(sid)
                if judged is not None and len(judged):
                    rows = position.reindex(judged.index)
                    known = rows.notna().to_numpy()
                    scores[rows[known].astype(int).to_numpy()] = np.clip(judged.to_numpy()[known], 0.0, 1.0)
                for hit in cycle.hits:
                    if hit.series_id == sid and pd.Timestamp(hit.ts) in position.index:
                        hits[position[pd.Timestamp(hit.ts)]] = True
                if now >= fixed.index[-1]:
                    break
        finally:
            pipeline.close()
            ctx.store.close()
    return SeriesRun(scores=scores, hits=hits, failed_cycles=failed)


def strictly_increasing(series: pd.Series) -> pd.Series:
    """The series with each repeated or backward timestamp moved to one second after the
    previous row's, so the replay sees every row, in file order."""
    ns = series.index.as_unit("ns").asi8
    if len(ns) < 2 or bool(np.all(np.diff(ns) > 0)):
        return series
    fixed = ns.copy()
    for i in range(np.flatnonzero(np.diff(ns) <= 0)[0] + 1, len(fixed)):
        if fixed[i] <= fixed[i - 1]:
            fixed[i] = fixed[i - 1] + 1_000_000_000
    index = pd.DatetimeIndex(fixed.view("datetime64[ns]"), name=series.index.name).tz_localize("UTC")
    return pd.Series(series.to_numpy(), index=index, name=series.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """One input after its replay: its rows, their scores and hits, and how they lie against
    its windows (``labels`` is None without a label file or when it does not know the file)."""

    item: InputFile
    series: pd.Series
    scores: np.ndarray
    hits: np.ndarray
    labels: RowLabels | None
    failed_cycles: int

    @property
    def folder(self) -> str:
        return self.item.key.rsplit("/", 1)[0] if "/" in self.item.key else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    files: list[FileResult]
    swept: dict[str, ProfileScore]  # threshold swept as NAB does; empty without labels
    configured: dict[str, ProfileScore]  # the hits the daemon would have raised
    lofo: dict[str, ProfileScore]  # threshold chosen without each folder, scored on it

    @property
    def unlabelled(self) -> list[str]:
        return [f.item.key for f in self.files if f.labels is None]


def backtest(paths: list[Path], config: AgentConfig, *, labels: Path | None = None, cycle_s: float = DEFAULT_CYCLE_S,
             on_file: Callable[[FileResult], None] | None = None) -> BacktestResult:
    """Replay every CSV under ``paths`` through the pipeline configured by ``config`` and, with
    ``labels`` (NAB's ``combined_windows.json``), score the replay per NAB profile three ways."""
    inputs = find_inputs([Path(p) for p in paths])
    windows = read_windows(labels) if labels is not None else None
    files = []
    quiet = logging.getLogger("agent")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # a cycle's info lines, thousands of times, say nothing here
    try:
        for item in inputs:
            series = read_series(item.path)
            run = replay_series(series, config, cycle_s=cycle_s, name=item.path.stem)
            row_labels = None
            if windows is not None and (file_windows := windows_for(item, windows)) is not None:
                try:
                    row_labels = label_rows(series.index, file_windows)
                except WindowError as exc:
                    raise CorpusError(item.path, str(exc)) from exc
            result = FileResult(item=item, series=series, scores=run.scores, hits=run.hits, labels=row_labels,
                                failed_cycles=run.failed_cycles)
            files.append(result)
            if on_file is not None:
                on_file(result)
    finally:
        quiet.setLevel(level)
    labelled = [f for f in files if f.labels is not None]
    if windows is None:
        return BacktestResult(files=files, swept={}, configured={}, lofo={})
    runs = [(f.labels, f.scores) for f in labelled]
    configured = score_runs([(f.labels, f.hits.astype("float64")) for f in labelled], threshold=1.0)
    lofo = lofo_runs([(f.folder, f.labels, f.scores) for f in labelled])
    return BacktestResult(files=files, swept=score_runs(runs), configured=configured, lofo=lofo)


def write_results(result: BacktestResult, out_dir: Path) -> list[Path]:
    """Write ``out_dir/<key>`` per input: timestamp,value,anomaly_score,label,hit (label 1 inside
    a labelled window, else 0; hit 1 where the daemon would have raised a hit), one row per
    input row in file order."""
    written = []
    for f in result.files:
        path = out_dir / f.item.key
        path.parent.mkdir(parents=True, exist_ok=True)
        label = f.labels.inside if f.labels is not None else None
        frame = pd.DataFrame({
            "timestamp": f.series.index.tz_localize(None).strftime("%Y-%m-%d %H:%M:%S"),
            "value": f.series.to_numpy(),
            "anomaly_score": f.scores,
            "label": label.astype(int) if label is not None else np.zeros(len(f.scores), dtype=int),
            "hit": f.hits.astype(int),
        })
        frame.to_csv(path, index=False)
        written.append(path)
    return written
